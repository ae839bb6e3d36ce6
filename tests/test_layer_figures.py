"""Layer figures of real images with known contents: dead bytes must match to the byte."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterator

import docker
import pytest

from harness.custody import ownership
from harness.custody.made import Made
from harness.engine import DockerEngine
from harness.layers import analyse_save_stream
from harness.layers.unpack import ChunkStream
from harness.run.measure import analyse_image

from .conftest import TEST_NAMESPACE, build_recorded

pytestmark = pytest.mark.docker

BASE = "debian:bookworm"
MB = 1000 * 1000
# Each image starts from the base, so every figure below is about the layers the Dockerfile adds.
CASES = {
    "added-then-removed": ("RUN head -c 10000000 /dev/zero > /big\nRUN rm /big\n", 10 * MB),
    "replaced-smaller": ("RUN head -c 5000000 /dev/urandom > /f\nRUN head -c 1000000 /dev/urandom > /f\n", 5 * MB),
    "mode-only": ("RUN head -c 3000000 /dev/zero > /f\nRUN chmod 600 /f\n", 3 * MB),
    "folder-removed": (
        "RUN mkdir -p /d/e && head -c 2000000 /dev/zero > /d/a && head -c 1000000 /dev/zero > /d/e/b\nRUN rm -rf /d\n",
        3 * MB,
    ),
    "opaque-folder": (
        "RUN mkdir /o && head -c 4000000 /dev/zero > /o/old\nRUN rm -rf /o && mkdir /o && echo new > /o/new\n",
        4 * MB,
    ),
}


@pytest.fixture(scope="module")
def built(engine: DockerEngine, made: Made) -> Iterator[dict[str, str]]:
    from harness.run.bases import ensure_base

    ensure_base(engine, BASE, made.ledger)
    client = docker.from_env()
    tags, ids = {}, set()
    try:
        for name, (steps, _) in CASES.items():
            tag = f"{TEST_NAMESPACE}/figures-{name}:test"
            ids.add(build_recorded(client, made, f"FROM {BASE}\n{steps}", tag))
            tags[name] = tag
        yield tags
    finally:
        # Also when a later build fails: the images built before it go.
        ownership.remove_made(engine, made.ledger, frozenset(ids))


@pytest.mark.parametrize("case", sorted(CASES))
def test_dead_bytes_match_to_the_byte(engine: DockerEngine, built: dict[str, str], case: str) -> None:
    base = analyse_image(engine, BASE, wire=False)
    analysis = analyse_image(engine, built[case], wire=False)
    # The base's own dead bytes (none for an imported base) plus exactly what the steps hid.
    assert analysis.dead_bytes - base.dead_bytes == CASES[case][1]
    assert analysis.size_bytes == analysis.live_bytes + analysis.dead_bytes


def test_wire_size_is_the_gzip_length_of_each_layer_tar(engine: DockerEngine, built: dict[str, str]) -> None:
    tag = built["replaced-smaller"]
    analysis = analyse_image(engine, tag, wire=True)
    saved = b"".join(engine.save_image(tag))
    with tarfile.open(fileobj=io.BytesIO(saved)) as outer:
        import json

        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        tars = [outer.extractfile(outer.getmember(name)).read() for name in manifest[0]["Layers"]]  # type: ignore[union-attr]
    expected = [len(gzip.compress(data, compresslevel=6, mtime=0)) for data in tars]
    assert [layer.wire_bytes for layer in analysis.layers] == expected
    assert analysis.wire_bytes == sum(expected)
    assert analyse_save_stream(ChunkStream([saved]), wire=False).dead_bytes == analysis.dead_bytes
