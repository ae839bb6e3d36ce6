"""`slim --trace` on real Debian programs: each traced image does what the source image does, on a real Engine.

`file` needs its magic database, `git init` its templates, `perl -MPOSIX` its
modules and XS libraries: no ELF header names any of them, and no recorder is
written for any of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePosixPath

import pytest

from harness.custody.ledger import ROLE_BUILDER
from harness.custody.made import Made
from harness.engine import DockerEngine
from harness.records import labels
from harness.records.engine import BuildContext, RunPolicy
from harness.run.bases import ensure_base
from harness.run.measure import headline_size
from harness.run.slimbuild import build_slim_image
from harness.slim.reasons import Reason
from harness.slim.tracelog import Access
from harness.slim.tracer import trace_commands
from harness.stages.slimspec import SlimSpec

from .conftest import REPO_ROOT, nested_engine

# Every test here runs the tracer this machine has (the fixture skips without it, fails in CI).
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("host_strace")]

SOURCE = """FROM debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends file git && rm -rf /var/lib/apt/lists/*
"""
GIT = "cd /tmp && git init repo && git -C repo status"
CASES = {
    "file": ("/usr/bin/file", ("file", "/usr/bin/file")),
    "git": ("/usr/bin/git", ("/bin/sh", "-c", GIT)),
    "perl": ("/usr/bin/perl", ("perl", "-MPOSIX", "-e", "print floor(2.5), qq(\\n)")),
}
POLICY = RunPolicy(timeout_s=60, user="65534:65534", tmpfs=("/tmp",))


@pytest.fixture(scope="module")
def source(engine: DockerEngine, made: Made, cleanup_namespace: str) -> Iterator[str]:
    tag = f"{cleanup_namespace}/trace-source:bookworm"
    ensure_base(engine, "debian:bookworm", made.ledger)
    built = engine.build(
        stage="trace-source",
        context=BuildContext(REPO_ROOT / "hello", SOURCE),
        tag=tag,
        build_args={},
        labels=labels.image(cleanup_namespace),
    )
    made.ledger.record_image(built.image_id, ROLE_BUILDER, (tag,), cleanup_namespace)
    yield tag


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_traced_image_does_what_the_source_does(
    engine: DockerEngine, made: Made, cleanup_namespace: str, source: str, name: str
) -> None:
    binary, command = CASES[name]
    expected = engine.run(source, command, POLICY, made.container_labels())
    assert expected.exit_code == 0, expected
    tag = f"{cleanup_namespace}/trace-{name}:slim"
    record, plan = build_slim_image(
        engine,
        source,
        SlimSpec(PurePosixPath(binary), trace=True),
        tag,
        command,
        labels.image(cleanup_namespace, stage=name),
        made,
    )
    result = engine.run(record.image_id, command, POLICY, made.container_labels())
    assert (result.exit_code, result.stdout, result.error) == (0, expected.stdout, None), result
    # Each file carries its reason, and the trace brought what the resolver could not see.
    copied = {item.path for item in plan.reasons}
    assert set(plan.copies) <= copied
    assert any(item.reason is Reason.TRACE for item in plan.reasons)
    assert headline_size(engine, source) >= 5 * headline_size(engine, record.image_id)


def test_without_the_trace_file_finds_no_magic(engine: DockerEngine, made: Made, cleanup_namespace: str, source: str) -> None:
    tag = f"{cleanup_namespace}/trace-file:untraced"
    record, _ = build_slim_image(
        engine,
        source,
        SlimSpec(PurePosixPath("/usr/bin/file")),
        tag,
        CASES["file"][1],
        labels.image(cleanup_namespace, stage="file"),
        made,
    )
    result = engine.run(record.image_id, CASES["file"][1], POLICY, made.container_labels())
    assert result.exit_code != 0 and "could not find any valid magic files" in result.stderr


def test_a_probe_that_never_exits_is_stopped_and_what_it_opened_is_kept(engine: DockerEngine, made: Made, source: str) -> None:
    command = ("/bin/sh", "-c", "cat /etc/magic > /dev/null; exec sleep 1000")
    (run,) = trace_commands(engine, source, (command,), "65534:65534", made.container_labels(), timeout_s=5)
    assert run.result.timed_out
    opened = {event.path for event in run.log.events if event.access is Access.OPENED}
    assert PurePosixPath("/etc/magic") in opened


def test_python_traced_needs_no_recorder(engine: DockerEngine, made: Made, cleanup_namespace: str) -> None:
    """42-python-scratch's source image, slimmed by the tracer instead of record_imports.py's list.

    The same four modules; the tracer takes each as Debian installed it, `.py`
    beside `__pycache__/*.cpython-311.pyc` (the interpreter checks the source's
    mtime before it uses the cache), where the recorder writes sourceless `.pyc`.
    """
    tag = f"{cleanup_namespace}/trace-python:source"
    dockerfile = (REPO_ROOT / "stages/42-python-scratch/Dockerfile").read_text()
    ensure_base(engine, "debian:bookworm", made.ledger)
    built = engine.build(
        stage="trace-python",
        context=BuildContext(REPO_ROOT / "hello", dockerfile),
        tag=tag,
        build_args={},
        labels=labels.image(cleanup_namespace),
    )
    made.ledger.record_image(built.image_id, ROLE_BUILDER, (tag,), cleanup_namespace)
    command = ("/usr/bin/python3", "/hello.py")
    spec = SlimSpec(PurePosixPath("/usr/bin/python3"), (PurePosixPath("/hello.py"),), env=(("PYTHONHOME", "/usr"),), trace=True)
    record, plan = build_slim_image(
        engine,
        tag,
        spec,
        f"{cleanup_namespace}/trace-python:slim",
        command,
        labels.image(cleanup_namespace, stage="python"),
        made,
    )
    result = engine.run(record.image_id, command, POLICY, made.container_labels())
    assert (result.exit_code, result.stdout, result.error) == (0, "hello!\n", None), result
    recorded = {PurePosixPath(line) for line in engine_file(engine, made, tag, "/imports.txt").split()}
    for pyc in recorded:  # /usr/lib/python3.11/encodings/aliases.pyc: the traced image has the cached one
        cached = pyc.parent / "__pycache__" / f"{pyc.stem}.cpython-311.pyc"
        assert cached in plan.copies or pyc.with_suffix(".py") in plan.copies, pyc


def engine_file(engine: DockerEngine, made: Made, image: str, path: str) -> str:
    result = engine.run(image, ("/bin/cat", path), POLICY, made.container_labels())
    assert result.exit_code == 0, result
    return result.stdout


def test_ptrace_needs_no_capability_on_engine_26_either(engine: DockerEngine, made: Made) -> None:
    """The same locked-down trace on Debian trixie's Engine 26 and its default seccomp profile."""
    ensure_base(engine, "debian:bookworm", made.ledger)
    with nested_engine("test-trace", "overlay2") as nested:
        image = nested.engine.load_image(engine.save_image("debian:bookworm"))
        command = CASES["perl"][1]
        (run,) = trace_commands(nested.engine, image, (command,), "65534:65534", made.container_labels())
        assert (run.result.exit_code, run.result.stdout) == (0, "2\n"), run.result
        opened = {event.path for event in run.log.events if event.access is Access.OPENED}
        assert PurePosixPath("/usr/lib/x86_64-linux-gnu/perl-base/POSIX.pm") in opened
        assert nested.engine.list_containers(labels.RUN_ID) == ()
