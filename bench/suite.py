"""The test suite's wall time, before and after: the README's test command of each revision, after its first command.

    .venv/bin/python -m bench.suite [--revisions d40b936,HEAD] [--pytest-args "-m 'not docker'"] [--cold]

For each revision, in the order given, this clones the repository at that
revision and runs the README's quick start as a user does on a fresh machine:
the first command (`bash scripts/setup && .venv/bin/invoke all`: installs,
bootstraps the bases, builds the ladder), timed on its own, then the test
command (`.venv/bin/pytest`), timed, with CI=true as CI runs it.  The
reference is issue 23's: the test command under 15 minutes on a fresh 2-core
machine after the first command.  With --cold the first command is left out
(only `scripts/setup`, untimed) and the tests start on the empty Engine, as
they do in CI.  The default "before" is d40b936, the last landing before the
suite was split into the README's command and the long ladders' own step.

Each run starts as CI's does, on an Engine with no image, no container and no
build cache, so neither run inherits the other's bases or builds: the
benchmark refuses an Engine that holds anything, and after each run it removes
everything the run left (on an Engine that started empty, that is only what
the run made).  Point DOCKER_HOST at an Engine of its own, e.g.
`CI=true bash scripts/start-engine` on a machine where nothing else runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "d40b936"  # stop 27: the whole suite in the README's command (632 tests)
TARGET_SECONDS = 15 * 60  # issue 23: the README's test command under 15 minutes after the first command
# pytest's last line: "=== 521 passed, 5 failed, 2 skipped in 2292.12s (0:38:12) ==="
SUMMARY = re.compile(r"^=+ (?P<counts>.*?) in [0-9.]+s")


@dataclass(frozen=True)
class SuiteRun:
    revision: str
    commit: str
    command: str
    seconds: float
    first_command_seconds: float | None  # None with --cold
    summary: str  # pytest's counts, e.g. "526 passed"
    exit_code: int
    failed: tuple[str, ...]  # pytest's FAILED and ERROR lines
    log: Path  # all the run printed

    @property
    def tests(self) -> int:
        return sum(int(n) for n, what in re.findall(r"(\d+) (\w+)", self.summary) if what != "warnings")


def quick_start(readme: str) -> tuple[str, str]:
    """The quick start's two commands: the first (set up, `invoke all`) and the README's test command."""
    block = re.search(r"## Quick start.*?```sh\n(?P<body>.*?)```", readme, re.S)
    if block is None:
        sys.exit("the README has no quick start block")
    commands = [line for line in block["body"].splitlines() if line.strip()]
    return commands[0], commands[-1]


def engine_contents(client: docker.DockerClient) -> str | None:
    """What the Engine holds; None if nothing."""
    images = client.images.list(all=True)
    containers = client.containers.list(all=True)
    if images or containers:
        return f"{len(images)} images and {len(containers)} containers"
    return None


def empty_engine(client: docker.DockerClient) -> None:
    """Remove what a run left, on an Engine that started empty: only what the run made."""
    for container in client.containers.list(all=True):
        container.remove(force=True, v=True)
    for image in client.images.list():
        for ref in image.tags or [image.id]:
            try:
                client.images.remove(ref, force=True, noprune=False)
            except docker.errors.NotFound:
                pass  # gone with an earlier tag of the same image
    client.images.prune(filters={"dangling": False})
    client.volumes.prune()
    try:
        client.api.prune_builds()  # BuildKit's cache (the containerd store); the classic builder's went with the images
    except docker.errors.APIError:
        pass  # an Engine without BuildKit has no build cache to prune


def run_suite(revision: str, work: Path, extra: str, logs: Path, *, cold: bool) -> SuiteRun:
    clone = work / revision.replace("/", "-")
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", revision], check=True)
    commit = subprocess.run(
        ["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    first, command = quick_start((clone / "README.md").read_text(encoding="utf-8"))
    if extra:
        command = f"{command} {extra}"
    env = {**os.environ, "CI": "true", "XDG_CACHE_HOME": str(work / f"{commit}-cache")}
    first_seconds = None
    if cold:
        subprocess.run(["bash", "scripts/setup"], cwd=clone, check=True, stdout=subprocess.DEVNULL)
    else:
        started = time.monotonic()
        subprocess.run(["bash", "-c", first], cwd=clone, env=env, check=True, stdout=subprocess.DEVNULL)
        first_seconds = time.monotonic() - started
    started = time.monotonic()
    done = subprocess.run(shlex.split(command), cwd=clone, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    log = logs / f"suite-{commit}.log"
    log.write_text(done.stdout + done.stderr, encoding="utf-8")
    lines = done.stdout.splitlines()
    found = [m["counts"] for m in map(SUMMARY.match, lines) if m]
    failed = tuple(line for line in lines if line.startswith(("FAILED ", "ERROR ")))
    summary = found[-1] if found else "(no summary)"
    return SuiteRun(revision, commit, command, seconds, first_seconds, summary, done.returncode, failed, log)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", default=f"{BEFORE},HEAD", help=f"comma-separated, in order (default {BEFORE},HEAD)")
    parser.add_argument("--pytest-args", default="", help="added to each revision's test command")
    parser.add_argument("--cold", action="store_true", help="no first command: the tests start on the empty Engine")
    parser.add_argument("--logs", type=Path, default=Path("."), help="where each run's output goes (suite-<commit>.log)")
    args = parser.parse_args()
    client = docker.from_env()
    held = engine_contents(client)
    if held is not None:
        sys.exit(f"the Engine holds {held}: this benchmark needs an empty Engine of its own (see its docstring)")
    version = client.version()
    print(f"{os.cpu_count()} CPUs, Docker Engine {version.get('Version')}, load average {os.getloadavg()[0]:.1f} at start")
    runs: list[SuiteRun] = []
    with tempfile.TemporaryDirectory(prefix="hello-ladder-suite-") as work:
        for revision in args.revisions.split(","):
            try:
                run = run_suite(revision.strip(), Path(work), args.pytest_args, args.logs.resolve(), cold=args.cold)
            finally:
                empty_engine(client)
            runs.append(run)
            per_test = run.seconds / run.tests if run.tests else float("nan")
            print(
                f"{run.revision:<10} {run.commit}  {run.seconds:8.1f} s  {run.summary:<40} "
                f"{per_test:5.1f} s a test  exit {run.exit_code}  ({run.command})",
                flush=True,
            )
            if run.first_command_seconds is not None:
                print(f"    after the first command ({run.first_command_seconds:.0f} s, not counted)")
            print(
                f"    {run.seconds:.0f} s against the reference's {TARGET_SECONDS} s (issue 23): {run.seconds / TARGET_SECONDS:.2f}x"
            )
            for line in run.failed:
                print(f"    {line}")
            print(f"    output: {run.log}", flush=True)
    if len(runs) == 2 and runs[0].seconds:
        before, after = runs
        print(
            f"after / before: {after.seconds / before.seconds:.2f}x the time, {after.tests / max(before.tests, 1):.2f}x the tests"
        )
    return 0 if all(run.exit_code == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
