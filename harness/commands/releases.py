"""`invoke sweep`: the Debian-based stages on each of several Debian releases, and SWEEP.md and sweep.json."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.atomic import write_files
from harness.commands.done import Done
from harness.commands.options import Checkout, results_dir, settings
from harness.records.engine import Engine
from harness.records.settings import DEFAULT_BASE, Progress, Settings
from harness.render.sweep import SWEEP_JSON, SWEEP_MARKDOWN, render_sweep_json, render_sweep_markdown
from harness.run.sweep import parse_bases, sweep_bases


@dataclass(frozen=True)
class Sweep:
    """`invoke sweep`'s options, read."""

    settings: Settings
    bases: tuple[str, ...]
    results_dir: Path
    command: str  # what SWEEP.md and sweep.json name as their maker


def sweep_options(checkout: Checkout, bases: str, results: str | None, platform: str | None) -> Sweep:
    command = f"invoke sweep --bases {bases}" + (f" --platform {platform}" if platform else "")
    chosen = settings(checkout, DEFAULT_BASE, platform=platform)
    return Sweep(chosen, parse_bases(bases), results_dir(results, chosen, checkout), command)


def run_sweep(engine: Engine, sweep: Sweep, say: Progress) -> Done:
    reports = sweep_bases(engine, sweep.settings, sweep.bases, say)
    write_files(
        sweep.results_dir,
        {SWEEP_MARKDOWN: render_sweep_markdown(reports, sweep.command), SWEEP_JSON: render_sweep_json(reports, sweep.command)},
    )
    say(f"wrote {sweep.results_dir / SWEEP_MARKDOWN} and {sweep.results_dir / SWEEP_JSON}")
    if not all(report.ok for report in reports):
        return Done.failed("some stages did not do what their stage.toml expects on some release")
    return Done()
