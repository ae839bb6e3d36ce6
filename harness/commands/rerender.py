"""`invoke report`: RESULTS.md and the chart rendered again from results.json, or one stage's section.

`invoke report --everything` renders again every generated file of a results
folder from the JSON beside it (each platform's folder, SWEEP.md, ENGINES.md
too): CI runs it after the tests and fails on any difference, so a hand edit
of a generated file, or a renderer change whose results were not written
again, cannot land.
"""

from __future__ import annotations

from pathlib import Path

from harness.atomic import write_files
from harness.commands.done import Done
from harness.records.settings import Progress
from harness.render.chart import CHART_NAME, render_svg
from harness.render.markdown import render_markdown, stage_section
from harness.render.matrix import MATRIX_JSON, MATRIX_MARKDOWN, read_matrix_json, render_matrix_markdown
from harness.render.results import JSON_NAME, MARKDOWN_NAME, read_generated_by, read_report
from harness.render.sweep import SWEEP_JSON, SWEEP_MARKDOWN, read_sweep_json, render_sweep_markdown
from harness.stages.stage import names_stage


def report_results(results_dir: Path, stage: str | None, say: Progress, everything: bool = False) -> Done:
    """The whole report written again (with `everything`, every generated file), or one stage's section said."""
    if stage is not None:
        return show_stage(results_dir, stage, say)
    return render_everything(results_dir, say) if everything else render_again(results_dir, say)


def render_everything(results_dir: Path, say: Progress) -> Done:
    """Every file of `results_dir` that a renderer makes from JSON, made again: RESULTS.md and the chart (here
    and in each folder holding a results.json, a platform's), SWEEP.md and ENGINES.md."""
    for folder in sorted({path.parent for path in results_dir.glob(f"*/{JSON_NAME}")} | {results_dir}):
        if (folder / JSON_NAME).is_file():
            render_again(folder, say)
    if (sweep := results_dir / SWEEP_JSON).is_file():
        reports, command = read_sweep_json(sweep.read_text(encoding="utf-8"))
        write_files(results_dir, {SWEEP_MARKDOWN: render_sweep_markdown(reports, command)})
        say(f"wrote {results_dir / SWEEP_MARKDOWN}")
    if (engines := results_dir / MATRIX_JSON).is_file():
        runs, command = read_matrix_json(engines.read_text(encoding="utf-8"))
        write_files(results_dir, {MATRIX_MARKDOWN: render_matrix_markdown(runs, command)})
        say(f"wrote {results_dir / MATRIX_MARKDOWN}")
    return Done()


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
