"""Invoke tasks: a thin shell over `harness`.  `invoke --list` shows them all.

Each task reads its options through `harness.commands`, connects to the Engine
(the only place the adapter is imported), and turns how the command ended
into an exit code.
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from invoke import Collection, Context, Exit, task

from harness.commands import options
from harness.commands.cleanup import clean_checkout
from harness.commands.done import Done
from harness.commands.elf_deps import deps_query, show_deps
from harness.commands.engines import matrix_options, run_matrix
from harness.commands.image_layers import layer_limits, show_layers
from harness.commands.ladder import build_stage, ladder_run, provide_bases, run_ladder, verify_stage
from harness.commands.options import DEFAULT_JOBS, SWEEP_BASES, Checkout
from harness.commands.releases import run_sweep, sweep_options
from harness.commands.rerender import report_results
from harness.commands.session import new_session
from harness.commands.slim_run import slim_and_run, slim_request
from harness.custody.lock import exclusive_run
from harness.custody.ownership import Scope
from harness.engine import DockerEngine
from harness.records.errors import HarnessError, UsageError
from harness.records.settings import DEFAULT_BASE
from harness.stages.stage import copy_stage
from harness.statusboard import StatusBoard

CHECKOUT = Checkout(Path(__file__).resolve().parent)

BASE_HELP = f"Debian base image the stages build on (default {DEFAULT_BASE})"
PLATFORM_HELP = (
    "build and run for this platform, e.g. linux/arm64, under emulation where it is not the "
    "Engine's own (default: the Engine's own)"
)
STAGE_HELP = "a stage folder name, or its number: 07 or 07-scratch-libs"


def _reported(body: Callable[..., Done | None]) -> Callable[..., None]:
    """Turn how a command ended into an exit code: a failed Done into 1, the harness's errors into one line and
    exit code 1 (2 for input it cannot take), Ctrl-C into exit code 130."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        # SIGTERM unwinds like Ctrl-C, so that every `finally` removes what it must.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            with exclusive_run(CHECKOUT.lock):
                done = body(*args, **kwargs)
        except UsageError as error:
            raise Exit(f"error: {error}", code=2) from None
        except HarnessError as error:
            raise Exit(f"error: {error}", code=1) from None
        except KeyboardInterrupt:
            raise Exit("interrupted: containers removed, results/ left as it was", code=130) from None
        if done is not None and not done.ok:
            raise Exit(done.message, code=1)

    return wrapper


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _say(line: str) -> None:
    print(line, flush=True)


@task(help={"base": BASE_HELP, "platform_": PLATFORM_HELP})
@_reported
def bases(c: Context, base: str = DEFAULT_BASE, platform_: str | None = None) -> Done:
    """Provide every base image the stages need: present, pulled, or bootstrapped with mmdebstrap."""
    engine = DockerEngine.from_env()
    return provide_bases(engine, options.settings(CHECKOUT, base, platform=platform_), _say)


@task(
    help={
        "stage": STAGE_HELP,
        "base": BASE_HELP,
        "no_cache": "rebuild every step instead of using the build cache",
        "platform_": PLATFORM_HELP,
    }
)
@_reported
def build(c: Context, stage: str, base: str = DEFAULT_BASE, no_cache: bool = False, platform_: str | None = None) -> Done:
    """Build one stage and print its size and layers."""
    with StatusBoard.for_terminal() as board:
        return build_stage(
            DockerEngine.from_env(), options.settings(CHECKOUT, base, no_cache, platform_), stage, board.say, board
        )


@task(help={"stage": STAGE_HELP, "base": BASE_HELP, "platform_": PLATFORM_HELP})
@_reported
def verify(c: Context, stage: str, base: str = DEFAULT_BASE, platform_: str | None = None) -> Done:
    """Build one stage (from cache when possible), run it locked down, and check it does what stage.toml says."""
    with StatusBoard.for_terminal() as board:
        return verify_stage(
            DockerEngine.from_env(), options.settings(CHECKOUT, base, platform=platform_), stage, board.say, board
        )


