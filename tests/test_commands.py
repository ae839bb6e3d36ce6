"""The tasks' logic below the shell (harness.commands), without an Engine: options read, lines said, how each ends."""

from __future__ import annotations

import json
import shutil
from pathlib import Path, PurePosixPath

import pytest

from harness.commands import options
from harness.commands.cleanup import clean_checkout, empty_cache
from harness.commands.done import Done
from harness.commands.elf_deps import deps_query, show_deps
from harness.commands.engines import matrix_options, run_matrix
from harness.commands.image_layers import layer_limits
from harness.commands.ladder import build_stage, ladder_run, provide_bases, run_ladder, verify_stage
from harness.commands.releases import sweep_options
from harness.commands.rerender import render_again, show_stage
from harness.commands.slim_run import env_pairs, run_lines, slim_request
from harness.custody.ownership import Scope
from harness.layers.limits import Limits
from harness.records import platform as platforms
from harness.records.engine import Engine, RunResult
from harness.records.errors import EngineUnavailable, HarnessError, UsageError
from harness.records.settings import Progress
from harness.stages.slimspec import Bundle, SlimError

from .conftest import REPO_ROOT
from .fakes import FakeEngine, LosingEngine, _image

BASE = "debian:bookworm"


@pytest.fixture(autouse=True)
def amd64_and_no_epoch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The committed results' platform, no SOURCE_DATE_EPOCH, the default namespace and a cache of the test's own."""
    monkeypatch.setattr(platforms.host_platform, "machine", lambda: "x86_64")
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.delenv(options.NAMESPACE_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def checkout(tmp_path: Path) -> options.Checkout:
    """A checkout with the first three stages, hello/ and the README."""
    root = tmp_path / "checkout"
    shutil.copytree(REPO_ROOT / "hello", root / "hello")
    for stage in ("01-naive", "02-purge-layers", "03-single-layer"):
        shutil.copytree(REPO_ROOT / "stages" / stage, root / "stages" / stage)
    shutil.copy(REPO_ROOT / "README.md", root / "README.md")
    return options.Checkout(root)


def lines() -> tuple[list[str], Progress]:
    said: list[str] = []
    return said, said.append


# --- options every task shares ---------------------------------------------------


def test_settings_read_the_namespace_and_the_epoch_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, checkout: options.Checkout
) -> None:
    assert options.settings(checkout, BASE).namespace == "hello-ladder"
    monkeypatch.setenv("HELLO_LADDER_NAMESPACE", "hello-ladder-test")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", " 1700000000 ")
    chosen = options.settings(checkout, "debian:trixie", no_cache=True)
    assert (chosen.repo_root, chosen.base, chosen.no_cache) == (checkout.root, "debian:trixie", True)
    assert (chosen.namespace, chosen.source_date_epoch, chosen.platform) == ("hello-ladder-test", 1_700_000_000, None)


@pytest.mark.parametrize("text", ["yesterday", "-1", "1.5"])
def test_an_epoch_that_is_not_whole_seconds_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", text)
    with pytest.raises(UsageError, match=rf"SOURCE_DATE_EPOCH='{text}': give whole seconds since 1970"):
        options.source_date_epoch()


def test_an_unknown_platform_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="platform 'linux/sparc'"):
        options.platform_choice("linux/sparc")
    assert options.platform_choice("  ") is None  # blank: the Engine's own, on amd64


# --- invoke all ------------------------------------------------------------------------


def test_all_names_as_its_maker_only_the_options_that_change_what_is_measured(checkout: options.Checkout) -> None:
    run = ladder_run(checkout, BASE, False, None, False, 0, None)
    assert run.command == "invoke all" and run.settings.jobs == options.DEFAULT_JOBS and run.settings.wire_size
    assert run.results_dir == checkout.results and run.settings.sbom_dir == checkout.results / "sbom"
    assert run.readme == checkout.readme  # the committed results: the README follows them
    run = ladder_run(checkout, "debian:trixie", True, "elsewhere", True, 3, "linux/arm64")
    assert run.command == "invoke all --base debian:trixie --no-cache --no-wire --platform linux/arm64"
    assert (run.results_dir, run.settings.jobs, run.settings.wire_size, run.readme) == (Path("elsewhere"), 3, False, None)
    assert ladder_run(checkout, BASE, False, None, False, 0, "linux/arm64").results_dir == checkout.results / "arm64"
    with pytest.raises(UsageError, match="--jobs takes a number of stages, 1 or more"):
        ladder_run(checkout, BASE, False, None, False, -1, None)


def test_all_writes_the_results_and_the_readme_follows(checkout: options.Checkout) -> None:
    said, say = lines()
    done = run_ladder(FakeEngine(images={BASE: _image(1)}), ladder_run(checkout, BASE, False, None, True, 1, None), say)
    assert done == Done()
    assert {p.name for p in checkout.results.iterdir()} >= {"results.json", "RESULTS.md", "sizes.svg"}
    assert json.loads((checkout.results / "results.json").read_text())["generated_by"] == "invoke all --no-wire"
    assert "01-naive" in checkout.readme.read_text()
    assert said[-1] == f"\nwrote {checkout.results / 'RESULTS.md'} and {checkout.results / 'results.json'}"


def test_all_keeps_what_was_measured_apart_when_the_engine_is_lost(checkout: options.Checkout) -> None:
    run = ladder_run(checkout, BASE, False, None, True, 1, None)
    done = run_ladder(LosingEngine(lose_at=2, images={BASE: _image(1)}), run, lines()[1])
    assert not done.ok and done.message is not None
    assert done.message.startswith("error: the Engine stopped answering during the run:")
    assert done.message.endswith(
        f"What was measured before is in {checkout.results / 'results.partial.json'}; RESULTS.md and results.json are unchanged."
    )
    assert [p.name for p in checkout.results.iterdir()] == ["results.partial.json"]
    # The next run that measures every stage supersedes the partial file.
    assert run_ladder(FakeEngine(images={BASE: _image(1)}), run, lines()[1]) == Done()
    assert "results.partial.json" not in {p.name for p in checkout.results.iterdir()}


def test_a_stage_that_fails_fails_the_command_with_its_section(checkout: options.Checkout) -> None:
    engine = FakeEngine(images={BASE: _image(1)}, failing_builds={"01-naive": "no space left"})
    said, say = lines()
    assert build_stage(engine, options.settings(checkout, BASE), "01", say) == Done(False)
    assert any(line.startswith("### `01-naive`") for line in said)
    assert verify_stage(FakeEngine(images={BASE: _image(1)}), options.settings(checkout, BASE), "01", say) == Done()


def test_bases_says_each_base_and_what_is_missing_without_failing(checkout: options.Checkout) -> None:
    said, say = lines()
    assert provide_bases(FakeEngine(images={BASE: _image(1)}), options.settings(checkout, BASE), say) == Done()
    assert said[0].startswith(f"{BASE}: present, ")


# --- invoke report ---------------------------------------------------------------------


def test_report_renders_again_or_shows_one_stage(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(REPO_ROOT / "results" / "results.json", results)
    said, say = lines()
    assert render_again(results, say) == Done() and said == [f"wrote {results / 'RESULTS.md'}"]
    assert (results / "RESULTS.md").read_text() == (REPO_ROOT / "results" / "RESULTS.md").read_text()
    assert (results / "sizes.svg").read_text() == (REPO_ROOT / "results" / "sizes.svg").read_text()
    said.clear()
    assert show_stage(results, "07", say) == Done() and said[0].startswith("### `07-scratch-libs`")
    assert show_stage(results, "99", say) == Done.failed(f"error: no stage '99' in {results / 'results.json'}")


# --- invoke sweep and invoke matrix -----------------------------------------------------


def test_sweep_and_matrix_name_their_command(checkout: options.Checkout) -> None:
    sweep = sweep_options(checkout, "debian:bullseye, debian:bookworm", None, "linux/arm64")
    assert sweep.command == "invoke sweep --bases debian:bullseye, debian:bookworm --platform linux/arm64"
    assert sweep.bases == ("debian:bullseye", "debian:bookworm") and sweep.results_dir == checkout.results / "arm64"
    matrix = matrix_options(checkout, [" a = unix:///a.sock", "b=tcp://b:2375"], BASE, "out", None)
    assert matrix.command == "invoke matrix --engine a=unix:///a.sock --engine b=tcp://b:2375"
    assert not matrix.settings.wire_size and matrix.results_dir == Path("out")


@pytest.mark.parametrize(
    ("engines", "message"),
    [([], "give at least one --engine NAME=DOCKER_HOST"), (["a"], "--engine 'a': give NAME=DOCKER_HOST")],
)
def test_matrix_without_a_named_engine_is_a_usage_error(checkout: options.Checkout, engines: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        matrix_options(checkout, engines, BASE, None, None)


def test_an_engine_out_of_reach_is_recorded_and_fails_the_matrix(checkout: options.Checkout, tmp_path: Path) -> None:
    def connect(host: str) -> Engine:
        raise EngineUnavailable(f"connecting to {host}: refused")

    said, say = lines()
    matrix = matrix_options(checkout, ["a=unix:///a.sock"], BASE, str(tmp_path / "out"), None)
    done = run_matrix(connect, matrix, say)
    assert done == Done.failed("Engines where the ladder did not run or some stage did not do what it expects: a")
    assert said[:2] == ["== a (unix:///a.sock)", f"[a] {EngineUnavailable('connecting to unix:///a.sock: refused')}"]
    assert json.loads((tmp_path / "out" / "engines.json").read_text())["engines"][0]["error"].startswith("Docker Engine")


# --- invoke layers, deps, slim, clean ---------------------------------------------------


def test_layer_limits_are_numbers() -> None:
    assert layer_limits("100", "0.9") == Limits(100, 0.9)
    for max_dead, min_efficiency in (("1k", None), (None, "most")):
        with pytest.raises(UsageError, match="--max-dead takes a number of bytes"):
            layer_limits(max_dead, min_efficiency)


def test_deps_takes_an_image_or_a_root_and_reads_a_root_without_an_engine(tmp_path: Path) -> None:
    for image, root, paths in ((None, None, ["/a"]), ("x", "y", ["/a"]), ("x", None, [])):
        with pytest.raises(UsageError, match="give --image IMAGE or --root DIR, and at least one --path"):
            deps_query(paths, image, root, False, False)

    def no_engine() -> Engine:
        raise AssertionError("a root folder needs no Engine")

    query = deps_query(["/bin/nothing"], None, str(tmp_path), False, False)
    with pytest.raises(HarnessError, match="/bin/nothing"):
        show_deps(query, options.Checkout(tmp_path), no_engine, lines()[1])


def test_slim_reads_its_options() -> None:
    request = slim_request(
        "src",
        "/usr/bin/file",
        "t",
        extras=["/etc/magic"],
        env=["A=1=2"],
        extras_from=None,
        cmd=None,
        bundles="certs,tmp",
        with_dlopen=False,
        metadata=True,
        sbom=None,
        trace=False,
        probes=[],
    )
    assert request.command == ("/usr/bin/file",) and request.sbom is None
    assert request.spec.extras == (PurePosixPath("/etc/magic"),) and request.spec.env == (("A", "1=2"),)
    assert request.spec.bundles == (Bundle.CERTS, Bundle.TMP)
    traced = slim_request(
        "src",
        "/b",
        "t",
        extras=[],
        env=[],
        extras_from="/list",
        cmd="/b -x 'a b'",
        bundles="",
        with_dlopen=True,
        metadata=False,
        sbom="out.spdx.json",
        trace=True,
        probes=["/b -v"],
    )
    assert traced.command == ("/b", "-x", "a b") and traced.spec.probes == (("/b", "-v"),)
    assert traced.spec.extras_from == PurePosixPath("/list") and traced.sbom == Path("out.spdx.json").resolve()
    with pytest.raises(UsageError, match="--probe runs under the tracer: add --trace"):
        slim_request(
            "src",
            "/b",
            "t",
            extras=[],
            env=[],
            extras_from=None,
            cmd=None,
            bundles="",
            with_dlopen=False,
            metadata=True,
            sbom=None,
            trace=False,
            probes=["/b -v"],
        )
    with pytest.raises(SlimError, match="--with gzip: unknown bundle"):
        slim_request(
            "src",
            "/b",
            "t",
            extras=[],
            env=[],
            extras_from=None,
            cmd=None,
            bundles="gzip",
            with_dlopen=False,
            metadata=True,
            sbom=None,
            trace=False,
            probes=[],
        )


def test_env_pairs_need_an_equals_sign() -> None:
    assert env_pairs(["A=", "B=c"]) == (("A", ""), ("B", "c"))
    with pytest.raises(UsageError, match="--env X: give NAME=VALUE"):
        env_pairs(["X"])


def test_the_run_lines_show_the_start_of_what_the_command_wrote() -> None:
    result = RunResult(stdout="hello!\n" * 100, stderr="", exit_code=0)
    said = run_lines(("/hello",), result)
    assert said[0] == "run /hello: exit code 0" and said[1] == f"stdout: {('hello!' + chr(10)) * 71 + 'hel'!r}"
    assert len(said) == 2


def test_clean_empties_the_cache_before_reaching_the_engine(checkout: options.Checkout, tmp_path: Path) -> None:
    cached = tmp_path / "cache" / "hello-ladder" / "layers" / "a.json"
    cached.parent.mkdir(parents=True)
    cached.write_text("{}")
    said, say = lines()
    empty_cache(True, say)
    assert said == [f"would empty {tmp_path / 'cache' / 'hello-ladder'} (1 files)"] and cached.exists()

    def unreachable() -> Engine:
        raise EngineUnavailable("refused")

    said.clear()
    with pytest.raises(EngineUnavailable):
        clean_checkout(unreachable, checkout, Scope(), False, True, say)
    assert said == [f"emptied {tmp_path / 'cache' / 'hello-ladder'} (1 files)"] and not cached.exists()
    said.clear()
    assert clean_checkout(FakeEngine, checkout, Scope(), True, False, say) == Done()
    assert said[-1].startswith("would remove 0 container(s) and image(s): what this checkout made, as recorded in ")
