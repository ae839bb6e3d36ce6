"""Today's Docker: the ladder on Engine 26 with the containerd image store, and the headline size on every store.

A second Engine (Debian trixie's docker.io, in a container of the first, see
`scripts/nested-engine`) is started fresh for these tests: nothing in it but
what they put there.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.custody import ownership
from harness.custody.ledger import Ledger
from harness.engine import DockerEngine
from harness.layers.unpack import ChunkStream
from harness.records.report import DEFAULT_RUNTIME, Outcome, RunReport
from harness.records.settings import Settings
from harness.run.measure import analyse_image
from harness.run.pipeline import run_stages
from harness.stages.stage import load_stage

from .conftest import REPO_ROOT, TEST_NAMESPACE, nested_engine

pytestmark = [pytest.mark.docker, pytest.mark.containerd_store]

# A namespace of its own for the --no-cache rebuild of 08 on the first Engine: under the ladder's, the new
# image would take the tag the ladder fixture's 08 holds, and the tests that check that tag would fail.
REBUILD_NAMESPACE = f"{TEST_NAMESPACE}-rebuild"


@pytest.fixture(scope="module")
def containerd_engine(engine: DockerEngine) -> Iterator[DockerEngine]:
    with nested_engine("test-containerd", "containerd") as nested:
        yield nested.engine


@pytest.fixture(scope="module")
def containerd_ladder(containerd_engine: DockerEngine) -> RunReport:
    """The tutorial's C stages, built and measured on the containerd store (bases bootstrapped there too)."""

    def is_c(folder: Path) -> bool:
        return load_stage(folder).runtime == DEFAULT_RUNTIME

    settings = Settings(REPO_ROOT, namespace=TEST_NAMESPACE)  # with the wire size: the blobs' own lengths
    return run_stages(containerd_engine, settings, progress=lambda line: None, keep=is_c)


def test_the_second_engine_is_engine_26_with_the_containerd_store(containerd_engine: DockerEngine) -> None:
    facts = containerd_engine.describe()
    assert int(facts.version.split(".")[0]) >= 26, facts
    assert facts.image_store.startswith("containerd"), facts
    assert tuple(int(part) for part in facts.api_version.split(".")) >= (1, 45), facts


def test_the_c_ladder_passes_on_the_containerd_store(containerd_ladder: RunReport) -> None:
    outcomes = {stage.name: stage.outcome for stage in containerd_ladder.stages}
    assert outcomes.pop("05-alpine") is Outcome.SKIPPED  # no Alpine image here, on any Engine
    assert outcomes == {name: Outcome.PASS for name in outcomes}
    assert "11-scratch-minimal" in outcomes


def test_its_headline_sizes_equal_those_of_the_first_engine_but_where_overlay2_stores_unchanged_files(
    containerd_ladder: RunReport, ladder: RunReport
) -> None:
    """Built independently on each Engine, every C stage comes to the same bytes, but where apt rewrites files.

    overlay2 commits a layer from its upper folder, so a file a step opens for
    writing and leaves as it was is stored again; the containerd store's differ
    compares the two snapshots and leaves such a file out.  That happens where
    a step ends with a file as it found it: each of 02's `apt-get purge` layers
    stores debconf's templates.dat (803kB) and a few small files again, and
    03b installs and purges back to the base's package set.  Every difference
    must be exactly those files, to the byte: the unchanged bytes the layer
    analysis finds (the same content, mode, owner, time and extended attributes
    as the view below) in overlay2's image, none in containerd's.
    """
    differing = []
    for stage in containerd_ladder.stages:
        first = ladder.stage(stage.name)
        assert first is not None
        if stage.outcome is not Outcome.PASS:
            continue
        assert stage.layer_figures is not None and first.layer_figures is not None and stage.size_bytes and first.size_bytes
        assert stage.layer_figures.unchanged_bytes == 0, stage.name  # the differ leaves every unchanged file out
        assert first.size_bytes - stage.size_bytes == first.layer_figures.unchanged_bytes, stage.name
        if first.layer_figures.unchanged_bytes:
            differing.append(stage.name)
    assert "02-purge-layers" in differing  # the known case: if it went, this test would no longer test anything
    assert not [name for name in differing if "scratch" in name], differing