@task(
    help={
        "stage": f"print only this stage's section ({STAGE_HELP})",
        "results_": "results folder",
        "everything": "every generated file again from its JSON: each platform's folder, SWEEP.md, ENGINES.md",
    }
)
@_reported
def report(c: Context, stage: str | None = None, results_: str = str(CHECKOUT.results), everything: bool = False) -> Done:
    """Render results/RESULTS.md again from results/results.json, or print one stage's section."""
    return report_results(Path(results_), stage, _say, everything)


@task(
    name="all",
    help={
        "base": BASE_HELP,
        "no_cache": "rebuild every step instead of using the build cache",
        "results_": "where to write RESULTS.md and results.json (default results/, results/<arch>/ with --platform)",
        "no_wire": "skip the gzip wire size of each layer (the slow part of the layer figures)",
        "jobs": f"how many stages to build, run and measure at once (default {DEFAULT_JOBS}: the CPUs, at most 4); "
        "the results are the same as with --jobs 1",
        "platform_": PLATFORM_HELP,
        "build_timeout": "cancel a build step that runs longer than this many seconds, in every stage"
        " (default: each stage.toml's build_timeout, else 1800)",
    },
)
@_reported
def all_stages(
    c: Context,
    base: str = DEFAULT_BASE,
    no_cache: bool = False,
    results_: str | None = None,
    no_wire: bool = False,
    jobs: int = 0,
    platform_: str | None = None,
    build_timeout: float = 0.0,
) -> Done:
    """Build, verify and measure every stage, then write results/RESULTS.md and results/results.json."""
    run = ladder_run(CHECKOUT, base, no_cache, results_, no_wire, jobs, platform_, build_timeout=build_timeout)
    with StatusBoard.for_terminal() as board:
        return run_ladder(DockerEngine.from_env(), run, board.say, board)


@task(
    help={
        "bases_": "also remove the base images this checkout bootstrapped",
        "namespace": "only this tag namespace: what its runs made, and every image tagged under it"
        " (default: HELLO_LADDER_NAMESPACE's, or hello-ladder, and every namespace in the ledger)",
        "dry_run": "list what would be removed, and why each is the project's, without removing anything",
        "cache_": "also empty the cache folder of layer figures and [slim] images ($XDG_CACHE_HOME/hello-ladder)",
    }
)
@_reported
def clean(c: Context, bases_: bool = False, namespace: str | None = None, dry_run: bool = False, cache_: bool = False) -> Done:
    """Remove what the project made: images tagged under its namespace, and what this checkout's ledger recorded."""
    scope = Scope(namespace=namespace, bases=bases_)
    return clean_checkout(DockerEngine.from_env, CHECKOUT, scope, dry_run, cache_, _say)


@task(
    help={
        "image": "the image to analyse",
        "json_": "print JSON (totals: dead_bytes, wire_bytes, size_bytes, efficiency) instead of tables",
        "max_dead": "exit 1 if the image has more dead bytes than this",
        "min_efficiency": "exit 1 if dive's efficiency score is below this (0 to 1)",
        "no_wire": "skip the gzip wire size (the slow part)",
    }
)
@_reported
def layers(
    c: Context,
    image: str,
    json_: bool = False,
    max_dead: str | None = None,
    min_efficiency: str | None = None,
    no_wire: bool = False,
) -> Done:
    """Per-layer contents of an image: files added, changed, deleted, dead bytes, dive's efficiency, wire size."""
    limits = layer_limits(max_dead, min_efficiency)
    return show_layers(DockerEngine.from_env(), image, json_, limits, not no_wire, _say)


@task(
    iterable=["path"],
    help={
        "image": "the image to read (its file system is exported, never run)",
        "root": "or: a folder holding a root file system",
        "path": "an ELF file inside it; repeat for more",
        "json_": "print JSON instead of a tree",
        "with_dlopen": "also resolve the optional libraries named in .note.dlopen notes",
    },
)
@_reported
def deps(
    c: Context,
    path: list[str],
    image: str | None = None,
    root: str | None = None,
    json_: bool = False,
    with_dlopen: bool = False,
) -> Done:
    """Print what the dynamic loader would load for ELF files in an image or a root folder, as lddtree does."""
    query = deps_query(path, image, root, json_, with_dlopen)
    return show_deps(query, CHECKOUT, DockerEngine.from_env, _say)


