"""`invoke report`: RESULTS.md and the chart rendered again from results.json, or one stage's section."""

from __future__ import annotations

from pathlib import Path

from harness.atomic import write_files
from harness.commands.done import Done
from harness.records.settings import Progress
from harness.render.chart import CHART_NAME, render_svg
from harness.render.markdown import render_markdown, stage_section
from harness.render.results import JSON_NAME, MARKDOWN_NAME, read_generated_by, read_report
from harness.stages.stage import names_stage


def report_results(results_dir: Path, stage: str | None, say: Progress) -> Done:
    """The whole report written again, or (with `stage`) one stage's section said."""
    return render_again(results_dir, say) if stage is None else show_stage(results_dir, stage, say)


def render_again(results_dir: Path, say: Progress) -> Done:
    """RESULTS.md and sizes.svg from results.json, naming the command that measured it."""
    run = read_report(results_dir)
    markdown = render_markdown(run, read_generated_by(results_dir))
    write_files(results_dir, {MARKDOWN_NAME: markdown, CHART_NAME: render_svg(run)})
    say(f"wrote {results_dir / MARKDOWN_NAME}")
    return Done()


def show_stage(results_dir: Path, stage: str, say: Progress) -> Done:
    """The section of each stage `stage` names (a folder name or its number)."""
    chosen = [result for result in read_report(results_dir).stages if names_stage(result.name, stage)]
    if not chosen:
        return Done.failed(f"error: no stage {stage!r} in {results_dir / JSON_NAME}")
    for result in chosen:
        say(stage_section(result))
    return Done()
