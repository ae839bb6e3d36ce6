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

from harness.custody import ownership
from harness.custody.made import Made
from harness.engine import DockerEngine
from harness.run.bases import ensure_base

from .conftest import TEST_NAMESPACE, build_recorded
from .ldd_agreement import compare_with_ldd

pytestmark = pytest.mark.docker

BASE = "debian:bookworm"
BUILDER = f"{TEST_NAMESPACE}/builder:bookworm"


@pytest.fixture(scope="module")
def builder(engine: DockerEngine, made: Made) -> Iterator[str]:
    ensure_base(engine, BASE, made.ledger)
    dockerfile = f"FROM {BASE}\nRUN apt-get update -qq && apt-get install -y gcc make\n"
    image_id = build_recorded(docker.from_env(), made, dockerfile, BUILDER)
    yield BUILDER
    ownership.remove_made(engine, made.ledger, frozenset({image_id}))


def test_every_closure_under_usr_agrees_with_ldd(engine: DockerEngine, builder: str, made: Made) -> None:
    compared = compare_with_ldd(engine, builder, made, timeout_s=300.0)
    assert compared.files > 500, "a builder image has hundreds of dynamic ELF files under /usr"
    assert len(compared.loader) > 500
    disagreements = compared.disagreements
    assert disagreements == [], f"{len(disagreements)} of {len(compared.loader)} disagree: {disagreements[:5]}"
