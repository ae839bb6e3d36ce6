import shutil
from pathlib import Path

import pytest

from harness.model import Outcome, RunResult
from harness.pipeline import Settings, run_stages

from .conftest import REPO_ROOT
from .fakes import FakeEngine, _image

BASES = {"debian:bookworm": _image(116_000_000), "debian:bookworm-slim": _image(74_000_000)}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the repository's source and stages that a test may break."""
    shutil.copytree(REPO_ROOT / "hello", tmp_path / "hello")
    shutil.copytree(REPO_ROOT / "stages", tmp_path / "stages")
    return tmp_path


def test_every_stage_is_built_run_and_judged(repo: Path) -> None:
    engine = FakeEngine(images=dict(BASES))
    engine.outputs["hello-ladder/06-scratch-dynamic:debian-bookworm"] = RunResult(
        "", "exec /hello: no such file or directory\n", 1
    )
    report = run_stages(engine, Settings(repo), progress=lambda line: None)
    outcomes = {stage.name: stage.outcome for stage in report.stages}
    assert outcomes.pop("05-alpine") is Outcome.SKIPPED  # no Alpine image, and none to pull or bootstrap
    assert set(outcomes.values()) == {Outcome.PASS}
    assert report.ok
    # The run removes the source image of each slim stage, and the dangling images labelled with its namespace.
    slim_stages = [folder.name for folder in sorted((repo / "stages").iterdir()) if "[slim]" in (folder / "stage.toml").read_text()]
    assert "08-scratch-auto" in slim_stages and "42-python-scratch" in slim_stages
    managed = ("hello-ladder.managed=true", "hello-ladder.namespace=hello-ladder")
    assert engine.removed_filters == [
        *(((*managed, f"hello-ladder.stage={name}", "hello-ladder.role=builder"), False) for name in slim_stages),
        (managed, True),
    ]


def test_runs_are_locked_down_and_labelled(repo: Path) -> None:
    engine = FakeEngine(images=dict(BASES))
    run_stages(engine, Settings(repo), "07", progress=lambda line: None)
    [(image, command, policy, labels)] = engine.ran
    assert (image, command) == ("hello-ladder/07-scratch-libs:debian-bookworm", ("/hello",))
    assert policy.user == "65534:65534" and policy.timeout_s == 30.0
    assert labels["hello-ladder.role"] == "run" and labels["hello-ladder.stage"] == "07-scratch-libs"


def test_the_builder_stage_of_a_multi_stage_build_is_labelled(repo: Path) -> None:
    engine = FakeEngine(images=dict(BASES))
    run_stages(engine, Settings(repo), "07", progress=lambda line: None)
    [(tag, dockerfile, labels)] = engine.built
    assert 'LABEL "hello-ladder.managed"="true"' in dockerfile.split("FROM scratch")[0]
    assert "LABEL" not in dockerfile.split("FROM scratch")[1]
    assert labels["hello-ladder.role"] == "stage" and labels["hello-ladder.base"] == "debian:bookworm"


@pytest.mark.fault('An invalid stage.toml, a failing build', 'those stages are errors with file/field or instruction and log; the others run')
def test_a_broken_stage_is_an_error_and_the_others_still_run(repo: Path) -> None:
    (repo / "stages" / "03-single-layer" / "stage.toml").write_text("title = \n")
    engine = FakeEngine(images=dict(BASES), failing_builds={"02-purge-layers": "The command returned a non-zero code: 2"})
    report = run_stages(engine, Settings(repo), progress=lambda line: None)
    by_name = {stage.name: stage for stage in report.stages}
    assert by_name["02-purge-layers"].outcome is Outcome.ERROR
    assert by_name["02-purge-layers"].log_tail[-1] == "make: *** No rule"
    assert "RUN make" in str(by_name["02-purge-layers"].reason)
    assert by_name["03-single-layer"].outcome is Outcome.ERROR
    assert "stage.toml" in str(by_name["03-single-layer"].reason)
    assert by_name["07-scratch-libs"].outcome is Outcome.PASS
    assert not report.ok


def test_a_missing_debian_base_is_an_error_not_a_skip(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.bases.shutil.which", lambda name: None)
    report = run_stages(FakeEngine(), Settings(repo), "01", progress=lambda line: None)
    [stage] = report.stages
    assert stage.outcome is Outcome.ERROR
    assert "debian:bookworm: base image unavailable" in str(stage.reason)


def test_another_base_changes_the_tags_and_build_args(repo: Path) -> None:
    engine = FakeEngine(images={"debian:trixie": _image(1)})
    report = run_stages(engine, Settings(repo, base="debian:trixie"), "01", progress=lambda line: None)
    assert report.stages[0].image == "hello-ladder/01-naive:debian-trixie"
    assert report.base == "debian:trixie"


def test_an_unknown_stage_is_a_clear_error(repo: Path) -> None:
    from harness.errors import StageConfigError

    with pytest.raises(StageConfigError, match="no such stage"):
        run_stages(FakeEngine(), Settings(repo), "99", progress=lambda line: None)
