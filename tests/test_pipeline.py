import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

from harness.custody.ledger import ROLE_BUILDER, Ledger
from harness.records.buildlog import StageTops
from harness.records.engine import ImageInfo, LayerRecord, RunResult
from harness.records.report import Outcome
from harness.records.settings import Settings
from harness.run.pipeline import run_stages

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
    # The libraries that measured the run are recorded with it.
    assert dict(report.versions)["docker"] and set(dict(report.versions)) >= {"docker", "pyelftools", "tabulate"}
    # The Engine's history is lined up with the layers by the saved config's empty_layer flags.
    naive = report.stage("01-naive")
    assert naive is not None and naive.image_info is not None
    assert naive.image_info.layers == naive.image_info.history and len(naive.image_info.layers) == 1
    outcomes = {stage.name: stage.outcome for stage in report.stages}
    assert outcomes.pop("05-alpine") is Outcome.SKIPPED  # no Alpine image, and none to pull or bootstrap
    assert set(outcomes.values()) == {Outcome.PASS}
    assert report.ok
    # Builder images are kept on purpose, tagged and recorded with role builder: each slim stage's source
    # image and each compile stage's last image of a multi-stage build (named by the build's own output).
    slim_stages = [
        folder.name for folder in sorted((repo / "stages").iterdir()) if "[slim]" in (folder / "stage.toml").read_text()
    ]
    assert "08-scratch-auto" in slim_stages and "42-python-scratch" in slim_stages
    ledger = Ledger.open(repo, engine.identity())
    assert engine.removed == []
    builders = {tag: entry for entry in ledger.read().images if entry.role == ROLE_BUILDER for tag in entry.tags}
    for name in slim_stages:
        source = f"{Settings(repo).tag(name)}-source"
        assert source in builders and engine.has_image(source)
    for name in ("06-scratch-dynamic", "07-scratch-libs", "09-scratch-static", "21-go-scratch", "31-rust-static"):
        compile_stage = f"{Settings(repo).tag(name)}-builder0"
        assert compile_stage in builders and engine.has_image(compile_stage)
    # One build request per stage (a [slim] stage's is its source image's; its image is written, not built).
    assert len(engine.built) == len(report.stages) - 1  # 05 has no base: not built
    # Every stage image is recorded by ID with its public tag; the bases (present, not bootstrapped) are not.
    recorded = {entry.image_id: entry for entry in ledger.read().images}
    for stage in report.stages:
        if stage.image_info is not None:
            assert recorded[stage.image_info.image_id].tags[-1] == stage.image
    assert "sha256:fake" not in recorded


def test_runs_are_locked_down_and_labelled(repo: Path) -> None:
    engine = FakeEngine(images=dict(BASES))
    settings = Settings(repo)
    sessions_seen = []
    recording = engine.run

    def run(image, command, policy, labels):  # type: ignore[no-untyped-def]
        sessions_seen.append(Ledger.open(repo, engine.identity()).read().session(labels["hello-ladder.session"]))
        return recording(image, command, policy, labels)

    engine.run = run  # type: ignore[method-assign]
    run_stages(engine, settings, "07", progress=lambda line: None)
    [(image, command, policy, labels)] = engine.ran
    assert (image, command) == ("hello-ladder/07-scratch-libs:debian-bookworm", ("/hello",))
    assert policy.user == "65534:65534" and policy.timeout_s == 30.0 and policy.memory_bytes == 64 * 1024 * 1024
    assert labels["hello-ladder.stage"] == "07-scratch-libs"
    # The session nonce, the container's proof of ownership, is in the ledger before the container is made,
    # and forgotten once the run has removed its containers.
    assert labels["hello-ladder.session"] == settings.session and sessions_seen[0] is not None
    assert Ledger.open(repo, engine.identity()).read().sessions == ()


