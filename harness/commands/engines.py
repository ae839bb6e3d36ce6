"""`invoke matrix`: the ladder on several Engines, one after another, and ENGINES.md and engines.json."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.atomic import write_files
from harness.commands.done import Done
from harness.commands.options import Checkout, results_dir, settings
from harness.records.engine import Engine
from harness.records.errors import EngineLost, EngineUnavailable, UsageError
from harness.records.settings import Progress, Settings
from harness.render.matrix import (
    MATRIX_JSON,
    MATRIX_MARKDOWN,
    EngineRun,
    EngineTarget,
    render_matrix_json,
    render_matrix_markdown,
)
from harness.run.pipeline import measure_stages

Connect = Callable[[str], Engine]  # a DOCKER_HOST -> the Engine answering there


@dataclass(frozen=True)
class Matrix:
    """`invoke matrix`'s options, read."""

    targets: tuple[EngineTarget, ...]
    settings: Settings
    results_dir: Path
    command: str  # what ENGINES.md and engines.json name as their maker


def matrix_options(checkout: Checkout, engines: Sequence[str], base: str, results: str | None, platform: str | None) -> Matrix:
    try:
        targets = tuple(EngineTarget.parse(text) for text in engines)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not targets:
        raise UsageError("give at least one --engine NAME=DOCKER_HOST")
    command = "invoke matrix " + " ".join(f"--engine {t.name}={t.host}" for t in targets)
    command += f" --platform {platform}" if platform else ""
    # Sizes and outcomes: the wire sizes are in RESULTS.md for the default Engine.
    chosen = dataclasses.replace(settings(checkout, base, platform=platform), wire_size=False)
    return Matrix(targets, chosen, results_dir(results, chosen, checkout), command)


def run_matrix(connect: Connect, matrix: Matrix, say: Progress) -> Done:
    runs = [run_on(connect, target, matrix.settings, say) for target in matrix.targets]
    write_files(
        matrix.results_dir,
        {MATRIX_MARKDOWN: render_matrix_markdown(runs, matrix.command), MATRIX_JSON: render_matrix_json(runs, matrix.command)},
    )
    say(f"wrote {matrix.results_dir / MATRIX_MARKDOWN} and {matrix.results_dir / MATRIX_JSON}")
    problems = [run.target.name for run in runs if run.error or run.report is None or not run.report.ok]
    if problems:
        return Done.failed(
            f"Engines where the ladder did not run or some stage did not do what it expects: {', '.join(problems)}"
        )
    return Done()


def run_on(connect: Connect, target: EngineTarget, settings: Settings, say: Progress) -> EngineRun:
    """The ladder on one Engine; an Engine that cannot be reached or is lost part-way is recorded, not fatal."""
    say(f"== {target.name} ({target.host})")
    try:
        measured = measure_stages(connect(target.host), settings, progress=lambda line: say(f"[{target.name}] {line}"))
    except EngineUnavailable as error:
        say(f"[{target.name}] {error}")
        return EngineRun(target, None, str(error))
    if measured.lost is not None:
        lost = EngineLost(measured.lost)
        say(f"[{target.name}] {lost}")
        return EngineRun(target, measured.report, str(lost))
    return EngineRun(target, measured.report)
