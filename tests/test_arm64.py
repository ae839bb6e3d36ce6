"""The C ladder for linux/arm64 on whatever machine this is (under emulation on x86-64), and the resolver there.

The stages that name or make architecture-specific files are built for
arm64, run, and measured: 06 (the dynamic binary alone), 07 (its triplet and
loader from build arguments), 08 (the resolver's closure of an aarch64
program), 09 (static) and 11 (the hand-made aarch64 ELF).  Each image must
say arm64 in its config.  The resolver's closure of every dynamic ELF file
under /usr of an arm64 builder image must agree with `ldd` run in that image,
and this machine's tracer must trace an arm64 program through its emulator.
Without emulation these are skipped with the reason (a failure in CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePosixPath

import docker
import pytest

from harness.custody import ownership
from harness.custody.made import Made
from harness.engine import DockerEngine
from harness.records import labels
from harness.records.engine import RunPolicy
from harness.records.platform import Platform
from harness.records.report import Outcome, RunReport
from harness.records.settings import Settings
from harness.run.bases import ensure_base
from harness.run.emulation import emulation_missing
from harness.run.imagefs import unpacked_image
from harness.run.pipeline import run_stages
from harness.run.slimbuild import build_slim_image
from harness.slim.reasons import Reason
from harness.stages.slimspec import SlimSpec

from .conftest import REPO_ROOT, TEST_NAMESPACE, build_recorded, in_ci
from .ldd_agreement import compare_with_ldd

pytestmark = [pytest.mark.docker, pytest.mark.arm64]

ARM64 = Platform.parse("linux/arm64")
STAGES = ("06-", "07-", "08-", "09-", "11-")
BUILDER = f"{TEST_NAMESPACE}/builder:bookworm-arm64"


@pytest.fixture(scope="module")
def emulation() -> None:
    reason = emulation_missing(ARM64)
    if reason is not None:
        if in_ci():
            pytest.fail(f"CI=true and arm64 cannot run here: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def arm64_ladder(engine: DockerEngine, cleanup_namespace: str, emulation: None) -> RunReport:
    settings = Settings(REPO_ROOT, namespace=cleanup_namespace, wire_size=False, platform=ARM64)
    return run_stages(engine, settings, progress=lambda line: None, keep=lambda folder: folder.name.startswith(STAGES))


def test_every_arm64_c_stage_does_what_it_expects(arm64_ladder: RunReport) -> None:
    outcomes = {stage.name: (stage.outcome, stage.reason) for stage in arm64_ladder.stages}
    assert len(outcomes) == len(STAGES)
    assert outcomes == {name: (Outcome.PASS, None) for name in outcomes}
    assert arm64_ladder.platform == "linux/arm64"


def test_every_arm64_image_says_arm64(arm64_ladder: RunReport, client: docker.DockerClient) -> None:
    for stage in arm64_ladder.stages:
        assert stage.image_info is not None and stage.image is not None
        assert stage.image.endswith("-arm64"), stage.image
        attrs = client.images.get(stage.image_info.image_id).attrs
        assert (attrs["Os"], attrs["Architecture"]) == ("linux", "arm64"), stage.name


def test_07_copies_the_arm64_libc_and_loader(arm64_ladder: RunReport) -> None:
    stage = arm64_ladder.stage("07-scratch-libs")
    assert stage is not None and stage.image_info is not None
    assert [layer.created_by.split(" in ")[-1].strip() for layer in stage.image_info.layers] == [
        "/hello",
        "/lib/aarch64-linux-gnu/libc.so.6",
        "/lib/ld-linux-aarch64.so.1",
    ]


def test_08_holds_the_files_of_07_found_by_the_resolver(arm64_ladder: RunReport, engine: DockerEngine, made: Made) -> None:
    found = {}
    for name in ("07-scratch-libs", "08-scratch-auto"):
        stage = arm64_ladder.stage(name)
        assert stage is not None and stage.image_info is not None
        with unpacked_image(engine, stage.image_info.image_id, made.container_labels()) as root:
            found[name] = {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file() and not path.is_symlink()}
    libraries = {
        path for path in found["08-scratch-auto"] if "/var/lib/dpkg/" not in f"/{path}" and not path.startswith("usr/share/doc/")
    }
    assert {p.rsplit("/", 1)[-1] for p in libraries} == {p.rsplit("/", 1)[-1] for p in found["07-scratch-libs"]}
    assert any("aarch64-linux-gnu" in path for path in libraries)


def test_11_is_the_136_byte_aarch64_elf(arm64_ladder: RunReport) -> None:
    stage = arm64_ladder.stage("11-scratch-minimal")
    assert stage is not None and stage.observed is not None and stage.observed.stdout == "hello!\n"
    assert stage.size_bytes == 136


@pytest.fixture(scope="module")
def arm64_builder(engine: DockerEngine, made: Made, emulation: None) -> Iterator[str]:
    base = ARM64.base_ref("debian:bookworm")
    ensure_base(engine, base, made.ledger)
    dockerfile = f"FROM {base}\nRUN apt-get update -qq && apt-get install -y gcc make\n"
    image_id = build_recorded(docker.from_env(), made, dockerfile, BUILDER, platform=str(ARM64))
    yield BUILDER
    ownership.remove_made(engine, made.ledger, frozenset({image_id}))


def test_the_resolver_agrees_with_ldd_on_every_arm64_closure_under_usr(
    engine: DockerEngine, arm64_builder: str, made: Made
) -> None:
    """Read on this machine, whatever its architecture; `ldd` runs in the arm64 image (under emulation here)."""
    compared = compare_with_ldd(engine, arm64_builder, made, timeout_s=1200.0)
    loader, disagreements = compared.loader, compared.disagreements
    assert len(loader) > 500, "an arm64 builder image has hundreds of dynamic ELF files under /usr"
    assert any("aarch64-linux-gnu" in str(found) for entry in loader.values() for found in entry.found)
    assert disagreements == [], f"{len(disagreements)} of {len(loader)} disagree: {disagreements[:5]}"


def test_an_arm64_program_is_traced_through_its_emulator(
    engine: DockerEngine, made: Made, cleanup_namespace: str, emulation: None, host_strace: None
) -> None:
    """This machine's strace follows the qemu that runs the program: qemu's system calls are the program's.

    `cat FILE`'s closure is libc and the loader; only the trace finds FILE.  A qemu file in the trace
    would be the emulator's, not the program's, and would be copied into the image.
    """
    base = ARM64.base_ref("debian:bookworm")
    ensure_base(engine, base, made.ledger)
    command = ("/usr/bin/cat", "/etc/debian_version")
    policy = RunPolicy(timeout_s=60, user="65534:65534")
    expected = engine.run(base, command, policy, made.container_labels())
    assert expected.exit_code == 0 and expected.stdout, expected
    record, plan = build_slim_image(
        engine,
        base,
        SlimSpec(PurePosixPath("/usr/bin/cat"), trace=True),
        f"{cleanup_namespace}/trace-cat:slim-arm64",
        command,
        labels.image(cleanup_namespace, stage="cat"),
        made,
    )
    result = engine.run(record.image_id, command, policy, made.container_labels())
    assert (result.exit_code, result.stdout, result.error) == (0, expected.stdout, None), result
    reasons = {item.path: item.reason for item in plan.reasons}
    assert reasons[PurePosixPath("/etc/debian_version")] is Reason.TRACE
    assert PurePosixPath("/usr/lib/aarch64-linux-gnu/libc.so.6") in plan.copies
    assert not [path for path in plan.copies if "qemu" in str(path)]
