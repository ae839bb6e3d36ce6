"""`invoke all`, warm and cold, against a plain SDK build + run loop over the same stages.

    .venv/bin/python -m bench.warm [--stages 03,06,07,08] [--runs 3] [--jobs N] [--no-cold] [--keep] [--change 07]

Targets (issue 13): a warm `invoke all` (nothing changed since the last run)
takes at most 1.5 times a plain loop that builds each stage's Dockerfile with
the SDK and runs its command, warm too; a cold one (`--no-cache`, the
harness's cache folder empty, bases present) at most 1.2 times the same loop
run cold (`nocache`).  The harness runs in a copy of the repository holding
the chosen stages (its own checkout, ledger and cache folder), as a user's
`invoke all` would; warm figures are medians of --runs runs, after one
run of each that is not timed; cold ones are one run each (a cold run costs
minutes).  Last, one stage's Dockerfile is changed (a LABEL appended; --change
names the stage, default the last one chosen) and `invoke all` run again: the
target is that only this stage is rebuilt (every other build step comes from
the cache) and only its image is read (no other image's outline is written to
the cache folder).  What the copy made is removed at the
end by `invoke clean`, and the plain loop's images by the IDs its builds
returned, unless --keep.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import docker.errors

from harness.records.redact import redact
from harness.stages.context import DOCKERFILE_NAME, build_context
from harness.stages.stage import discover, load_stage, names_stage

ROOT = Path(__file__).resolve().parent.parent
WARM_TARGET = 1.5
COLD_TARGET = 1.2
BASE = "debian:bookworm"


def chosen_stages(wanted: str | None) -> list[Path]:
    folders = list(discover(ROOT / "stages"))
    if not wanted:
        return folders
    names = [w.strip() for w in wanted.split(",") if w.strip()]
    return [f for f in folders if any(names_stage(f.name, n) for n in names)]


def plain_loop(client: docker.DockerClient, folders: list[Path], no_cache: bool, built: set[str]) -> float:
    """Build each stage's Dockerfile (context: hello/) and run its command, one after another; the seconds taken."""
    started = time.monotonic()
    for folder in folders:
        stage = load_stage(folder)
        context = build_context(ROOT / "hello", stage.dockerfile.read_text(encoding="utf-8"))
        try:
            image, _ = client.images.build(
                fileobj=io.BytesIO(context),
                custom_context=True,
                dockerfile=DOCKERFILE_NAME,
                tag=f"hello-ladder-bench/{folder.name}:plain",
                buildargs={"BASE": BASE},
                nocache=no_cache,
                rm=True,
                forcerm=True,
                pull=False,
            )
        except docker.errors.BuildError as error:
            print(f"  plain loop: {folder.name}: not built ({redact(str(error.msg))})", file=sys.stderr)
            continue
        built.add(str(image.id))
        try:
            client.containers.run(image.id, list(stage.command), remove=True, network_mode="none")
        except docker.errors.ContainerError:
            pass  # 06 is meant to fail; the loop only runs it, as `docker run` would
    return time.monotonic() - started


def harness_run(copy: Path, env: dict[str, str], jobs: int | None, no_cache: bool) -> float:
    command = [sys.executable, "-m", "invoke", "all", "--results", str(copy / "bench-results")]
    command += ["--no-cache"] if no_cache else []
    command += ["--jobs", str(jobs)] if jobs else []
    started = time.monotonic()
    done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode not in (0, 1):  # 1: a stage did not do what it expects (05 without Alpine is only skipped)
        sys.exit(f"invoke all failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds


def image_outlines(cache: Path) -> set[str]:
    """The images whose layers the harness has read: their outlines in the cache folder (harness.layers.cache)."""
    return {path.name for path in cache.glob("v*/*/image/*")}


def changed_stage_run(copy: Path, env: dict[str, str], jobs: int | None, cache: Path, stage: str) -> str:
    """Append a LABEL to `stage`'s Dockerfile in the copy, run `invoke all`: the line that says what was redone."""
    dockerfile = copy / "stages" / stage / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text(encoding="utf-8") + f"LABEL hello-ladder.bench-change={time.time_ns()}\n")
    outlines = image_outlines(cache)
    seconds = harness_run(copy, env, jobs, False)
    results = json.loads((copy / "bench-results" / "results.json").read_text(encoding="utf-8"))
    rebuilt = sorted(s["name"] for s in results["stages"] if s.get("build_cached") is False)
    read = len(image_outlines(cache) - outlines)
    verdict = "met" if rebuilt == [stage] and read == 1 else "NOT met"
    return (
        f"one   {stage} changed: invoke all {seconds:.1f} s; rebuilt: {', '.join(rebuilt) or 'none'}; "
        f"images read: {read} (target: that stage alone, 1 image: {verdict})"
    )


