"""The ladder's tasks: provide the bases (`invoke bases`), build or verify a stage, run them all (`invoke all`)."""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path

from harness.atomic import write_files
from harness.commands.done import Done
from harness.commands.options import DEFAULT_JOBS, Checkout, results_dir, settings
from harness.custody.ledger import Ledger
from harness.layers.cache import LayerCache
from harness.records.engine import Engine
from harness.records.errors import BaseUnavailable, EngineLost, UsageError
from harness.records.settings import DEFAULT_BASE, Progress, Settings
from harness.records.units import human_size
from harness.render.chart import CHART_NAME, render_svg
from harness.render.markdown import readme_with_table, render_markdown, stage_section, summary_table
from harness.render.results import JSON_NAME, MARKDOWN_NAME, render_json
from harness.run.bases import ensure_base
from harness.run.pipeline import measure_stages, run_stages
from harness.run.stage import stage_bases
from harness.stages.stage import discover, load_stage
from harness.statusboard import StatusBoard

PARTIAL_NAME = "results.partial.json"


def provide_bases(engine: Engine, settings: Settings, say: Progress) -> Done:
    """Every base the stages need, one line each; a base that cannot be had is said, and is not a failure."""
    ledger = Ledger.open(settings.repo_root, engine.identity())
    needed = sorted({ref for folder in discover(settings.stages_dir) for ref in stage_bases(load_stage(folder), settings)})
    missing = 0
    for ref in needed:
        try:
            status = ensure_base(engine, ref, ledger, LayerCache.for_store(engine.describe().image_store), say)
        except BaseUnavailable as error:
            missing += 1
            say(f"unavailable: {error}")
            continue
        line = f"{ref}: {status.source.value}, {human_size(status.size_bytes)}"
        if status.deviation is not None:
            line += f" (official image: {status.official_size}, {status.deviation:+.1%})"
        say(line)
    if missing:
        say(f"{missing} base(s) unavailable: stages that need them will be skipped or reported as errors.")
    return Done()


def build_stage(engine: Engine, settings: Settings, stage: str, say: Progress, board: StatusBoard | None = None) -> Done:
    """One stage built, run and checked, then its section of the report."""
    report = run_stages(engine, settings, stage, progress=say, board=board)
    for result in report.stages:
        say(stage_section(result))
    return Done(report.ok)


def verify_stage(engine: Engine, settings: Settings, stage: str, say: Progress, board: StatusBoard | None = None) -> Done:
    """One stage built (from cache when possible), run and checked; the progress lines tell how it went."""
    return Done(run_stages(engine, settings, stage, progress=say, board=board).ok)


@dataclass(frozen=True)
class LadderRun:
    """`invoke all`'s options, read: how to run, where the results go, and what they name as their maker."""

    settings: Settings
    results_dir: Path
    command: str
    readme: Path | None  # the README whose table follows these results; None: they are not the committed ones


def ladder_run(
    checkout: Checkout,
    base: str,
    no_cache: bool,
    results: str | None,
    no_wire: bool,
    jobs: int,
    platform: str | None,
    *,
    build_timeout: float = 0,
) -> LadderRun:
    """`build_timeout`: every stage's build step limit in seconds (0: each stage's own `build_timeout`)."""
    if jobs < 0:
        raise UsageError("--jobs takes a number of stages, 1 or more")
    if build_timeout < 0:
        raise UsageError("--build-timeout takes a number of seconds, more than 0")
    chosen = settings(checkout, base, no_cache, platform)
    folder = results_dir(results, chosen, checkout)
    chosen = dataclasses.replace(
        chosen,
        wire_size=not no_wire,
        sbom_dir=folder / "sbom",
        jobs=jobs or DEFAULT_JOBS,
        build_timeout_s=build_timeout or None,
    )
    # What the results record as their maker: the options that change what is measured, not where it is written
    # (nor --jobs: the results are the same with any number).
    options = [
        *(["--base", base] if base != DEFAULT_BASE else []),
        *(["--no-cache"] if no_cache else []),
        *(["--no-wire"] if no_wire else []),
        *(["--platform", str(chosen.platform)] if chosen.platform is not None else []),
    ]
    # The README shows the committed results, so it follows them.
    committed = folder.resolve() == checkout.results and chosen.platform is None
    return LadderRun(chosen, folder, shlex.join(["invoke", "all", *options]), checkout.readme if committed else None)


def run_ladder(engine: Engine, run: LadderRun, say: Progress, board: StatusBoard | None = None) -> Done:
    """Every stage measured, the results written (a partial file alone if the Engine is lost), the summary said.

    `board`, if any, shows the stages under way; `say` should then be its `say`, so lines land above it.
    """
    measured = measure_stages(engine, run.settings, progress=say, board=board)
    report = measured.report
    if measured.lost is not None:
        write_files(run.results_dir, {PARTIAL_NAME: render_json(report, run.command)})
        return Done.failed(
            f"error: {EngineLost(measured.lost)}\nWhat was measured before is in {run.results_dir / PARTIAL_NAME}; "
            f"{MARKDOWN_NAME} and {JSON_NAME} are unchanged."
        )
    write_files(
        run.results_dir,
        {
            JSON_NAME: render_json(report, run.command),
            MARKDOWN_NAME: render_markdown(report, run.command),
            CHART_NAME: render_svg(report),
        },
    )
    if run.readme is not None:
        write_files(run.readme.parent, {run.readme.name: readme_with_table(run.readme.read_text(encoding="utf-8"), report)})
    # A partial file of an earlier run that lost its Engine: these complete results supersede it.
    (run.results_dir / PARTIAL_NAME).unlink(missing_ok=True)
    say("")
    say(summary_table(report))
    say(f"\nwrote {run.results_dir / MARKDOWN_NAME} and {run.results_dir / JSON_NAME}")
    if not report.ok:
        problems = ", ".join(s.name for s in report.stages if s.outcome.is_problem)
        return Done.failed(f"stages that did not do what their stage.toml expects: {problems}")
    return Done()
