"""Shared fixtures.  Docker-backed tests share one Engine connection and build each image once per session."""

from __future__ import annotations

import contextlib
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
from harness.records.errors import EngineUnavailable
from harness.records.report import RunReport
from harness.records.settings import Settings
from harness.run.pipeline import run_stages

REPO_ROOT = Path(__file__).resolve().parent.parent
# HELLO_LADDER_TEST_NAMESPACE keeps one engineer's test images apart from another's on a shared Engine.
TEST_NAMESPACE = os.environ.get("HELLO_LADDER_TEST_NAMESPACE", "hello-ladder-test")
# The fault tests run `invoke clean` on their own namespace, which must not take the ladder's images.
FAULT_NAMESPACE = "hello-ladder-test-faults"


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


@dataclass(frozen=True)
class NestedEngine:
    host: str  # its DOCKER_HOST
    engine: DockerEngine


@contextlib.contextmanager
def nested_engine(name: str, store: str) -> Iterator[NestedEngine]:
    """A second Engine (Debian trixie's, in a container of the first), fresh, started as a user starts one.

    Skipped where it cannot start (not root, say) outside CI; a failure in CI.  Always stopped and purged.
    """
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
        yield NestedEngine(host, DockerEngine.connect(host))
    finally:
        subprocess.run([*script, "stop", name, "--purge"], capture_output=True, text=True, timeout=300, check=False)


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