def test_a_stage_that_says_it_needs_more_memory_gets_that_limit_and_no_more(repo: Path) -> None:
    toml = repo / "stages" / "07-scratch-libs" / "stage.toml"
    toml.write_text('memory = "512MB"\n' + toml.read_text())
    engine = FakeEngine(images=dict(BASES))
    run_stages(engine, Settings(repo), "07", progress=lambda line: None)
    [(_, _, policy, _)] = engine.ran
    assert policy.memory_bytes == 512_000_000 and policy.pids == 64 and policy.user == "65534:65534"


def test_the_final_image_carries_only_labels_of_its_inputs_and_none_of_ownership(repo: Path) -> None:
    engine = FakeEngine(images=dict(BASES))
    settings = Settings(repo)
    run_stages(engine, settings, "07", progress=lambda line: None)
    [(tag, dockerfile, labels)] = engine.built
    # One build request; the compile stage's last image, named by the build's output, kept under a tag of its own.
    builder_tag = "hello-ladder/07-scratch-libs:debian-bookworm-builder0"
    assert builder_tag in engine.images
    assert Ledger.open(repo, engine.identity()).read().image(engine.images[builder_tag].image_id) is not None
    # Built under this run's own tag, then given the public one.
    assert tag == f"hello-ladder/07-scratch-libs:debian-bookworm-{settings.session[:12]}"
    assert "hello-ladder/07-scratch-libs:debian-bookworm" in engine.images and tag not in engine.images
    assert 'LABEL "hello-ladder.namespace"="hello-ladder"' in dockerfile.split("FROM scratch")[0]
    assert "LABEL" not in dockerfile.split("FROM scratch")[1]
    # What it is built from, never who built it: the same inputs give the same image in every clone.
    assert labels == {
        "hello-ladder.namespace": "hello-ladder",
        "hello-ladder.stage": "07-scratch-libs",
        "hello-ladder.base": "debian:bookworm",
    }


def test_two_clones_build_the_same_image_and_the_public_tag_follows_the_newest_build(tmp_path: Path) -> None:
    engine = FakeEngine(images=dict(BASES))
    public = "hello-ladder/01-naive:debian-bookworm"
    ids = []
    for clone in ("first", "second"):
        repo = tmp_path / clone
        shutil.copytree(REPO_ROOT / "hello", repo / "hello")
        shutil.copytree(REPO_ROOT / "stages", repo / "stages")
        report = run_stages(engine, Settings(repo), "01", progress=lambda line: None)
        assert report.stages[0].image == public and engine.images[public].image_id == report.stages[0].image_info.image_id
        ids.append(report.stages[0].image_info.image_id)
    assert ids[0] == ids[1]


def test_a_public_tag_held_by_an_earlier_clones_image_moves_and_that_image_is_swept(repo: Path) -> None:
    earlier = dataclasses.replace(_image(5), image_id="sha256:an-earlier-clones")
    engine = FakeEngine(images={**BASES, "hello-ladder/01-naive:debian-bookworm": earlier})
    said: list[str] = []
    report = run_stages(engine, Settings(repo), "01", progress=said.append)
    assert report.stages[0].image == "hello-ladder/01-naive:debian-bookworm"
    assert engine.images["hello-ladder/01-naive:debian-bookworm"].image_id == report.stages[0].image_info.image_id
    assert any("moved from an-earlier-c" in line for line in said)
    # Left with no tag, it is removed by the end-of-run sweep (recorded in this clone's ledger when the tag moved).
    assert engine.removed == ["sha256:an-earlier-clones"]


def test_the_classic_builders_output_names_each_earlier_stages_last_image() -> None:
    tops = StageTops()
    for line in [
        "Step 1/7 : ARG BASE",
        "Step 2/7 : FROM ${BASE} AS build",
        " ---> 1111aaaa2222",
        "Step 3/7 : LABEL x=y",
        " ---> Running in 9999",
        "Removing intermediate container 9999",
        " ---> 3333bbbb4444",
        "Step 4/7 : RUN make",
        " ---> Running in 7777",
        " ---> 5555cccc6666",
        "Step 5/7 : FROM ${BASE} AS cached",
        " ---> 1111aaaa2222",
        "Step 6/7 : RUN make",
        " ---> Using cache",
        " ---> 6666eeee6666",
        "Step 7/7 : FROM scratch",
        "Step 8/8 : COPY --from=build /hello /",
        " ---> Running in 8888",
    ]:
        tops.read(line)
    # The stage that ran is this build's; the cached one is an earlier build's, which recorded (or keeps) it.
    assert tops.made(finished=True) == ("5555cccc6666",)
    # A build stopped after a step it ran leaves that step's image too; never the base a FROM named.
    tops.read(" ---> 7777dddd8888")
    assert tops.made(finished=False) == ("5555cccc6666", "7777dddd8888")


