"""Platforms: their names in Docker, Debian and glibc; what a run for another platform builds, tags and skips."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from harness.commands import options
from harness.custody.ledger import Ledger
from harness.records import platform as platforms
from harness.records.platform import KNOWN, Platform, UnknownPlatform
from harness.records.report import Outcome
from harness.records.settings import Settings
from harness.render.markdown import render_markdown
from harness.render.results import from_dict, to_dict
from harness.run.bases import BaseSource, DebianBase, ensure_base, mmdebstrap_command
from harness.run.emulation import architecture_missing, emulation_missing
from harness.run.pipeline import run_stages
from harness.slim.imagewrite import rootfs_archive

from .fakes import MMDEBSTRAP_WRITES_2048_BYTES, FakeEngine, _image, fake_mmdebstrap
from .test_pipeline import repo  # noqa: F401  (the fixture)

ARM64 = Platform.parse("linux/arm64")


@pytest.mark.parametrize("text", ["linux/arm64", "linux/arm64/v8", "arm64", "aarch64", "LINUX/ARM64"])
def test_arm64_is_named_every_way_the_tools_name_it(text: str) -> None:
    assert Platform.parse(text) == ARM64
    assert str(ARM64) == "linux/arm64"


@pytest.mark.parametrize("text", ["windows/amd64", "linux/mips", "linux/"])
def test_an_unknown_platform_is_refused_with_the_known_ones(text: str) -> None:
    with pytest.raises(UnknownPlatform, match="known: amd64, arm64"):
        Platform.parse(text)


def test_each_architecture_names_its_triplet_loader_and_namespace() -> None:
    assert ARM64.build_args == {"TRIPLET": "aarch64-linux-gnu", "LOADER": "/lib/ld-linux-aarch64.so.1"}
    assert ARM64.base_ref("debian:bookworm-slim") == "arm64v8/debian:bookworm-slim"
    amd64 = Platform.parse("linux/amd64")
    # The defaults of 07's Dockerfile are the tutorial's paths: amd64's.
    assert amd64.build_args == {"TRIPLET": "x86_64-linux-gnu", "LOADER": "/lib64/ld-linux-x86-64.so.2"}
    assert amd64.base_ref("debian:bookworm") == "amd64/debian:bookworm"


def test_a_platform_gets_tags_and_a_base_of_its_own(tmp_path: Path) -> None:
    plain, arm = Settings(tmp_path), Settings(tmp_path, platform=ARM64)
    assert plain.tag("07-scratch-libs") == "hello-ladder/07-scratch-libs:debian-bookworm"
    assert arm.tag("07-scratch-libs") == "hello-ladder/07-scratch-libs:debian-bookworm-arm64"
    assert plain.build_args == {"BASE": "debian:bookworm"}
    assert arm.build_args == {
        "BASE": "arm64v8/debian:bookworm",
        "TRIPLET": "aarch64-linux-gnu",
        "LOADER": "/lib/ld-linux-aarch64.so.1",
    }


def _binfmt(tmp_path: Path, entry: str | None) -> Path:
    folder = tmp_path / "binfmt_misc"
    folder.mkdir()
    (folder / "status").write_text("enabled\n")
    if entry is not None:
        (folder / "qemu-aarch64").write_text(entry)
    return folder


QEMU = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: {flags}\noffset 0\n"


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("unmounted", "binfmt_misc is not mounted"),
        ("unregistered", "qemu-aarch64 is not registered"),
        ("no-f-flag", "without the F flag"),
        ("ready", None),
    ],
)
def test_emulation_is_found_or_its_absence_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setup: str, expected: str | None
) -> None:
    monkeypatch.setattr(platforms.host_platform, "machine", lambda: "x86_64")
    if setup == "unmounted":
        folder = tmp_path / "empty"
        folder.mkdir()
    else:
        entry = {"unregistered": None, "no-f-flag": QEMU.format(flags="P"), "ready": QEMU.format(flags="PF")}[setup]
        folder = _binfmt(tmp_path, entry)
    reason = emulation_missing(ARM64, folder)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason


def test_an_image_configs_architecture_is_asked_about_as_its_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platforms.host_platform, "machine", lambda: "x86_64")
    folder = _binfmt(tmp_path, QEMU.format(flags="PF"))
    assert architecture_missing("arm64", folder) is None and architecture_missing("amd64", folder) is None
    assert "not one the ladder knows" in str(architecture_missing("s390x", folder))
    (tmp_path / "other").mkdir()
    assert "qemu-aarch64 is not registered" in str(architecture_missing("arm64", _binfmt(tmp_path / "other", None)))


def test_the_hosts_own_platform_needs_no_emulation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platforms.host_platform, "machine", lambda: "aarch64")
    assert emulation_missing(ARM64, tmp_path / "nothing-here") is None


def test_without_emulation_every_stage_is_skipped_with_the_reason(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr("harness.run.stage.emulation_missing", lambda target: "no emulation for aarch64: (reason)")
    engine = FakeEngine()
    report = run_stages(engine, Settings(repo, platform=ARM64), progress=lambda line: None)
    assert {stage.outcome for stage in report.stages} == {Outcome.SKIPPED}
    assert all("linux/arm64: no emulation for aarch64" in str(stage.reason) for stage in report.stages)
    assert report.ok and engine.built == []


def test_a_platform_run_builds_for_it_on_its_own_base(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr("harness.run.stage.emulation_missing", lambda target: None)
    engine = FakeEngine(images={"arm64v8/debian:bookworm": _image(1)})
    report = run_stages(engine, Settings(repo, platform=ARM64), "07", progress=lambda line: None)
    [stage] = report.stages
    assert stage.outcome is Outcome.PASS and stage.image == "hello-ladder/07-scratch-libs:debian-bookworm-arm64"
    assert len(engine.build_calls) == 1  # one request: its compile stage is kept from the build's own output
    for call in engine.build_calls:
        assert call["platform"] == "linux/arm64"
        assert call["build_args"] == {
            "BASE": "arm64v8/debian:bookworm",
            "TRIPLET": "aarch64-linux-gnu",
            "LOADER": "/lib/ld-linux-aarch64.so.1",
        }
    assert report.platform == "linux/arm64"
    again = from_dict(json.loads(json.dumps(to_dict(report, "invoke all --platform linux/arm64"))))
    assert again.platform == "linux/arm64"
    assert "Base `debian:bookworm`, platform `linux/arm64`" in render_markdown(again)
    assert "GENERATED by `invoke all --platform linux/arm64`" in render_markdown(again)


def test_the_engines_own_platform_leaves_the_results_as_they_were(repo: Path) -> None:  # noqa: F811
    engine = FakeEngine(images={"debian:bookworm": _image(1)})
    report = run_stages(engine, Settings(repo), "07", progress=lambda line: None)
    assert report.platform is None and "platform" not in to_dict(report, "invoke all")
    assert [call["platform"] for call in engine.build_calls] == [None]
    assert [call["build_args"] for call in engine.build_calls] == [{"BASE": "debian:bookworm"}]


def test_another_architectures_base_is_bootstrapped_for_it(tmp_path: Path) -> None:
    assert DebianBase.parse("arm64v8/debian:bookworm-slim") == DebianBase("bookworm", True, KNOWN["arm64"])
    assert DebianBase.parse("someone/debian:bookworm") is None  # not an architecture's namespace
    command = mmdebstrap_command(DebianBase("bookworm", False, KNOWN["arm64"]), tmp_path / "out.tar")
    assert "--arch=arm64" in command
    assert "--arch=arm64" not in " ".join(mmdebstrap_command(DebianBase("bookworm", False), tmp_path / "o.tar"))


def test_another_architectures_base_is_loaded_with_its_architecture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Engine 20.10's import writes its own architecture whatever it is told: the config is written instead."""
    fake_mmdebstrap(tmp_path, MMDEBSTRAP_WRITES_2048_BYTES, monkeypatch)
    engine = FakeEngine()
    ledger = Ledger.open(tmp_path, engine.identity())
    status = ensure_base(engine, "arm64v8/debian:bookworm", ledger)
    assert status.source is BaseSource.BOOTSTRAPPED
    assert engine.imported == []
    [archive] = engine.loaded
    config = _config(archive)
    assert (config["architecture"], config["variant"], config["os"]) == ("arm64", "v8", "linux")
    assert config["config"] == {"Cmd": ["bash"]}
    assert "--arch=arm64" in config["history"][0]["created_by"]
    [entry] = ledger.read().images
    assert entry.role == "base" and entry.tags == ("arm64v8/debian:bookworm",)