def machine() -> str:
    cpus = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    version = docker.from_env().version()
    return (
        f"{platform.node() or 'host'}: {cpus} CPUs, {memory:.0f} GiB, Linux {platform.release()}, "
        f"Docker Engine {version.get('Version')} ({os.environ.get('DOCKER_HOST', 'the default socket')})"
    )


def line(what: str, harness: float, plain: float, target: float) -> str:
    ratio = harness / plain if plain else float("inf")
    verdict = "met" if ratio <= target else "NOT met"
    return (
        f"{what:<5} invoke all {harness:7.1f} s   plain loop {plain:7.1f} s   ratio {ratio:5.2f}  (target <= {target}: {verdict})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", help="comma-separated stage names or numbers (default: every stage)")
    parser.add_argument("--runs", type=int, default=3, help="warm runs of each, for the median (default 3)")
    parser.add_argument("--jobs", type=int, default=None, help="invoke all --jobs (default: its own)")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold runs")
    parser.add_argument("--keep", action="store_true", help="keep the images and the copy")
    parser.add_argument("--change", help="the stage whose Dockerfile is changed last (default: the last one chosen)")
    args = parser.parse_args()
    folders = chosen_stages(args.stages)
    changed = chosen_stages(args.change)[0] if args.change else folders[-1]
    client = docker.from_env()
    print(machine())
    print(f"stages: {', '.join(f.name for f in folders)}")
    work = Path(tempfile.mkdtemp(prefix="hello-ladder-bench-"))
    copy = work / "repo"
    copy.mkdir()
    for name in ("tasks.py", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "hello", copy / "hello")
    for folder in folders:
        shutil.copytree(folder, copy / "stages" / folder.name)
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache"), "PYTHONPATH": str(ROOT)}
    built: set[str] = set()
    figures: dict[str, tuple[float, float]] = {}
    try:
        # The bases first, not timed (a bootstrap where they are missing): both sides start with them present.
        subprocess.run([sys.executable, "-m", "invoke", "bases"], cwd=copy, env=env, capture_output=True, check=True)
        if not args.no_cold:
            plain_cold = plain_loop(client, folders, True, built)
            harness_cold = harness_run(copy, env, args.jobs, True)
            figures["cold"] = (harness_cold, plain_cold)
            print(line("cold", harness_cold, plain_cold, COLD_TARGET), flush=True)
        # One run of each, not timed, before the warm ones: on the Engine, a build after a `nocache` one
        # does not find the nocache build's steps in the cache (seen on 26.1: the first run after it is a cold run).
        plain_loop(client, folders, False, built)
        harness_run(copy, env, args.jobs, False)
        plain_warm = [plain_loop(client, folders, False, built) for _ in range(args.runs)]
        harness_warm = [harness_run(copy, env, args.jobs, False) for _ in range(args.runs)]
        print(
            f"      warm runs: invoke all {', '.join(f'{s:.1f}' for s in harness_warm)} s; "
            f"plain loop {', '.join(f'{s:.1f}' for s in plain_warm)} s"
        )
        figures["warm"] = (statistics.median(harness_warm), statistics.median(plain_warm))
        print(line("warm", *figures["warm"], WARM_TARGET), flush=True)
        print(changed_stage_run(copy, env, args.jobs, work / "cache" / "hello-ladder", changed.name))
    finally:
        if not args.keep:
            subprocess.run([sys.executable, "-m", "invoke", "clean"], cwd=copy, env=env, capture_output=True, check=False)
            for image_id in built:
                try:
                    client.images.remove(image_id, force=False)
                except docker.errors.APIError:
                    pass
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
