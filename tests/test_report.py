import dataclasses
import json
import os
import re
from pathlib import Path

import pytest

from harness.atomic import write_files
from harness.records.engine import BuildRecord, EngineFacts, ImageInfo, LayerRecord, RunResult
from harness.records.errors import ResultsWriteError
from harness.records.layers import LayerFigure, LayerFigures
from harness.records.report import Anchor, Outcome, RunReport, StageResult
from harness.render.chart import render_svg
from harness.render.claims import evaluate
from harness.render.markdown import readme_with_table, render_markdown, summary_table
from harness.render.results import from_dict, read_generated_by, read_report, render_json, to_dict
from harness.render.sweep import render_sweep_json, render_sweep_markdown

from .conftest import REPO_ROOT

HELLO = RunResult("hello!\n", "", 0)
MISSING = RunResult("", "exec /hello: no such file or directory\n", 1)


ENGINE = EngineFacts("Docker Engine", "20.10.24", "1.41", "overlay2", "classic builder (API build, version 1)")


def figures_of(size: int) -> LayerFigures:
    """Layer figures whose headline is `size`: one layer, nothing dead."""
    layer = LayerFigure("/bin/sh -c make", size, 1, 0, 0, 0, 0, None, ())
    return LayerFigures(size, size, 0, None, 1.0, 0, 0.0, (layer,), ())


def stage(name: str, size: int | None, article: str | None = None, observed: RunResult = HELLO, **kw: object) -> StageResult:
    info = (
        None
        if size is None
        else ImageInfo("sha256:x", size, size + 1000, 2, (LayerRecord(size - 10, ""), LayerRecord(10, "/bin/sh -c make")))
    )
    kw.setdefault("layer_figures", None if size is None else figures_of(size))
    return StageResult(
        name=name,
        title=name.title(),
        changes=f"what {name} | changed",
        outcome=kw.pop("outcome", Outcome.PASS),  # type: ignore[arg-type]
        image=f"hello-ladder/{name}:debian-bookworm",
        article_size=article,
        expected={"stdout": "hello!\n"},
        image_info=info,
        build=None if info is None else BuildRecord("sha256:x", 12.5, False),
        observed=observed if info else None,
        **kw,  # type: ignore[arg-type]
    )


def ladder(**sizes: int | None) -> RunReport:
    defaults = {"01": 622_000_000, "02": 704_000_000, "03": 382_000_000, "06": 15_960, "07": 2_157_192}
    defaults.update({key.removeprefix("s"): value for key, value in sizes.items()})
    names = {
        "01": "01-naive",
        "02": "02-purge-layers",
        "03": "03-single-layer",
        "06": "06-scratch-dynamic",
        "07": "07-scratch-libs",
    }
    stages = [
        stage(names[n], size, "235MB" if n == "01" else None, MISSING if n == "06" else HELLO) for n, size in defaults.items()
    ]
    return RunReport(base="debian:bookworm", engine=ENGINE, stages=tuple(stages))


def test_every_claim_holds_on_a_ladder_like_the_tutorials() -> None:
    assert [claim.holds for claim in evaluate(ladder())] == [True, True, True, True, True]


def test_06s_claim_holds_in_qemus_words_under_emulation() -> None:
    qemu = RunResult("", "aarch64-binfmt-P: Could not open '/lib/ld-linux-aarch64.so.1': No such file or directory\n", 255)
    report = ladder(s06=70_440)
    stages = tuple(dataclasses.replace(s, observed=qemu) if s.name.startswith("06") else s for s in report.stages)
    claims = evaluate(dataclasses.replace(report, stages=stages))
    assert [claim.verdict for claim in claims if claim.text.startswith("06")] == ["holds"]


def test_claims_do_not_hold_when_the_figures_say_otherwise() -> None:
    claims = evaluate(ladder(s02=600_000_000, s07=7_000_000))
    verdicts = {claim.text.split()[0]: claim.verdict for claim in claims}
    assert verdicts["02"] == "does not hold"
    assert [claim.verdict for claim in claims if claim.text.startswith("07")] == ["does not hold", "does not hold"]


def test_claims_without_their_stage_are_not_checked() -> None:
    claims = evaluate(ladder(s01=None))
    assert [claim.verdict for claim in claims] == ["not checked", "not checked", "holds", "holds", "not checked"]
    assert "01-naive was not measured" in claims[0].evidence


