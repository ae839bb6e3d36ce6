"""A library the source image's loader finds only through ld.so.cache still loads in the slim image, on a real Engine."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from harness.custody.ledger import ROLE_BUILDER
from harness.custody.made import Made
from harness.engine import DockerEngine
from harness.records import labels
from harness.records.engine import BuildContext, RunPolicy
from harness.run.bases import ensure_base
from harness.run.slimbuild import build_slim_image
from harness.stages.slimspec import SlimSpec

from .conftest import REPO_ROOT

pytestmark = pytest.mark.docker

# ls needs libselinux; here it lives in a folder only /etc/ld.so.conf.d names, as a library under
# /usr/local/lib/<name> does, or only the image's LD_LIBRARY_PATH names.  No compiler needed:
# mv and ldconfig (static) are enough.
MOVE = "RUN mkdir -p {folder} && mv /usr/lib/x86_64-linux-gnu/libselinux.so.1 {folder}/"
DOCKERFILES = {
    "ld-so-conf-d": f"""FROM debian:bookworm
{MOVE} && echo {{folder}} > /etc/ld.so.conf.d/selinux.conf && ldconfig
""",
    "ld-library-path": f"""FROM debian:bookworm
ENV LD_LIBRARY_PATH={{folder}}
{MOVE}
""",
}


@pytest.mark.parametrize("how", sorted(DOCKERFILES))
def test_a_library_found_through_ld_so_conf_d_or_ld_library_path_loads_in_the_slim_image(
    engine: DockerEngine, made: Made, cleanup_namespace: str, how: str
) -> None:
    folder = "/usr/local/lib/selinux"
    dockerfile = DOCKERFILES[how].format(folder=folder)
    source, tag = f"{cleanup_namespace}/{how}:source", f"{cleanup_namespace}/{how}:slim"
    ensure_base(engine, "debian:bookworm", made.ledger)
    built = engine.build(
        stage=how,
        context=BuildContext(REPO_ROOT / "hello", dockerfile),
        tag=source,
        build_args={},
        labels=labels.image(cleanup_namespace),
    )
    made.ledger.record_image(built.image_id, ROLE_BUILDER, (source,), cleanup_namespace)
    command = ("/bin/ls", folder)
    _, plan = build_slim_image(
        engine,
        source,
        SlimSpec(PurePosixPath("/bin/ls")),
        tag,
        command,
        labels.image(cleanup_namespace, stage=how),
        made,
    )
    assert dict(plan.env)["LD_LIBRARY_PATH"] == folder
    result = engine.run(tag, command, RunPolicy(timeout_s=60, user="65534:65534"), made.container_labels())
    assert (result.exit_code, result.stdout, result.error) == (0, "libselinux.so.1\n", None), result
