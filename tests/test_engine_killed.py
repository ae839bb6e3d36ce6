"""A real Engine killed in the middle of `invoke all`, then restarted, as a machine's Engine is after a crash.

Engine 26 (Debian trixie's) runs in a container of the host's Engine
(scripts/nested-engine).  The host kills that container, so dockerd and every
process of it die at once (SIGKILL, no shutdown), while a stage's build step
runs or while the harness reads a stage's layers.  The run must end with one
error line and leave the earlier results whole; started again on the same data
root, the Engine must serve the next run, which passes, writes complete
results in place of the partial ones, and leaves nothing of the killed run.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from harness.engine import DockerEngine
from harness.records import labels

from .conftest import FAULT_NAMESPACE, REPO_ROOT, NestedEngine, invoke, nested_engine
from .static_program import build_static_program
from .test_faults import add_stage, assert_reported_engine_lost, copy_repo, invoke_all_until_building, stage_toml

pytestmark = pytest.mark.docker

KILLED = "02-killed-here"
# Big enough that reading its layers takes seconds (the image is saved and every layer hashed), small
# enough for any disk; the gate step holds a build until the test opens it.
FILL_MIB = 768
SECOND_STAGE = {
    "building": 'FROM scratch\nCOPY killed /hello\nCOPY gate /gate\nRUN ["/hello", "wait-gate", "/gate"]\n',
    "measuring": f'FROM scratch\nCOPY killed /hello\nRUN ["/hello", "fill", "/big", "{FILL_MIB}"]\n',
}


def wait_until(condition: Callable[[], bool], what: str, within: float = 300) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {within:g} s"
        time.sleep(0.05)


def killed_while(moment: str, nested: NestedEngine) -> Callable[[], None]:
    """Wait until the run is at `moment` in the second stage, on an Engine that answers; the caller kills it then."""
    inner = docker.DockerClient(base_url=nested.host)
    if moment == "building":
        # The gate step's container runs (it holds until the gate opens, which it never does in this run).
        return lambda: wait_until(lambda: bool(inner.containers.list()), "the build step's container")
    run_container = {"label": [f"{labels.STAGE}={KILLED}", labels.SESSION]}

    def after_the_run() -> None:
        # The stage's own run (its labels name it): once it is over, the harness reads the image's layers.
        wait_until(lambda: bool(inner.containers.list(all=True, filters=run_container)), "the stage's run")
        wait_until(lambda: not inner.containers.list(all=True, filters=run_container), "the end of the stage's run")

    return after_the_run


@pytest.mark.fault(
    "A real Engine is killed (SIGKILL) in the middle of `invoke all`, then started again",
    "one error line, exit 1, RESULTS.md and results.json untouched; after the restart the next run passes",
)
@pytest.mark.parametrize("moment", ["building", "measuring"])
def test_an_engine_killed_mid_run_loses_nothing_and_serves_the_next_run(
    engine: DockerEngine, tmp_path: Path, moment: str
) -> None:
    repo = copy_repo(tmp_path)
    program = build_static_program(repo, "killed")
    gate = repo / "hello" / "gate"
    gate.write_text("closed\n")
    add_stage(repo, "01-measured", "FROM scratch\nCOPY killed /hello\n", stage_toml('["/hello"]'))
    add_stage(repo, KILLED, SECOND_STAGE[moment], stage_toml('["/hello"]'))
    add_stage(repo, "03-after", "FROM scratch\nCOPY killed /hello\n", stage_toml('["/hello"]'))
    results = repo / "results"
    results.mkdir()
    (results / "results.json").write_text("earlier json")
    (results / "RESULTS.md").write_text("earlier md")
    script = ["bash", str(REPO_ROOT / "scripts" / "nested-engine")]
    with nested_engine("test-killed", "overlay2") as nested:
        env = {"DOCKER_HOST": nested.host, "HELLO_LADDER_NAMESPACE": FAULT_NAMESPACE}
        process = invoke_all_until_building(repo, nested.host, KILLED)
        try:
            killed_while(moment, nested)()
            docker.from_env().containers.get(nested.container).kill()
            rest, stderr = process.communicate(timeout=300)
        finally:
            process.kill()
        assert_reported_engine_lost(
            process.returncode, rest, stderr, results, [("01-measured", "pass"), (KILLED, "error"), ("03-after", "error")]
        )

        # Started again on the same data root, as after a crash; the gate open, so the same stages can pass.
        restarted = subprocess.run(
            [*script, "start", nested.name, "--store", "overlay2"], capture_output=True, text=True, timeout=600, check=False
        )
        assert restarted.returncode == 0, restarted.stderr
        gate.write_text("open\n")
        done = invoke(repo, "all", "--no-wire", "--jobs", "1", env=env, timeout=900)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        data = json.loads((results / "results.json").read_text())
        assert [(s["name"], s["outcome"]) for s in data["stages"]] == [
            ("01-measured", "pass"),
            (KILLED, "pass"),
            ("03-after", "pass"),
        ]
        assert data["stages"][0]["size_bytes"] == program.stat().st_size
        if moment == "measuring":
            assert data["stages"][1]["size_bytes"] > FILL_MIB << 20
        assert not (results / "results.partial.json").exists()  # superseded by the complete results
        # Nothing of the killed run is left: the step's container the killed Engine kept (the build's output named
        # it, `Running in <id>`) and the step image under it went with the next run's sweep.
        inner = docker.DockerClient(base_url=nested.host)
        assert [(c.name, c.status, c.attrs["Config"]["Cmd"]) for c in inner.containers.list(all=True)] == []
        assert inner.images.list(filters={"dangling": True}) == []