@pytest.mark.fault(
    "An invalid stage.toml, a failing build", "those stages are errors with file/field or instruction and log; the others run"
)
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


def test_a_scratch_image_that_cannot_be_made_is_that_stages_error_and_the_others_still_run(repo: Path) -> None:
    # The source image builds, but the binary [slim] names is not in it: the resolver cannot begin.
    toml = repo / "stages" / "08-scratch-auto" / "stage.toml"
    toml.write_text(toml.read_text().replace('binary = "/hello"', 'binary = "/not-built"'))
    report = run_stages(FakeEngine(images=dict(BASES)), Settings(repo), progress=lambda line: None)
    by_name = {stage.name: stage for stage in report.stages}
    assert by_name["08-scratch-auto"].outcome is Outcome.ERROR
    assert "/not-built" in str(by_name["08-scratch-auto"].reason)
    assert by_name["07-scratch-libs"].outcome is Outcome.PASS and by_name["09-scratch-static"].outcome is Outcome.PASS


def test_a_traced_stage_of_an_architecture_nothing_here_can_run_is_skipped_saying_why(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.slim.tracer import TracerOfAnotherArchitecture

    def untraceable(*args: object, **kwargs: object) -> None:
        raise TracerOfAnotherArchitecture("src: an s390x image, and the tracer here is amd64: no emulation for s390x")

    monkeypatch.setattr("harness.run.stage.build_slim_stage", untraceable)
    [stage] = run_stages(FakeEngine(images=dict(BASES)), Settings(repo), "08", progress=lambda line: None).stages
    assert stage.outcome is Outcome.SKIPPED and "no emulation for s390x" in str(stage.reason)


def test_a_missing_debian_base_is_an_error_not_a_skip(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.run.bases.shutil.which", lambda name: None)
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
    from harness.records.errors import StageConfigError

    with pytest.raises(StageConfigError, match="no such stage"):
        run_stages(FakeEngine(), Settings(repo), "99", progress=lambda line: None)


def test_history_is_lined_up_with_layers_by_the_empty_layer_flags_alone() -> None:
    history = (
        LayerRecord(100, "/bin/sh -c #(nop) ADD file:x in /"),
        LayerRecord(0, '/bin/sh -c #(nop)  CMD ["bash"]'),
        LayerRecord(0, "/bin/sh -c mkdir /src"),
        LayerRecord(0, "/bin/sh -c #(nop) ENV A=b"),
    )
    info = ImageInfo("sha256:x", 100, 100, 2, layers=(), history=history)
    # An empty RUN layer (mkdir: zero bytes of files) is a layer; the flag says so, not its size or its text.
    aligned = info.aligned((False, True, False, True))
    assert aligned is not None and aligned.layers == (history[0], history[2])
    assert info.aligned((False, True)) is None  # entries that do not pair up are not guessed at


def test_a_slim_stage_s_document_names_its_public_tag_whichever_run_wrote_it(repo: Path, tmp_path: Path) -> None:
    documents = []
    for session in ("a" * 32, "b" * 32):
        settings = Settings(repo, sbom_dir=tmp_path / session, session=session)
        run_stages(FakeEngine(images=dict(BASES)), settings, "08", progress=lambda line: None)
        documents.append(json.loads((tmp_path / session / "08-scratch-auto.spdx.json").read_text()))
    # A run's own tag is gone when the run ends; the document names the tag the user scans.
    image = next(p for p in documents[0]["packages"] if p["SPDXID"] == "SPDXRef-Image")
    assert image["name"] == Settings(repo).tag("08-scratch-auto")
    assert documents[0] == documents[1]


def test_a_slim_stage_with_the_same_source_and_spec_reuses_its_image(repo: Path, tmp_path: Path) -> None:
    engine = FakeEngine(images=dict(BASES))
    settings = Settings(repo, cache_dir=tmp_path / "cache", sbom_dir=tmp_path / "sbom")
    first = run_stages(engine, settings, "08", progress=lambda line: None).stages[0]
    sbom = (tmp_path / "sbom" / "08-scratch-auto.spdx.json").read_text()
    (tmp_path / "sbom" / "08-scratch-auto.spdx.json").unlink()
    said: list[str] = []
    again = run_stages(engine, settings, "08", progress=said.append).stages[0]
    assert len(engine.loaded) == 1  # written and loaded once
    assert again.image_info == first.image_info and again.outcome is first.outcome
    assert any("unchanged" in line and "reused" in line for line in said)
    assert (tmp_path / "sbom" / "08-scratch-auto.spdx.json").read_text() == sbom
    # Another spec (another command) is another image.
    toml = repo / "stages" / "08-scratch-auto" / "stage.toml"
    toml.write_text(
        toml.read_text().replace("with = [", 'with = ["tmp", ', 1)
        if "with = [" in toml.read_text()
        else toml.read_text().replace("[slim]\n", '[slim]\nwith = ["tmp"]\n')
    )
    run_stages(engine, settings, "08", progress=lambda line: None)
    assert len(engine.loaded) == 2


def test_two_jobs_give_the_results_of_one_in_name_order(repo: Path, tmp_path: Path) -> None:
    """Stages processed two at a time: the same results, byte for byte apart from build times, in the same order."""
    from harness.render.markdown import render_markdown
    from harness.render.results import render_json

    def run(jobs: int) -> tuple[str, str, list[str]]:
        engine = FakeEngine(images=dict(BASES))
        engine.outputs["hello-ladder/06-scratch-dynamic:debian-bookworm"] = RunResult(
            "", "exec /hello: no such file or directory\n", 1
        )
        said: list[str] = []
        report = run_stages(engine, Settings(repo, jobs=jobs), progress=said.append)
        report = dataclasses.replace(
            report,
            stages=tuple(
                dataclasses.replace(s, build=dataclasses.replace(s.build, seconds=0.0)) if s.build else s for s in report.stages
            ),
        )
        return render_json(report, "invoke all"), render_markdown(report), said

    json_one, markdown_one, said_one = run(1)
    json_two, markdown_two, said_two = run(2)
    assert json_two == json_one and markdown_two == markdown_one

    # Each stage's lines come together, with its result, in name order; only the `started` lines come as they happen.
    def lines(said: list[str]) -> list[str]:
        kept = [line for line in said if not line.endswith(": started")]
        return [re.sub(r"built in [0-9.]+ s", "built in N s", line) for line in kept]

    assert lines(said_two) == lines(said_one)


def test_each_stage_folder_is_read_once_per_run(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Dockerfile and stage.toml are opened once each by a run, whatever the stage does (bases, build, [slim])."""
    import io

    opened: list[str] = []
    real_open = io.open

    def counting_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(file, (str, Path)) and Path(file).name in ("Dockerfile", "stage.toml"):
            opened.append(str(Path(file).relative_to(repo)))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", counting_open)
    monkeypatch.setattr("builtins.open", counting_open)
    engine = FakeEngine(images=dict(BASES))
    engine.outputs["hello-ladder/06-scratch-dynamic:debian-bookworm"] = RunResult(
        "", "exec /hello: no such file or directory\n", 1
    )
    for jobs in (1, 2):
        opened.clear()
        report = run_stages(engine, dataclasses.replace(Settings(repo), jobs=jobs), progress=lambda line: None)
        assert report.stage("07-scratch-libs") is not None
        folders = sorted(folder.name for folder in (repo / "stages").iterdir())
        expected = sorted(f"stages/{name}/{file}" for name in folders for file in ("Dockerfile", "stage.toml"))
        assert sorted(opened) == expected
