import threading
from pathlib import Path

import pytest

from harness.custody.enginelock import EngineLocks
from harness.custody.ledger import Ledger
from harness.records.errors import BaseUnavailable
from harness.run import bases
from harness.run.bases import BaseSource, DebianBase, ensure_base, mmdebstrap_command

from .fakes import MMDEBSTRAP_WRITES_2048_BYTES, FakeEngine, _image, fake_mmdebstrap


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("debian:bookworm", DebianBase("bookworm", slim=False)),
        ("debian:trixie-slim", DebianBase("trixie", slim=True)),
        ("library/debian:bullseye", DebianBase("bullseye", slim=False)),
        ("alpine", None),
        ("debian", None),  # no suite named: nothing to bootstrap
        ("ubuntu:noble", None),
    ],
)
def test_debian_references_are_recognised(ref: str, parsed: DebianBase | None) -> None:
    assert DebianBase.parse(ref) == parsed


def test_the_slim_bootstrap_excludes_what_official_slim_images_exclude(tmp_path: Path) -> None:
    regular = mmdebstrap_command(DebianBase("bookworm", False), tmp_path / "out.tar")
    slim = mmdebstrap_command(DebianBase("bookworm", True), tmp_path / "out.tar")
    assert regular[-2:] == ["bookworm", str(tmp_path / "out.tar")]
    assert "--variant=minbase" in regular and "--format=tar" in regular
    assert not any(arg.startswith("--dpkgopt") for arg in regular)
    assert "--dpkgopt=path-exclude=/usr/share/man/*" in slim
    assert "--dpkgopt=path-include=/usr/share/doc/*/copyright" in slim
    assert "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr" in regular
    older = mmdebstrap_command(DebianBase("bullseye", False), tmp_path / "out.tar")
    assert not any(arg.startswith("--hook-dir") for arg in older)  # bullseye was not merged-/usr


def test_a_present_base_is_used_as_it_is() -> None:
    engine = FakeEngine(images={"debian:bookworm": _image(117_000_000)})
    status = ensure_base(engine, "debian:bookworm")
    assert status.source is BaseSource.PRESENT
    assert status.deviation == 0.0


def test_a_pullable_base_is_pulled() -> None:
    assert ensure_base(FakeEngine(pullable={"alpine"}), "alpine").source is BaseSource.PULLED


@pytest.mark.fault("A non-Debian base that no registry serves", "unavailable, with `docker load` as the way out")
def test_a_base_that_cannot_be_bootstrapped_says_how_to_provide_it() -> None:
    with pytest.raises(BaseUnavailable) as caught:
        ensure_base(FakeEngine(), "alpine")
    assert "docker load" in str(caught.value)
    assert "no registry could serve it" in str(caught.value)


@pytest.mark.fault("mmdebstrap is not installed", "unavailable, with the apt-get command to install it")
def test_a_missing_mmdebstrap_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bases.shutil, "which", lambda name: None)
    with pytest.raises(BaseUnavailable, match=r"mmdebstrap is not installed.*apt-get install -y mmdebstrap"):
        ensure_base(FakeEngine(), "debian:bookworm")


def test_a_failing_mmdebstrap_is_reported_with_its_last_lines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_mmdebstrap(tmp_path, "#!/bin/sh\necho 'E: cannot find suite nosuch' >&2\nexit 1\n", monkeypatch)
    with pytest.raises(BaseUnavailable, match="exit code 1: E: cannot find suite nosuch"):
        ensure_base(FakeEngine(), "debian:nosuch")


def test_a_bootstrap_is_announced_before_it_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_mmdebstrap(tmp_path, MMDEBSTRAP_WRITES_2048_BYTES, monkeypatch)
    engine = FakeEngine()
    said: list[tuple[str, int]] = []
    ensure_base(engine, "debian:bookworm", announce=lambda line: said.append((line, len(engine.imported))))
    # Said once, before anything was imported: the half-minute of silence comes after it.
    assert len(said) == 1
    line, imported_then = said[0]
    assert imported_then == 0
    assert line.startswith("debian:bookworm: ") and "bootstrapping" in line and "mmdebstrap" in line


@pytest.mark.fault(
    "Two runs on one Engine both find a base missing",
    "one bootstraps it, the other waits and uses it: no second import, no untagged first one left",
)
def test_a_base_another_run_is_making_is_waited_for_not_made_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    fake_mmdebstrap(tmp_path, MMDEBSTRAP_WRITES_2048_BYTES, monkeypatch)
    engine = FakeEngine()
    statuses: list[BaseSource] = []
    locks = EngineLocks.for_engine(engine.identity())
    request.addfinalizer(lambda: locks.making_lock("debian:bookworm").unlink(missing_ok=True))
    with locks.making("debian:bookworm"):  # the other run, bootstrapping
        waiter = threading.Thread(target=lambda: statuses.append(ensure_base(engine, "debian:bookworm").source))
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive() and engine.imported == []  # waiting, not bootstrapping a second copy
        engine.images["debian:bookworm"] = _image(2048)  # the other run's import
    waiter.join(10)
    assert statuses == [BaseSource.PRESENT] and engine.imported == []


def test_a_present_base_is_not_announced() -> None:
    said: list[str] = []
    ensure_base(FakeEngine(images={"debian:bookworm": _image(1)}), "debian:bookworm", announce=said.append)
    assert said == []


def test_a_bootstrapped_base_carries_no_label_and_is_recorded_by_id(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_mmdebstrap(tmp_path, MMDEBSTRAP_WRITES_2048_BYTES, monkeypatch)
    engine = FakeEngine()
    ledger = Ledger.open(tmp_path, engine.identity())
    status = ensure_base(engine, "debian:bookworm-slim", ledger)
    assert status.source is BaseSource.BOOTSTRAPPED
    assert status.size_bytes == 2048
    ref, labels = engine.imported[0]
    assert ref == "debian:bookworm-slim"
    assert labels == {}  # nothing for a `FROM debian:bookworm-slim` to inherit
    [entry] = ledger.read().images
    assert (entry.image_id, entry.role, entry.tags) == ("sha256:debian:bookworm-slim", "base", ("debian:bookworm-slim",))