def test_a_rootfs_archive_is_the_tar_as_it_is() -> None:
    layer = b"\0" * 1024
    archive = rootfs_archive(layer, "arm64", "v8", "arm64v8/debian:bookworm", 1_700_000_000, "mmdebstrap")
    assert archive.layer_bytes == 1024
    assert rootfs_archive(layer, "arm64", "v8", "arm64v8/debian:bookworm", 1_700_000_000, "mmdebstrap") == archive
    assert _config(archive.data)["rootfs"]["diff_ids"] == [
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    ]


def _config(archive: bytes) -> dict:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        return json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]


def test_without_a_platform_an_arm64_machine_builds_for_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """amd64 keeps the committed results and 07's defaults; an arm64 machine gets arm64's names, natively."""
    monkeypatch.setattr(platforms.host_platform, "machine", lambda: "aarch64")
    assert options.platform_choice(None) == ARM64
    assert emulation_missing(ARM64) is None
    monkeypatch.setattr(platforms.host_platform, "machine", lambda: "x86_64")
    assert options.platform_choice(None) is None
    assert options.platform_choice("linux/arm64") == ARM64


def test_a_platforms_results_go_to_a_folder_of_their_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    checkout = options.Checkout(tmp_path)
    monkeypatch.setattr(platforms.host_platform, "machine", lambda: "x86_64")
    native, arm64 = (
        options.settings(checkout, "debian:bookworm"),
        options.settings(checkout, "debian:bookworm", platform="linux/arm64"),
    )
    assert options.results_dir(None, native, checkout) == tmp_path / "results"
    assert options.results_dir(None, arm64, checkout) == tmp_path / "results" / "arm64"
    assert options.results_dir("/elsewhere", arm64, checkout) == Path("/elsewhere")