def test_on_the_containerd_store_the_wire_size_is_the_blobs_own_length(
    containerd_ladder: RunReport, containerd_engine: DockerEngine
) -> None:
    stage = containerd_ladder.stage("01-naive")
    assert stage is not None and stage.image is not None and stage.layer_figures is not None
    analysis = analyse_image(containerd_engine, stage.image)
    assert {layer.stored_as.value for layer in analysis.layers} == {"gzip"}
    assert all(layer.digest_matches for layer in analysis.layers)
    assert stage.layer_figures.wire_bytes == sum(layer.wire_bytes or 0 for layer in analysis.layers)
    # The API's Size on this store is the compressed content: the wire size, plus the config and manifest.
    assert stage.image_info is not None
    assert 0 <= stage.image_info.engine_size_bytes - stage.layer_figures.wire_bytes < 64 * 1024


def test_the_headline_is_the_same_on_both_stores_for_every_stage_image(
    ladder: RunReport, engine: DockerEngine, containerd_engine: DockerEngine
) -> None:
    """Image for image: each stage image of the first Engine, loaded into the containerd store, measures the same."""
    measured = [stage for stage in ladder.stages if stage.image is not None and stage.size_bytes is not None]
    assert len(measured) >= 15
    for stage in measured:
        assert stage.image is not None
        loaded = containerd_engine.load_image(engine.save_image(stage.image))
        assert analyse_image(containerd_engine, loaded, wire=False).content_bytes == stage.size_bytes, stage.name


def test_a_slim_stage_rebuilt_from_nothing_on_another_engine_is_the_same_image(
    engine: DockerEngine, containerd_engine: DockerEngine
) -> None:
    """Reproducible on another machine: with SOURCE_DATE_EPOCH set, 08 built `--no-cache` on each Engine is one image.

    Everything differs between the two builds but the inputs: the Engine
    (20.10 or whatever CI runs, and 26 with the containerd store), the source
    image (built anew, at another time), the store.  The image the harness
    writes from it must not: same config, hence the same config digest, which
    is the image ID on overlay2 (the containerd store names an image by its
    manifest's digest, so the config digest is read from each save stream).
    """

    def config_digest(on: DockerEngine) -> str:
        settings = Settings(
            REPO_ROOT, namespace=REBUILD_NAMESPACE, no_cache=True, wire_size=False, source_date_epoch=1_700_000_000
        )
        try:
            report = run_stages(on, settings, progress=lambda line: None, keep=lambda folder: folder.name == "08-scratch-auto")
            stage = report.stage("08-scratch-auto")
            assert stage is not None and stage.outcome is Outcome.PASS and stage.image_info is not None, stage
            return saved_config_digest(on, stage.image_info.image_id)
        finally:
            ownership.clean(on, Ledger.open(REPO_ROOT, on.identity()), ownership.Scope(namespace=REBUILD_NAMESPACE))

    assert config_digest(engine) == config_digest(containerd_engine)


def saved_config_digest(on: DockerEngine, image: str) -> str:
    """The digest of the image's config, as `docker save` names it in manifest.json (classic layout or OCI)."""
    with tarfile.open(fileobj=ChunkStream(on.save_image(image)), mode="r|") as tar:
        for member in tar:
            if member.name == "manifest.json":
                handle = tar.extractfile(member)
                assert handle is not None
                config = str(json.load(handle)[0]["Config"])  # "<hex>.json", or "blobs/sha256/<hex>"
                return "sha256:" + config.rsplit("/", 1)[-1].removesuffix(".json")
    raise AssertionError(f"{image}: no manifest.json in its save stream")