def test_the_table_shows_sizes_as_docker_images_does_and_the_ratio() -> None:
    table = summary_table(ladder())
    row = next(line for line in table.splitlines() if "01-naive" in line)
    assert "| 235MB " in row and "| 622MB " in row and "| 2.65 " in row
    assert "what 01-naive \\| changed" in row  # a pipe in a cell is escaped


def test_json_round_trips() -> None:
    report = ladder()
    again = from_dict(json.loads(render_json(report, "invoke all")))
    assert again == report
    versioned = dataclasses.replace(report, versions=(("docker", "7.2.0"), ("pyelftools", "0.33")))
    assert json.loads(render_json(versioned, "invoke all"))["versions"] == {"docker": "7.2.0", "pyelftools": "0.33"}
    assert from_dict(json.loads(render_json(versioned, "invoke all"))) == versioned
    data = to_dict(report, "invoke all --base debian:trixie")
    assert data["generated_by"] == "invoke all --base debian:trixie"
    first = data["stages"][0]
    assert first["size_human"] == "622MB" and first["article_size"] == "235MB"
    assert set(first) >= {"name", "title", "image", "size_bytes", "size_human", "layers", "outcome", "expected", "observed"}
    assert first["layers"][1] == {"size_bytes": 10, "created_by": "/bin/sh -c make"}
    assert data["base"] == "debian:bookworm" and data["engine"]["version"] == "20.10.24"


def test_unchanged_bytes_round_trip_and_are_not_written_where_never_measured() -> None:
    report = ladder()
    measured = dataclasses.replace(figures_of(100), unchanged_bytes=40)
    stages = tuple(dataclasses.replace(s, layer_figures=measured) if s.name == "02-purge-layers" else s for s in report.stages)
    again = from_dict(json.loads(render_json(dataclasses.replace(report, stages=stages), "invoke all")))
    assert again.stage("02-purge-layers").layer_figures.unchanged_bytes == 40  # type: ignore[union-attr]
    # Results written before the figure was measured read as None and are written again as they were.
    first = to_dict(report, "invoke all")["stages"][0]["layer_figures"]
    assert "unchanged_bytes" not in first and from_dict(to_dict(report, "invoke all")) == report


