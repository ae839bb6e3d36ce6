"""The resolver agrees with the dynamic loader: every dynamic ELF file under /usr of a builder image.

The builder image is the default base with gcc and make installed (the first
two steps of stage 01, so the build cache usually has it).  `ldd` runs inside
a locked-down container of that image; the resolver reads the same image's
file system, unpacked, without running anything.  Every closure must agree,
as a set of real paths; a file ldd reports missing libraries for must be
missing exactly those sonames for the resolver too.
"""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from harness import ownership
from harness.bases import ensure_base
from harness.elf import Resolver, RootFS
from harness.elf.corpus import dynamic_elf_files, parse_ldd_output
from harness.engine import DockerEngine
from harness.imagefs import unpacked_image
from harness.model import RunPolicy
from harness.pipeline import Made

from .conftest import TEST_NAMESPACE, build_recorded

pytestmark = pytest.mark.docker

BASE = "debian:bookworm"
BUILDER = f"{TEST_NAMESPACE}/builder:bookworm"
CHUNK = 150
LDD_LOOP = 'for f in "$@"; do echo "== $f"; ldd "$f" 2>&1; done'


@pytest.fixture(scope="module")
def builder(engine: DockerEngine, made: Made) -> Iterator[str]:
    ensure_base(engine, BASE, made.ledger)
    dockerfile = f"FROM {BASE}\nRUN apt-get update -qq && apt-get install -y gcc make\n"
    image_id = build_recorded(docker.from_env(), made, dockerfile, BUILDER)
    yield BUILDER
    ownership.remove_made(engine, made.ledger, frozenset({image_id}))


def test_every_closure_under_usr_agrees_with_ldd(engine: DockerEngine, builder: str, made: Made) -> None:
    with unpacked_image(engine, builder, made.container_labels()) as root:
        paths = [str(path) for path in dynamic_elf_files(root)]
        assert len(paths) > 500, "a builder image has hundreds of dynamic ELF files under /usr"
        fs = RootFS(root)

        def realpath(path: str) -> str:
            found = fs.resolve(path)
            return str(found.real) if found else path

        loader: dict[str, object] = {}
        for start in range(0, len(paths), CHUNK):
            chunk = paths[start : start + CHUNK]
            result = engine.run(
                builder,
                ("/bin/sh", "-c", LDD_LOOP, "sh", *chunk),
                RunPolicy(timeout_s=300.0, user="65534:65534", output_cap_bytes=8 * 1024 * 1024),
                made.container_labels(stage="ldd"),
            )
            assert not result.truncated and not result.timed_out and result.error is None
            loader.update(parse_ldd_output(result.stdout, chunk, realpath))

        resolver = Resolver(root)
        disagreements = []
        for path, expected in loader.items():
            closure = resolver.resolve(path, strict=False)
            ours_found = frozenset(realpath(str(real)) for real in closure.real_paths())
            ours_missing = frozenset(soname for soname, _ in closure.missing)
            if (ours_found, ours_missing) != (expected.found, expected.missing):  # type: ignore[attr-defined]
                disagreements.append((path, sorted(ours_found ^ expected.found), sorted(ours_missing ^ expected.missing)))  # type: ignore[attr-defined]
    assert len(loader) > 500
    assert disagreements == [], f"{len(disagreements)} of {len(loader)} disagree: {disagreements[:5]}"
