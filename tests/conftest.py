"""Shared fixtures.  Docker-backed tests share one Engine connection and build each image once per session."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from harness.custody import ownership
from harness.custody.ledger import ROLE_TEST, Ledger
from harness.custody.made import Made
from harness.engine import DockerEngine
from harness.nested.plan import NestedEngine as EnginePlan
from harness.records.errors import EngineUnavailable
from harness.records.report import RunReport
from harness.records.settings import Settings
from harness.run.pipeline import run_stages

REPO_ROOT = Path(__file__).resolve().parent.parent
# HELLO_LADDER_TEST_NAMESPACE keeps one engineer's test images apart from another's on a shared Engine.
TEST_NAMESPACE = os.environ.get("HELLO_LADDER_TEST_NAMESPACE", "hello-ladder-test")
# The fault tests run `invoke clean` on their own namespace, which must not take the ladder's images.
FAULT_NAMESPACE = f"{TEST_NAMESPACE}-faults"


def of_this_namespace(name: str) -> str:
    """`name` made this test namespace's own: a user's image tag, a container's or a nested Engine's name.

    Two test runs in two namespaces on one Engine then never meet on a name;
    a rerun in the same namespace takes over what a killed run left.
    """
    return f"{name}-{hashlib.sha256(TEST_NAMESPACE.encode()).hexdigest()[:6]}"


def invoke(repo: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run `invoke ARGS` in `repo` as a user would, with this interpreter; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def interrupt_invoke(
    repo: Path,
    args: list[str],
    ready: Callable[[], bool],
    signum: signal.Signals,
    *,
    env: dict[str, str] | None = None,
    ready_within: float = 120,
    exit_within: float = 60,
) -> tuple[int, str]:
    """Start `invoke ARGS` in `repo`, send `signum` once `ready()` holds; its exit code and stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", *args],
        cwd=repo,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_heard,
    )
    try:
        deadline = time.monotonic() + ready_within
        while not ready():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.2)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=exit_within)
    finally:
        process.kill()
    return process.returncode, stderr


def _ctrl_c_heard() -> None:
    """`preexec_fn` of a child a test interrupts: SIGINT as a terminal's Ctrl-C delivers it.

    A shell starts background jobs with SIGINT ignored and children inherit
    that; Python then never turns SIGINT into KeyboardInterrupt.  Without this,
    a test suite started in the background sends a Ctrl-C nobody hears.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


# The two long ladders: each is minutes of builds on its own (under emulation, on a second Engine), so a
# bare `pytest` (the README's test command) leaves them to steps of their own, which .ci/run runs after it.
OWN_STEPS = ("arm64", "containerd_store")
OWN_STEPS_COMMAND = f'.venv/bin/pytest -m "{" or ".join(OWN_STEPS)}"'
LEFT_TO_OWN_STEPS = pytest.StashKey[int]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without paths, -m or -k, leave the tests of OWN_STEPS out; named any of those ways, they run."""
    chosen = config.args_source != pytest.Config.ArgsSource.TESTPATHS or config.option.markexpr or config.option.keyword
    if chosen:
        return
    left = [item for item in items if any(item.get_closest_marker(mark) for mark in OWN_STEPS)]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = [item for item in items if item not in left]
    config.stash[LEFT_TO_OWN_STEPS] = len(left)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    left = config.stash.get(LEFT_TO_OWN_STEPS, 0)
    if left:
        terminalreporter.write_line(f"{left} tests of the long ladders were left to their own step: {OWN_STEPS_COMMAND}")


@dataclass(frozen=True)
class NestedEngine:
    name: str  # as scripts/nested-engine knows it
    container: str  # its container on the host's Engine
    host: str  # its DOCKER_HOST
    engine: DockerEngine


@contextlib.contextmanager
def nested_engine(name: str, store: str) -> Iterator[NestedEngine]:
    """A second Engine (Debian trixie's, in a container of the first), fresh, started as a user starts one.

    Skipped where it cannot start (not root, say) outside CI; a failure in CI.  Always stopped and purged.
    Its name is the test namespace's own, so another test run's Engine of the same purpose is left alone.
    """
    name = of_this_namespace(name)
    script = ["bash", str(REPO_ROOT / "scripts" / "nested-engine")]
    started = subprocess.run(
        [*script, "start", name, "--store", store, "--fresh"], capture_output=True, text=True, timeout=900, check=False
    )
    try:
        if started.returncode != 0:
            reason = f"the nested Engine {name} did not start: {started.stderr.strip()[-800:]}"
            if in_ci():
                pytest.fail(reason)
            pytest.skip(reason)
        host = started.stdout.strip().splitlines()[-1].removeprefix("DOCKER_HOST=")
        yield NestedEngine(name, EnginePlan(name).container, host, DockerEngine.connect(host))
    finally:
        subprocess.run([*script, "stop", name, "--purge"], capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def host_strace() -> None:
    """The tracer comes from this machine (scripts/setup installs it): skipped without it, failed in CI."""
    if not Path("/usr/bin/strace").exists():
        (pytest.fail if in_ci() else pytest.skip)("no /usr/bin/strace on this machine: apt-get install strace")


@pytest.fixture(scope="session", autouse=True)
def own_cache_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tests' cache folder (XDG_CACHE_HOME), also for the `invoke` they run: never the user's cache."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def engine() -> DockerEngine:
    """A real Engine: skipped without one on a workstation, a failure in CI."""
    try:
        return DockerEngine.from_env()
    except EngineUnavailable as error:
        if in_ci():
            pytest.fail(f"CI=true and no Docker Engine answers, so the docker tests cannot run: {error}")
        pytest.skip(f"no Docker Engine answers ({error.detail}); start one with `bash scripts/start-engine`")


@pytest.fixture(scope="session")
def made(engine: DockerEngine) -> Made:
    """This checkout's ledger for the Engine, with a session of the tests' own for their containers."""
    ledger = Ledger.open(REPO_ROOT, engine.identity())
    session = uuid.uuid4().hex
    ledger.record_session(session, TEST_NAMESPACE)
    return Made(ledger, session, TEST_NAMESPACE)


@pytest.fixture(scope="session")
def cleanup_namespace(engine: DockerEngine, made: Made) -> Iterator[str]:
    """The tag namespace of this test session; what this checkout made under it is removed at the end.

    By the same rule as `invoke clean --namespace`: the images the ledger
    recorded, and the containers carrying a session it recorded; nothing else.
    """
    yield TEST_NAMESPACE
    ownership.clean(engine, made.ledger, ownership.Scope(namespace=TEST_NAMESPACE))


def build_recorded(client: docker.DockerClient, made: Made, dockerfile: str, tag: str, platform: str | None = None) -> str:
    """Build a test image with the SDK, record its ID in the ledger under the tests' namespace, return the ID."""
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True, platform=platform)
    made.ledger.record_image(str(image.id), ROLE_TEST, (tag,), made.namespace)
    return str(image.id)


@pytest.fixture(scope="session")
def client(engine: DockerEngine) -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture(scope="session")
def ladder(engine: DockerEngine, cleanup_namespace: str) -> RunReport:
    """Every stage of the repository, built once for the whole session under the test namespace."""
    # The wire size is checked on its own (test_layer_figures); gzip-compressing every layer here would double the time.
    settings = Settings(REPO_ROOT, namespace=cleanup_namespace, wire_size=False)
    return run_stages(engine, settings, progress=lambda line: None)
