"""Today's Docker: the ladder on Engine 26 with the containerd image store, and the headline size on every store.

A second Engine (Debian trixie's docker.io, in a container of the first, see
`scripts/nested-engine`) is started fresh for these tests: nothing in it but
what they put there.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from harness.custody import ownership
from harness.custody.ledger import Ledger
from harness.custody.made import Made
from harness.engine import DockerEngine
from harness.layers.analysis import Layer
from harness.layers.unpack import ChunkStream
from harness.records.report import DEFAULT_RUNTIME, Outcome, RunReport
from harness.records.settings import Settings
from harness.run.measure import analyse_image
from harness.run.pipeline import run_stages
from harness.stages.stage import load_stage

from .conftest import REPO_ROOT, TEST_NAMESPACE, NestedEngine, build_recorded, nested_engine

pytestmark = [pytest.mark.docker, pytest.mark.containerd_store]

# A namespace of its own for the --no-cache rebuild of 08 on the first Engine: under the ladder's, the new
# image would take the tag the ladder fixture's 08 holds, and the tests that check that tag would fail.
REBUILD_NAMESPACE = f"{TEST_NAMESPACE}-rebuild"


@pytest.fixture(scope="module")
def containerd_nested(engine: DockerEngine) -> Iterator[NestedEngine]:
    with nested_engine("test-containerd", "containerd") as nested:
        yield nested


@pytest.fixture(scope="module")
def containerd_engine(containerd_nested: NestedEngine) -> DockerEngine:
    return containerd_nested.engine


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


def test_its_headline_sizes_equal_those_of_the_first_engine_to_the_byte(containerd_ladder: RunReport, ladder: RunReport) -> None:
    """Built independently on each Engine, every C stage comes to the same headline bytes.

    What the layer tars store differs where apt leaves a file as it found it:
    overlay2 commits a layer from its upper folder, so a file a step opens for
    writing and leaves as it was is stored again; the containerd store's differ
    compares the two snapshots and leaves such a file out.  Each of 02's
    `apt-get purge` layers stores debconf's templates.dat (803kB) and a few
    small files again, and 03b installs and purges back to the base's package
    set.  The tars' difference must be exactly those files, to the byte: the
    unchanged bytes the layer analysis finds in overlay2's image, none in
    containerd's; the headline leaves them out, so it is the same.
    """
    differing = []
    for stage in containerd_ladder.stages:
        first = ladder.stage(stage.name)
        assert first is not None
        if stage.outcome is not Outcome.PASS:
            continue
        assert stage.layer_figures is not None and first.layer_figures is not None and stage.size_bytes and first.size_bytes
        assert stage.size_bytes == first.size_bytes, stage.name
        assert stage.layer_figures.unchanged_bytes == 0, stage.name  # the differ leaves every unchanged file out
        stored_again = first.layer_figures.content_bytes - stage.layer_figures.content_bytes
        assert stored_again == first.layer_figures.unchanged_bytes, stage.name
        if stored_again:
            differing.append(stage.name)
    assert "02-purge-layers" in differing  # the known case: if it went, this test would no longer test anything
    assert not [name for name in differing if "scratch" in name], differing


# The cause in two steps: a file a step opens for writing and leaves as it was (as debconf does with its
# templates.dat in 02's purges).  The time has nanoseconds, as a file written by a program has.
REWRITTEN_BYTES = 100_000
REWRITE_UNCHANGED = f"""FROM debian:bookworm
RUN head -c {REWRITTEN_BYTES} /dev/zero > /rewritten && touch -d @1700000000.123456789 /rewritten
RUN true >> /rewritten && echo marker > /marker
"""


def test_a_file_opened_for_writing_and_left_as_it_was_measures_the_same_on_both_stores(
    engine: DockerEngine,
    made: Made,
    containerd_nested: NestedEngine,
    containerd_ladder: RunReport,  # debian:bookworm is there once it has run
) -> None:
    """overlay2 stores the file again in the second layer, the containerd store does not: the headline is the same."""
    if engine.describe().image_store != "overlay2":  # CI's first Engine is overlay2: this runs there
        pytest.skip(f"the first Engine's store is {engine.describe().image_store}: nothing here stores the file again")
    tag = f"{TEST_NAMESPACE}/rewrite-unchanged:test"
    on_overlay2 = analyse_image(engine, build_recorded(docker.from_env(), made, REWRITE_UNCHANGED, tag), wire=False)
    nested_client = docker.DockerClient(base_url=containerd_nested.host)
    built, _ = nested_client.images.build(fileobj=io.BytesIO(REWRITE_UNCHANGED.encode()), tag=tag, rm=True, forcerm=True)
    on_containerd = analyse_image(containerd_nested.engine, str(built.id), wire=False)  # its Engine is purged after

    def headline(layer: Layer) -> int:
        return layer.content_bytes - layer.unchanged_bytes

    written, rewritten = on_overlay2.layers[-2:]
    assert written.content_bytes == REWRITTEN_BYTES and written.unchanged_bytes == 0
    assert rewritten.content_bytes == REWRITTEN_BYTES + len("marker\n")  # overlay2 stored the file again
    assert rewritten.unchanged == 1 and rewritten.unchanged_bytes == REWRITTEN_BYTES
    assert [layer.content_bytes for layer in on_containerd.layers[-2:]] == [REWRITTEN_BYTES, len("marker\n")]
    assert on_containerd.unchanged_bytes == 0
    assert [headline(layer) for layer in on_containerd.layers[-2:]] == [headline(layer) for layer in (written, rewritten)]


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
        assert analyse_image(containerd_engine, loaded, wire=False).headline_bytes == stage.size_bytes, stage.name


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
