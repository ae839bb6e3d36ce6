import dataclasses
import json

from harness.render.sweep import TUTORIAL_RELEASE, is_debian_based, render_sweep_json, render_sweep_markdown

from .conftest import REPO_ROOT
from .test_report import ladder


def test_only_debian_based_stages_are_swept() -> None:
    stages = REPO_ROOT / "stages"
    assert is_debian_based(stages / "01-naive", "debian:trixie")
    assert is_debian_based(stages / "04-slim-base", "debian:trixie")  # debian:trixie-slim
    assert is_debian_based(stages / "07-scratch-libs", "debian:bullseye")
    assert not is_debian_based(stages / "05-alpine", "debian:trixie")


def test_the_sweep_puts_releases_side_by_side_with_the_tutorial_first() -> None:
    bookworm = ladder()
    trixie = dataclasses.replace(ladder(s01=650_000_000), base="debian:trixie")
    text = render_sweep_markdown([bookworm, trixie], "invoke sweep --bases debian:bookworm,debian:trixie")
    header = next(line for line in text.splitlines() if line.startswith("| stage"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == ["stage", TUTORIAL_RELEASE, "bookworm", "trixie"]
    row = next(line for line in text.splitlines() if "`01-naive`" in line)
    assert [cell.strip() for cell in row.strip("|").split("|")] == ["`01-naive`", "235MB", "622MB", "650MB"]
    assert text.count("| holds ") >= 8
    data = json.loads(render_sweep_json([bookworm, trixie], "invoke sweep --bases debian:bookworm,debian:trixie"))
    assert data["bases"] == ["debian:bookworm", "debian:trixie"] and len(data["runs"]) == 2
    # Each run records the command that made it, not `invoke all`.
    assert {run["generated_by"] for run in data["runs"]} == {"invoke sweep --bases debian:bookworm,debian:trixie"}


def test_a_sweep_runs_the_debian_based_stages_once_per_base(tmp_path) -> None:
    import shutil

    from harness.records.settings import Settings
    from harness.run.sweep import parse_bases, sweep_bases

    from .fakes import FakeEngine, _image

    shutil.copytree(REPO_ROOT / "hello", tmp_path / "hello")
    shutil.copytree(REPO_ROOT / "stages", tmp_path / "stages")
    bases = parse_bases("debian:bullseye, debian:trixie,")
    assert bases == ("debian:bullseye", "debian:trixie")
    engine = FakeEngine(images={f"{base}{slim}": _image(100_000_000) for base in bases for slim in ("", "-slim")})
    said: list[str] = []
    reports = sweep_bases(engine, Settings(tmp_path), bases, said.append)
    assert [report.base for report in reports] == list(bases) and "== debian:trixie" in said
    for report in reports:
        names = {stage.name for stage in report.stages}
        assert "01-naive" in names and "05-alpine" not in names