@task(
    iterable=["extra", "env", "probe"],
    help={
        "image": "the source image",
        "binary": "the program inside it",
        "tag": "the tag of the new scratch image",
        "extra": "another path to copy (a file or a folder); repeat for more",
        "extras_from": "a file in the image listing more paths to copy, one per line",
        "env": "NAME=VALUE for the new image's environment; repeat for more",
        "cmd": "the command to run in the new image (default: the binary)",
        "with_": "bundles of files no ELF reference shows: certs,tzdata,passwd,tmp,nss",
        "with_dlopen": "also copy the optional libraries named in .note.dlopen notes",
        "sbom_": "write the image's SPDX 2.3 document (JSON) to this file",
        "trace_": "run the command (or each --probe) in the source image under strace and copy what it touches",
        "probe": "a command to trace instead of the command (with --trace); repeat for more",
        "metadata": "write dpkg metadata (status.d) and copyright files for the packages the files come from "
        "(default; --no-metadata leaves them out)",
    },
)
@_reported
def slim(
    c: Context,
    image: str,
    binary: str,
    tag: str,
    extra: list[str],
    env: list[str],
    extras_from: str | None = None,
    cmd: str | None = None,
    with_: str = "",
    with_dlopen: bool = False,
    metadata: bool = True,
    sbom_: str | None = None,
    trace_: bool = False,
    probe: list[str] | None = None,
) -> Done:
    """Build a FROM scratch image of a program and its closure, run it locked down, and compare sizes."""
    engine = DockerEngine.from_env()
    settings = options.settings(CHECKOUT, DEFAULT_BASE)
    made = new_session(engine, settings)
    request = slim_request(
        image,
        binary,
        tag,
        extras=extra,
        env=env,
        extras_from=extras_from,
        cmd=cmd,
        bundles=with_,
        with_dlopen=with_dlopen,
        metadata=metadata,
        sbom=sbom_,
        trace=trace_,
        probes=probe or [],
    )
    return slim_and_run(engine, settings, made, request, _say)


@task(
    help={
        "bases_": "comma-separated Debian bases, e.g. debian:bullseye,debian:bookworm,debian:trixie",
        "results_": "where to write SWEEP.md and sweep.json (default results/, results/<arch>/ with --platform)",
        "platform_": PLATFORM_HELP,
    }
)
@_reported
def sweep(c: Context, bases_: str = SWEEP_BASES, results_: str | None = None, platform_: str | None = None) -> Done:
    """Run the Debian-based stages on each of several Debian releases; write results/SWEEP.md and sweep.json."""
    chosen = sweep_options(CHECKOUT, bases_, results_, platform_)
    return run_sweep(DockerEngine.from_env(), chosen, _say)


@task(
    iterable=["engine_"],
    help={
        "engine_": "NAME=DOCKER_HOST of an Engine to run the ladder on (unix:///path, tcp://host:port, "
        "ssh://user@host); repeat for more",
        "base": BASE_HELP,
        "results_": "where to write ENGINES.md and engines.json (default results/, results/<arch>/ with --platform)",
        "platform_": PLATFORM_HELP,
    },
)
@_reported
def matrix(
    c: Context, engine_: list[str], base: str = DEFAULT_BASE, results_: str | None = None, platform_: str | None = None
) -> Done:
    """Run the ladder on several Engines, one after another; write results/ENGINES.md and engines.json."""
    return run_matrix(DockerEngine.connect, matrix_options(CHECKOUT, engine_, base, results_, platform_), _say)


@task(name="new-stage", help={"name": "the new folder's name, e.g. 12-my-stage", "from_": "the stage to start from"})
@_reported
def new_stage(c: Context, name: str, from_: str) -> None:
    """Copy a stage folder as the starting point of a new stage."""
    target = copy_stage(CHECKOUT.root / "stages", from_, name)
    _say(f"created {target.relative_to(CHECKOUT.root)}: edit its Dockerfile and stage.toml, then `invoke verify --stage {name}`")


@task
def faults(c: Context) -> None:
    """Run every fault test (bad input, a lost Engine, Ctrl-C, ...) and print the fault matrix."""
    c.run(f"{sys.executable} -m tests.fault_matrix", pty=False)


ns = Collection(bases, build, verify, report, all_stages, sweep, matrix, deps, slim, layers, new_stage, clean, faults)
