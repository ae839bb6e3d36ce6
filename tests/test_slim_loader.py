"""A library the source image's loader finds only through ld.so.cache still loads in the slim image, on a real Engine."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from harness import labels
from harness.context import DOCKERFILE_NAME, build_context
from harness.engine import DockerEngine
from harness.model import RunPolicy
from harness.pipeline import build_slim_image
from harness.slim import SlimSpec

from .conftest import REPO_ROOT

pytestmark = pytest.mark.docker

# ls needs libselinux; here it lives in a folder only /etc/ld.so.conf.d names, as a library under
# /usr/local/lib/<name> does.  No compiler needed: mv and ldconfig (static) are enough.
DOCKERFILE = """\
FROM debian:bookworm
RUN mkdir -p /usr/local/lib/selinux \\
 && mv /usr/lib/x86_64-linux-gnu/libselinux.so.1 /usr/local/lib/selinux/ \\
 && echo /usr/local/lib/selinux > /etc/ld.so.conf.d/selinux.conf \\
 && ldconfig
"""


def test_a_library_found_through_ld_so_conf_d_loads_in_the_slim_image(engine: DockerEngine, cleanup_namespace: str) -> None:
    source, tag = f"{cleanup_namespace}/ldconf:source", f"{cleanup_namespace}/ldconf:slim"
    engine.build(stage="ldconf", context=build_context(REPO_ROOT / "hello", DOCKERFILE), dockerfile=DOCKERFILE_NAME,
                 tag=source, build_args={}, labels=labels.managed(labels.ROLE_BUILDER, namespace=cleanup_namespace))
    command = ("/bin/ls", "/usr/local/lib/selinux")
    _, plan = build_slim_image(engine, source, SlimSpec(PurePosixPath("/bin/ls")), tag, command,
                               labels.managed(labels.ROLE_STAGE, namespace=cleanup_namespace, stage="ldconf"),
                               cleanup_namespace)
    assert dict(plan.env)["LD_LIBRARY_PATH"] == "/usr/local/lib/selinux"
    result = engine.run(tag, command, RunPolicy(timeout_s=60, user="65534:65534"),
                        labels.managed(labels.ROLE_RUN, namespace=cleanup_namespace))
    assert (result.exit_code, result.stdout, result.error) == (0, "libselinux.so.1\n", None), result
