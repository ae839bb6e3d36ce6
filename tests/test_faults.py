"""Bad input, faults and cleanup: nothing lost, nothing left behind, nothing let out."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from harness.custody import ownership
from harness.custody.ledger import Ledger
from harness.custody.lock import RunInProgress, exclusive_run
from harness.custody.made import Made
from harness.engine import DockerEngine
from harness.records import labels
from harness.records.engine import RunPolicy
from harness.records.errors import EngineLost
from harness.records.report import Outcome
from harness.records.settings import Settings
from harness.run.pipeline import measure_stages, run_stages

from .conftest import FAULT_NAMESPACE, REPO_ROOT, interrupt_invoke, invoke, nested_engine, of_this_namespace
from .fakes import LosingEngine, _image
from .static_program import build_static_program

BASE = "debian:bookworm"
USERS_IMAGE = of_this_namespace("users-own/image") + ":kept"


def copy_repo(target: Path, stages: tuple[str, ...] = ()) -> Path:
    """A runnable copy of the repository (tasks.py, hello/, the named stages) to break at will."""
    shutil.copy(REPO_ROOT / "tasks.py", target / "tasks.py")
    shutil.copy(REPO_ROOT / "README.md", target / "README.md")
    shutil.copytree(REPO_ROOT / "hello", target / "hello")
    (target / "stages").mkdir()
    for stage in stages:
        shutil.copytree(REPO_ROOT / "stages" / stage, target / "stages" / stage)
    return target


def add_stage(repo: Path, name: str, dockerfile: str, toml: str) -> None:
    folder = repo / "stages" / name
    folder.mkdir(parents=True)
    (folder / "Dockerfile").write_text(dockerfile)
    (folder / "stage.toml").write_text(toml)


def stage_toml(command: str, expect: str = 'stdout = "hello!\\n"', extra: str = "") -> str:
    return f'title = "t"\nchanges = "c"\nstep = "s"\ncommand = {command}\n{extra}\n[expect]\n{expect}\n'


# --- without an Engine -------------------------------------------------------


@pytest.mark.fault(
    "The Engine stops in the middle of a run",
    "stages measured before are kept; the rest are errors; no cleanup call into a dead Engine",
)
def test_an_engine_lost_mid_run_keeps_what_was_measured(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path, ("01-naive", "02-purge-layers", "03-single-layer"))
    engine = LosingEngine(lose_at=2, images={BASE: _image(1)})
    measured = measure_stages(engine, Settings(repo), progress=lambda line: None)
    assert measured.lost is not None and "connection refused" in str(measured.lost)
    report = measured.report
    assert [(s.name, s.outcome) for s in report.stages] == [
        ("01-naive", Outcome.PASS),
        ("02-purge-layers", Outcome.ERROR),
        ("03-single-layer", Outcome.ERROR),
    ]
    assert "connection refused" in str(report.stages[2].reason)
    assert engine.removed == []  # no cleanup calls into an Engine that is gone
    # run_stages raises the loss alone: the error carries no report.
    with pytest.raises(EngineLost) as caught:
        run_stages(LosingEngine(lose_at=2, images={BASE: _image(1)}), Settings(repo), progress=lambda line: None)
    assert caught.value.cause.detail == "connection refused" and not hasattr(caught.value, "report")


@pytest.mark.fault("The Engine is not running", "one line saying how to start it, exit 1, no traceback, results/ unchanged")
def test_a_stopped_engine_is_one_clear_line(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path, ("07-scratch-libs",))
    (repo / "results").mkdir()
    (repo / "results" / "results.json").write_text("earlier")
    done = invoke(repo, "all", env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}, timeout=60)
    assert done.returncode == 1
    assert "Docker Engine: not reachable" in done.stderr and "scripts/start-engine" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert (repo / "results" / "results.json").read_text() == "earlier"


@pytest.mark.fault("Two runs at once (same process)", "the second refuses, naming the first; the lock is released after")
def test_a_second_run_in_the_same_checkout_refuses(tmp_path: Path) -> None:
    lock = tmp_path / ".hello-ladder.lock"
    with exclusive_run(lock):
        with pytest.raises(RunInProgress, match=rf"another run is in progress in this checkout \(pid {os.getpid()}\)"):
            with exclusive_run(lock):
                pass
    with exclusive_run(lock):  # released on exit
        pass


@pytest.mark.fault("Two `invoke all` at once on one checkout", "the second refuses with the first's pid, exit 1")
def test_a_second_invoke_all_refuses_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from harness.custody.lock import exclusive_run\n"
            "from pathlib import Path\nwith exclusive_run(Path(sys.argv[1])):\n print('held', flush=True); time.sleep(60)",
            str(repo / ".hello-ladder.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        done = invoke(repo, "all", timeout=60)
        assert done.returncode == 1
        assert f"another run is in progress in this checkout (pid {holder.pid})" in done.stderr
    finally:
        holder.kill()
        holder.wait()


# --- with an Engine ------------------------------------------------------------


@pytest.fixture(scope="module")
def fault_made(engine: DockerEngine, made: Made) -> Made:
    """The tests' ledger, with a session of the fault tests' own (their containers carry the faults' namespace)."""
    session = uuid.uuid4().hex
    made.ledger.record_session(session, FAULT_NAMESPACE)
    return Made(made.ledger, session, FAULT_NAMESPACE)


@pytest.fixture(scope="module")
def base_image(engine: DockerEngine, fault_made: Made) -> Iterator[str]:
    """The Debian base the stages use, provided (bootstrapped if need be) once; what the faults made goes after."""
    from harness.run.bases import ensure_base

    ensure_base(engine, BASE, fault_made.ledger)
    yield BASE
    ownership.clean(engine, fault_made.ledger, ownership.Scope(namespace=FAULT_NAMESPACE))


def clean_copy(engine: DockerEngine, repo: Path) -> None:
    """Remove what a run in a copy of the repository made, by the copy's own ledger (as its `invoke clean` would)."""
    ownership.clean(engine, Ledger.open(repo, engine.identity()), ownership.Scope(namespace=FAULT_NAMESPACE))


def run_in_base(
    engine: DockerEngine, base_image: str, script: str, made: Made, **policy: object
) -> tuple[str, str, int | None, bool, bool]:
    result = engine.run(
        base_image,
        ("/bin/sh", "-c", script),
        RunPolicy(**{"timeout_s": 20.0, "user": "65534:65534", **policy}),  # type: ignore[arg-type]
        made.container_labels(stage="faults"),
    )
    return result.stdout, result.stderr, result.exit_code, result.timed_out, result.truncated


def this_run_only() -> str:
    """A label for a test's Dockerfile (`LABEL` it before the steps): its step containers and images carry it.

    So a test finds what its own build made, among what other runs on the Engine make, and the
    label's unique value keeps every step after it out of any other build's cache.
    """
    return f"test.this-run={uuid.uuid4().hex}"


def no_test_containers() -> list[object]:
    client = docker.from_env()
    # sparse: no inspect per container, which races with a container being removed
    return client.containers.list(all=True, sparse=True, filters={"label": labels.selector(namespace=FAULT_NAMESPACE)})


def stage_programs_running() -> bool:
    """Whether a run's own container (carrying a session label) runs a stage's program.

    Not just any container of the namespace: a build's LABEL steps run in containers that carry
    the image's labels too, and an interrupt during one leaves the step images the Engine
    commits after the connection closed, which no output of the build names.
    """
    selector = [*labels.selector(namespace=FAULT_NAMESPACE), labels.SESSION]
    return bool(docker.from_env().containers.list(sparse=True, filters={"label": selector}))


@pytest.mark.fault("A stage's program hangs", "killed at its time limit, reported as timed out, container removed")
@pytest.mark.docker
def test_a_hanging_program_is_killed_at_its_time_limit(engine: DockerEngine, base_image: str, fault_made: Made) -> None:
    started = time.monotonic()
    _, _, exit_code, timed_out, _ = run_in_base(engine, base_image, "sleep 600", fault_made, timeout_s=2.0)
    assert timed_out and exit_code is None
    assert time.monotonic() - started < 30
    assert no_test_containers() == []


@pytest.mark.fault("A stage's program floods its output", "output capped and marked truncated, container removed")
@pytest.mark.docker
def test_a_flooding_program_has_its_output_capped(engine: DockerEngine, base_image: str, fault_made: Made) -> None:
    stdout, _, _, timed_out, truncated = run_in_base(
        engine, base_image, "yes flood", fault_made, timeout_s=3.0, output_cap_bytes=4096
    )
    assert truncated and len(stdout.encode()) <= 4096
    assert timed_out
    assert no_test_containers() == []


@pytest.mark.fault(
    "A program tries to write /, reach the network, fork without bound",
    "read-only root, only loopback, no capabilities, no-new-privileges, nobody, pids limit",
)
@pytest.mark.docker
def test_nothing_is_let_out(engine: DockerEngine, base_image: str, fault_made: Made) -> None:
    script = r"""
    touch /escape 2>/dev/null && echo write=allowed || echo write=refused
    echo interfaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ,)
    echo routes=$(tail -n +2 /proc/net/route | wc -l)
    grep -E '^(CapEff|NoNewPrivs):' /proc/self/status | tr -d '\t '
    echo uid=$(id -u)
    ( i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); done ) 2>/dev/null
    n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo processes=$n
    """  # the last line counts with builtins only: at the pids limit, nothing more can fork
    stdout, stderr, exit_code, _, _ = run_in_base(engine, base_image, script, fault_made)
    facts = dict(line.split("=", 1) if "=" in line else line.split(":", 1) for line in stdout.split())
    assert facts["write"] == "refused"  # read-only root
    assert facts["interfaces"] == "lo,"  # no network but loopback
    assert facts["routes"] == "0"
    assert facts["CapEff"] == "0000000000000000"  # every capability dropped
    assert facts["NoNewPrivs"] == "1"
    assert facts["uid"] == "65534"
    assert 10 < int(facts["processes"]) <= 64  # a fork loop of 200 is stopped by the pids limit
    assert no_test_containers() == []


@pytest.mark.fault(
    "A Dockerfile fails to build; a base cannot be had",
    "that stage is an error naming the instruction and the log's tail; the others still run",
)
@pytest.mark.docker
def test_a_broken_dockerfile_is_an_error_naming_the_instruction(engine: DockerEngine, base_image: str, tmp_path: Path) -> None:
    repo = copy_repo(tmp_path)
    add_stage(repo, "01-breaks", "ARG BASE\nFROM ${BASE}\nRUN echo compiling && exit 3\n", stage_toml('["/bin/true"]'))
    add_stage(repo, "02-no-base", "FROM hello-ladder-test/no-such-base:1\n", stage_toml('["/bin/true"]'))
    add_stage(repo, "03-fine", "ARG BASE\nFROM ${BASE}\n", stage_toml('["/bin/echo", "hello!"]'))
    try:
        report = run_stages(engine, Settings(repo, namespace=FAULT_NAMESPACE), progress=lambda line: None)
    finally:
        recorded = {entry.image_id for entry in Ledger.open(repo, engine.identity()).read().images}
        clean_copy(engine, repo)
    broken, no_base, fine = report.stages
    assert broken.outcome is Outcome.ERROR
    assert "build failed at `RUN echo compiling && exit 3`" in str(broken.reason)
    # The classic builder's wording, or Buildah's (Podman).
    assert "returned a non-zero code: 3" in str(broken.reason) or "exit status 3" in str(broken.reason)
    assert "compiling" in broken.log_tail
    assert no_base.outcome is Outcome.ERROR and "docker load" in str(no_base.reason)
    assert fine.outcome is Outcome.PASS
    assert no_test_containers() == []
    # The failed build's leftovers were recorded, and swept at the end of the run.
    assert not recorded & {image.id for image in docker.from_env().images.list(filters={"dangling": True})}


@pytest.mark.fault(
    "A build step hangs (`RUN sleep 100000`, a stuck `apt-get update`)",
    "cancelled at its build_timeout, the stage an error naming the step; nothing of it left; the others run",
)
@pytest.mark.docker
def test_a_hanging_build_step_is_cancelled_at_its_limit(engine: DockerEngine, base_image: str, tmp_path: Path) -> None:
    client = docker.from_env()
    repo = copy_repo(tmp_path)
    marker = this_run_only()
    hangs = f"ARG BASE\nFROM ${{BASE}}\nLABEL {marker}\nRUN echo before > /before\nRUN sleep 100000\n"
    add_stage(repo, "01-hangs", hangs, stage_toml('["/bin/true"]'))
    add_stage(repo, "02-fine", "ARG BASE\nFROM ${BASE}\n", stage_toml('["/bin/echo", "hello!"]'))
    env = {"HELLO_LADDER_NAMESPACE": FAULT_NAMESPACE}
    started = time.monotonic()
    try:
        done = invoke(repo, "all", "--no-wire", "--build-timeout", "30", env=env, timeout=600)
        seconds = time.monotonic() - started
    finally:
        clean_copy(engine, repo)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    hung, fine = json.loads((repo / "results" / "results.json").read_text())["stages"]
    assert hung["outcome"] == "error" and "build failed at `RUN sleep 100000`: timed out" in hung["reason"]
    assert "30 s" in hung["reason"] and fine["outcome"] == "pass"
    assert seconds < 30 + 60, f"the whole run took {seconds:.0f} s"
    # The step's container went with the cancelled build; the step before it, committed, went with the run's sweep.
    assert client.containers.list(all=True, filters={"label": marker}) == []
    assert client.images.list(all=True, filters={"label": marker}) == []


@pytest.mark.fault(
    "`invoke clean` beside the user's own images",
    "only what this checkout recorded goes; an image of the user's and the bases stay",
)
@pytest.mark.docker
def test_clean_removes_only_what_the_ledger_recorded(engine: DockerEngine, base_image: str, tmp_path: Path) -> None:
    client = docker.from_env()
    repo = copy_repo(tmp_path)
    add_stage(repo, "01-fine", "ARG BASE\nFROM ${BASE}\n", stage_toml('["/bin/echo", "hello!"]'))
    try:
        run_stages(engine, Settings(repo, namespace=FAULT_NAMESPACE), progress=lambda line: None)
        users, _ = client.images.build(
            fileobj=io.BytesIO(f"FROM {base_image}\nRUN echo user > /user-file\n".encode()), tag=USERS_IMAGE, rm=True
        )
        assert client.images.list(name=f"{FAULT_NAMESPACE}/01-fine")
        done = invoke(repo, "clean", "--namespace", FAULT_NAMESPACE, timeout=120)
        assert done.returncode == 0, done.stderr
        assert client.images.list(name=f"{FAULT_NAMESPACE}/01-fine") == []
        assert client.images.get(USERS_IMAGE).id == users.id
        assert client.images.get(base_image)  # bases stay unless --bases
    finally:
        # Also when the run or the user's build failed part-way.
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(USERS_IMAGE, force=True)
        clean_copy(engine, repo)


@pytest.mark.fault("Ctrl-C or SIGTERM while a stage runs", "exit 130, no container left, results/ exactly as before")
@pytest.mark.docker
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_leaves_no_container_and_the_results_as_they_were(
    engine: DockerEngine, base_image: str, tmp_path: Path, signum: signal.Signals
) -> None:
    repo = copy_repo(tmp_path)
    add_stage(repo, "01-hangs", "ARG BASE\nFROM ${BASE}\n", stage_toml('["/bin/sleep", "600"]', extra="timeout = 300"))
    results = repo / "results"
    results.mkdir()
    (results / "results.json").write_text("earlier json")
    (results / "RESULTS.md").write_text("earlier md")
    before = sorted(p.name for p in results.iterdir())
    try:
        returncode, stderr = interrupt_invoke(
            repo, ["all"], stage_programs_running, signum, env={"HELLO_LADDER_NAMESPACE": FAULT_NAMESPACE}
        )
    finally:
        clean_copy(engine, repo)
    assert returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert no_test_containers() == []
    # The stage's image was recorded as it was built, so the copy's `invoke clean` found it (and its steps).
    stage_images = {"label": labels.selector(namespace=FAULT_NAMESPACE, stage="01-hangs")}
    assert docker.from_env().images.list(all=True, filters=stage_images) == []
    assert sorted(p.name for p in results.iterdir()) == before
    assert (results / "results.json").read_text() == "earlier json"
    assert (results / "RESULTS.md").read_text() == "earlier md"


@pytest.mark.fault("Ctrl-C in the middle of a build", "the Engine cancels the build; its step container is removed; exit 130")
@pytest.mark.docker
def test_an_interrupted_build_leaves_no_container(engine: DockerEngine, base_image: str, tmp_path: Path) -> None:
    client = docker.from_env()
    repo = copy_repo(tmp_path)
    marker = this_run_only()
    add_stage(repo, "01-slow-build", f"ARG BASE\nFROM ${{BASE}}\nLABEL {marker}\nRUN sleep 600\n", stage_toml('["/bin/true"]'))

    def step_containers() -> list[object]:
        return client.containers.list(all=True, filters={"label": marker})

    def sleeping() -> bool:
        # The RUN step's container, not the LABEL step's before it (which carries the marker too): the build's
        # output has named the LABEL step's image by then (`---> <id>`), so the ledger has it.
        running = client.containers.list(sparse=True, filters={"label": marker})
        return any("sleep 600" in container.attrs.get("Command", "") for container in running)

    try:
        returncode, stderr = interrupt_invoke(
            repo, ["all", "--no-cache"], sleeping, signal.SIGINT, env={"HELLO_LADDER_NAMESPACE": FAULT_NAMESPACE}
        )
    finally:
        # The builder removes the cancelled step's container a moment later; until then it holds the step below it.
        deadline = time.monotonic() + 60
        while step_containers() and time.monotonic() < deadline:
            time.sleep(0.5)
        clean_copy(engine, repo)
    assert returncode == 130, stderr
    assert step_containers() == []
    # The step the build had committed (its LABEL) was recorded from the build's output, and swept.
    assert client.images.list(all=True, filters={"label": marker}) == []


@pytest.mark.fault(
    "A real Engine stops in the middle of `invoke all`",
    "what was measured is kept in results.partial.json; RESULTS.md and results.json untouched; one line; exit 1",
)
@pytest.mark.docker
def test_a_real_engine_stopped_mid_run_keeps_what_was_measured(engine: DockerEngine, tmp_path: Path) -> None:
    """A second Engine, started for this test alone, is stopped for real while `invoke all` runs a stage on it."""
    repo = copy_repo(tmp_path)
    # One static program, FROM scratch: no base image to bootstrap in the fresh Engine.
    program = build_static_program(repo, "lost")
    dockerfile = "FROM scratch\nCOPY lost /hello\n"
    add_stage(repo, "01-measured", dockerfile, stage_toml('["/hello"]'))
    add_stage(repo, "02-running-when-lost", dockerfile, stage_toml('["/hello", "sleep"]', extra="timeout = 300"))
    add_stage(repo, "03-never-reached", dockerfile, stage_toml('["/hello"]'))
    results = repo / "results"
    results.mkdir()
    (results / "results.json").write_text("earlier json")
    (results / "RESULTS.md").write_text("earlier md")
    with nested_engine("test-lost", "overlay2") as lost:
        process = invoke_all_until_building(repo, lost.host, "02-running-when-lost")
        try:
            # Once its container runs (the program sleeps), the Engine goes away under it.
            deadline = time.monotonic() + 120
            while not docker.DockerClient(base_url=lost.host).containers.list() and time.monotonic() < deadline:
                time.sleep(0.2)
            subprocess.run(
                ["bash", str(REPO_ROOT / "scripts" / "nested-engine"), "stop", lost.name],
                capture_output=True,
                timeout=300,
                check=True,
            )
            rest, stderr = process.communicate(timeout=300)
        finally:
            process.kill()
    partial = assert_reported_engine_lost(
        process.returncode,
        rest,
        stderr,
        results,
        [("01-measured", "pass"), ("02-running-when-lost", "error"), ("03-never-reached", "error")],
    )
    assert partial["stages"][0]["size_bytes"] == program.stat().st_size


def assert_reported_engine_lost(
    returncode: int | None, stdout: str, stderr: str, results: Path, outcomes: list[tuple[str, str]]
) -> dict[str, Any]:
    """An Engine lost mid-run: one error line, exit 1, the earlier results untouched; the partial report it left."""
    assert returncode == 1, stderr
    assert "Traceback" not in stderr + stdout
    error_lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "the Engine stopped answering during the run" in error_lines[0], stderr
    assert (results / "results.json").read_text() == "earlier json"
    assert (results / "RESULTS.md").read_text() == "earlier md"
    partial: dict[str, Any] = json.loads((results / "results.partial.json").read_text())
    assert [(stage["name"], stage["outcome"]) for stage in partial["stages"]] == outcomes
    return partial


def invoke_all_until_building(repo: Path, host: str, stage: str) -> subprocess.Popen[str]:
    """`invoke all` on the Engine at `host`, once it has printed that `stage` is being built."""
    process = subprocess.Popen(
        # One stage at a time: its `building` line is printed as it starts (with more jobs, a
        # stage's lines wait for its result), and the stages after it wait for it.
        [sys.executable, "-m", "invoke", "all", "--no-wire", "--jobs", "1"],
        cwd=repo,
        env={**os.environ, "DOCKER_HOST": host, "HELLO_LADDER_NAMESPACE": FAULT_NAMESPACE},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith(f"{stage}: building"):
            return process
    process.kill()
    pytest.fail("".join(seen) + process.communicate()[1])