def test_claims_are_computed_once_per_report(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.render.claims

    calls: list[RunReport] = []

    def counting(report: RunReport) -> tuple[harness.render.claims.Claim, ...]:
        calls.append(report)
        return evaluate(report)

    monkeypatch.setattr(harness.render.claims, "evaluate", counting)
    report = ladder()
    render_json(report, "invoke all"), render_markdown(report), render_sweep_markdown([report], "invoke sweep")
    assert calls == [report]


def test_committed_results_are_what_the_renderer_makes_of_them() -> None:
    """RESULTS.md is generated from results.json, never edited by hand."""
    results = REPO_ROOT / "results"
    report = read_report(results)
    assert (results / "RESULTS.md").read_text(encoding="utf-8") == render_markdown(report, read_generated_by(results))
    assert (results / "results.json").read_text(encoding="utf-8") == render_json(report, read_generated_by(results))
    assert (results / "sizes.svg").read_text(encoding="utf-8") == render_svg(report)
    stored_claims = json.loads((results / "results.json").read_text())["claims"]
    assert stored_claims == to_dict(report, "invoke all")["claims"]


@pytest.mark.fault("The disk fills while results are written", "a clear error; earlier results intact; no temporary file left")
def test_writing_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_files(tmp_path, {"a.json": "old a", "b.md": "old b"})
    real_fsync = os.fsync
    calls = []

    def failing_fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(ResultsWriteError, match="No space left on device; the earlier results are unchanged"):
        write_files(tmp_path, {"a.json": "new a", "b.md": "new b"})
    assert (tmp_path / "a.json").read_text() == "old a"
    assert (tmp_path / "b.md").read_text() == "old b"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.json", "b.md"]  # no temporary file left


@pytest.mark.fault("The results folder cannot be written", "a clear error; nothing written")
def test_a_results_folder_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    with pytest.raises(ResultsWriteError, match="cannot write results"):
        write_files(blocker, {"a.json": "x"})


def test_reading_missing_results_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(ResultsWriteError, match="run `invoke all` first"):
        read_report(tmp_path)


def test_the_readme_shows_the_committed_results_table() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_with_table(readme, read_report(REPO_ROOT / "results")) == readme


def test_each_stage_says_what_its_step_saved() -> None:
    text = render_markdown(ladder())
    assert "Against `01-naive`: adds 82,000,000 bytes (622MB → 704MB, 1.13 of its size)." in text
    assert "Against `02-purge-layers`: saves 322,000,000 bytes (704MB → 382MB, 0.543 of its size)." in text


def test_the_chart_is_svg_with_a_bar_per_measured_stage() -> None:
    import xml.etree.ElementTree as ElementTree

    from harness.render.chart import render_svg

    svg = render_svg(ladder(s03=None))
    root = ElementTree.fromstring(svg)
    texts = [element.text for element in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "01-naive" in texts and "07-scratch-libs" in texts and "03-single-layer" not in texts
    assert "622MB" in texts and "2.16MB" in texts


def test_layer_figures_explain_what_a_layer_hides() -> None:
    import dataclasses

    purge = LayerFigure(
        "/bin/sh -c apt-get purge -y gcc",
        41_141_456,
        0,
        16,
        47,
        41_141_456,
        41_141_456,
        12_000_000,
        (("var/cache/apt/pkgcache.bin", 39_978_436),),
    )
    figures = LayerFigures(
        704_000_000, 619_000_000, 85_222_169, 300_000_000, 0.8785, 127_000_000, 0.2, (purge,), (("gcc-12", 69_873_664),)
    )
    report = ladder()
    stages = tuple(dataclasses.replace(s, layer_figures=figures) if s.name == "02-purge-layers" else s for s in report.stages)
    text = render_markdown(dataclasses.replace(report, stages=stages))
    assert (
        "Layer 1 (`RUN apt-get purge -y gcc`) stores 41.1MB, mostly `/var/cache/apt/pkgcache.bin` (40MB), and hides 41.1MB"
        in text
    )
    assert "| `02-purge-layers`    | 704MB  | 619MB  | 85.2MB | 87.8%" in text
    assert "1 packages, 69.9MB: gcc-12 (69.9MB)." in text


def test_each_runtime_gets_a_table_of_its_own_against_its_naive_stage() -> None:
    go = [stage("20-go-naive", 1_230_000_000, runtime="go"), stage("21-go-scratch", 1_216_512, runtime="go")]
    python = [
        stage("40-python-naive", 344_000_000, runtime="python"),
        stage("41-python-one-layer", 162_000_000, runtime="python"),
        stage("42-python-broken", None, runtime="python", outcome=Outcome.ERROR),
    ]
    run = RunReport("debian:bookworm", ENGINE, (*ladder().stages, *go, *python))
    text = render_markdown(run)
    assert "`21-go-scratch`" not in summary_table(run)  # the tutorial's table is the C program's
    go_table = text.split("### Runtime: go\n\n", 1)[1].split("\n\n", 1)[0]
    assert "times smaller than 20-go-naive" in go_table
    assert [row.split("|")[5].strip() for row in go_table.splitlines()[2:]] == ["1", "1,011"]
    python_table = text.split("### Runtime: python\n\n", 1)[1].split("\n\n", 1)[0]
    assert [row.split("|")[5].strip() for row in python_table.splitlines()[2:]] == ["1", "2.12", "–"]


def test_anchors_stand_beside_their_stage_with_their_source_and_round_trip() -> None:
    cc = Anchor("distroless cc, with a hello", "23MB", "a README (2022): `distroless:cc | 23MB`")
    cpp = [stage("50-cpp-naive", 691_000_000, runtime="cpp"), stage("52-cpp-scratch", 5_482_615, runtime="cpp", anchors=(cc,))]
    run = RunReport("debian:bookworm", ENGINE, (*ladder().stages, *cpp))
    section = render_markdown(run).split("### Beside the images a user would otherwise pick\n\n", 1)[1]
    row = next(line for line in section.splitlines() if line.startswith("| `52-cpp-scratch`"))
    cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]  # an escaped pipe is not a column
    assert cells == [
        "`52-cpp-scratch`",
        "5.48MB",
        "distroless cc, with a hello",
        "23MB",
        "4.2× smaller",
        "a README (2022): `distroless:cc \\| 23MB`",
    ]
    assert from_dict(json.loads(render_json(run, "invoke all"))) == run
    larger = dataclasses.replace(run.stages[-1], anchors=(Anchor("a jlink'd runtime", "4MB", "a blog"),))
    section = render_markdown(dataclasses.replace(run, stages=(*run.stages[:-1], larger))).split("otherwise pick\n\n", 1)[1]
    assert "| 1.37× larger " in section
    # A run with no anchors renders no section and writes no key: results from before anchors read and render unchanged.
    assert "Beside the images" not in render_markdown(ladder())
    assert all("anchors" not in stage for stage in to_dict(ladder(), "invoke all")["stages"])


def test_a_scratch_image_says_what_its_size_is_made_of() -> None:
    import dataclasses

    copy = LayerFigure(
        "COPY dir:0552e0c9fefc in /",
        10_192_702,
        17,
        0,
        0,
        0,
        0,
        None,
        (("usr/bin/python3.11", 6_809_944), ("usr/lib/x86_64-linux-gnu/libc.so.6", 1_922_136)),
    )
    figures = LayerFigures(2_157_192, 10_192_702, 0, None, 1.0, 0, 0.0, (copy,), ())
    report = ladder()
    stages = tuple(dataclasses.replace(s, layer_figures=figures) if s.name == "07-scratch-libs" else s for s in report.stages)
    text = render_markdown(dataclasses.replace(report, stages=stages))
    assert "Its largest files: `/usr/bin/python3.11` (6.81MB), `/usr/lib/x86_64-linux-gnu/libc.so.6` (1.92MB)." in text


def test_committed_arm64_results_are_what_the_renderer_makes_of_them() -> None:
    """A platform's results, in their own folder, are generated the same way."""
    results = REPO_ROOT / "results" / "arm64"
    report = read_report(results)
    assert report.platform == "linux/arm64"
    assert (results / "RESULTS.md").read_text(encoding="utf-8") == render_markdown(report, read_generated_by(results))
    assert (results / "results.json").read_text(encoding="utf-8") == render_json(report, read_generated_by(results))
    assert (results / "sizes.svg").read_text(encoding="utf-8") == render_svg(report)


def test_committed_sweep_is_what_the_renderer_makes_of_it() -> None:
    """SWEEP.md and sweep.json are generated from the sweep's reports, never edited by hand."""
    results = REPO_ROOT / "results"
    data = json.loads((results / "sweep.json").read_text(encoding="utf-8"))
    reports = [from_dict(run) for run in data["runs"]]
    assert [report.base for report in reports] == data["bases"]
    assert (results / "SWEEP.md").read_text(encoding="utf-8") == render_sweep_markdown(reports, data["generated_by"])
    assert (results / "sweep.json").read_text(encoding="utf-8") == render_sweep_json(reports, data["generated_by"])


def test_everything_generated_is_rendered_again_from_its_json(tmp_path: Path) -> None:
    """What CI's drift check runs: a hand edit of any generated file is undone, the committed files are unchanged."""
    import shutil

    from harness.commands.rerender import report_results

    results = tmp_path / "results"
    shutil.copytree(REPO_ROOT / "results", results)
    generated = ["RESULTS.md", "sizes.svg", "arm64/RESULTS.md", "arm64/sizes.svg", "SWEEP.md", "ENGINES.md"]
    for name in generated:
        (results / name).write_text("edited by hand\n", encoding="utf-8")
    said: list[str] = []
    assert report_results(results, None, said.append, everything=True).ok
    for name in generated:
        assert (results / name).read_text(encoding="utf-8") == (REPO_ROOT / "results" / name).read_text(encoding="utf-8"), name
    assert len(said) == 4


def test_the_headline_leaves_out_what_a_layer_stores_unchanged_and_the_tars_content_is_shown_beside_it() -> None:
    report = ladder()
    purged = report.stage("02-purge-layers")
    assert purged is not None and purged.layer_figures is not None
    figures = dataclasses.replace(purged.layer_figures, content_bytes=705_615_432, unchanged_bytes=1_615_432)
    report = dataclasses.replace(
        report, stages=tuple(dataclasses.replace(s, layer_figures=figures) if s.name == purged.name else s for s in report.stages)
    )
    again = report.stage("02-purge-layers")
    assert again is not None and again.size_bytes == 704_000_000
    table = render_markdown(report).split("## Sizes as this Engine reports them", 1)[1].split("## Stages", 1)[0]
    row = next(line for line in table.splitlines() if line.startswith("| `02-purge-layers`"))
    assert [cell.strip() for cell in row.split("|")[2:4]] == ["704MB (704,000,000)", "706MB (705,615,432)"]
