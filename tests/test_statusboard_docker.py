"""What a person at a terminal sees of a real build: the stage under way, its build step, then its result."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.custody import ownership
from harness.custody.ledger import Ledger
from harness.engine import DockerEngine

from .conftest import REPO_ROOT, TEST_NAMESPACE
from .test_statusboard import screen

NAMESPACE = f"{TEST_NAMESPACE}-board"
STAGE = "09-scratch-static"


def run_on_a_terminal(repo: Path, args: list[str], timeout: float) -> tuple[int, str]:
    """Run `invoke ARGS` in `repo` with a pseudo-terminal as its stdout and stderr: its exit code and all it wrote."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "HELLO_LADDER_NAMESPACE": NAMESPACE, "TERM": "xterm", "COLUMNS": "160"}
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", *args], cwd=repo, stdout=terminal, stderr=terminal, env=env, close_fds=True
    )
    os.close(terminal)
    written = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the terminal's other end closed: the program is done
                    break
                if not chunk:
                    break
                written += chunk
        return process.wait(timeout=max(deadline - time.monotonic(), 1)), written.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)


@pytest.mark.docker
def test_a_build_on_a_terminal_shows_its_stage_and_step_then_only_its_result(engine: DockerEngine, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "hello", repo / "hello")
    shutil.copytree(REPO_ROOT / "stages" / STAGE, repo / "stages" / STAGE)
    shutil.copy(REPO_ROOT / "tasks.py", repo / "tasks.py")
    try:
        # --no-cache: the compile stage runs apt-get for many seconds, long enough to be drawn.
        code, written = run_on_a_terminal(repo, ["build", "--stage", STAGE, "--no-cache"], timeout=900)
    finally:
        ownership.clean(engine, Ledger.open(repo, engine.identity()), ownership.Scope(namespace=NAMESPACE))
    assert code == 0, written[-3000:]
    text = written.replace("\r\n", "\n")
    # While it built, the block named the stage and its step: the compile stage's apt-get, then the scratch stage.
    assert f"> {STAGE}" in text
    assert "compile stage, step" in text and "RUN apt-get" in text
    assert "under way" in text
    # When it ended, the block was erased: the screen holds the stage's lines and its result, no status line.
    shown = screen(text)
    assert not any(line.startswith("  > ") or "under way" in line for line in shown), shown[-10:]
    assert any(line.startswith(f"{STAGE}: pass") for line in shown), shown[-10:]
