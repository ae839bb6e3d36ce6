"""The run: build, verify and measure the selected stages, the work behind `invoke all`.

Each stage is handled on its own (harness.run.stage): a stage that fails to
build, or whose stage.toml is invalid, becomes an `error` row and the run goes
on.  Only the loss of the Engine itself stops a run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness.custody import ownership
from harness.custody.ledger import Ledger
from harness.custody.made import Made
from harness.layers.cache import LayerCache
from harness.records.engine import Engine, EngineFacts
from harness.records.errors import EngineLost, EngineUnavailable, HarnessError, StageConfigError
from harness.records.report import Outcome, RunReport, StageResult
from harness.records.settings import Progress, Settings
from harness.render.versions import measuring_versions
from harness.run.stage import BaseCache, Planned, process_stage
from harness.stages.stage import discover, names_stage
from harness.statusboard import StatusBoard

log = logging.getLogger(__name__)


def select(folders: Iterable[Path], wanted: str | None) -> tuple[Path, ...]:
    """The stage folders matching `wanted` (a full name or its `NN` prefix); all when None."""
    folders = tuple(folders)
    if wanted is None:
        return folders
    chosen = tuple(f for f in folders if names_stage(f.name, wanted))
    if not chosen:
        names = ", ".join(f.name for f in folders)
        raise StageConfigError(Path("stages") / wanted, None, f"no such stage (stages: {names})")
    return chosen


@dataclass(frozen=True)
class Measured:
    """What a run measured; `lost` says the Engine stopped answering part-way, and the report is partial."""

    report: RunReport
    lost: EngineUnavailable | None = None


def run_stages(
    engine: Engine,
    settings: Settings,
    wanted: str | None = None,
    progress: Progress = log.info,
    keep: Callable[[Path], bool] = lambda folder: True,
    board: StatusBoard | None = None,
) -> RunReport:
    """Build, verify and measure every selected stage (and kept by `keep`); EngineLost if the Engine goes away."""
    measured = measure_stages(engine, settings, wanted, progress, keep, board)
    if measured.lost is not None:
        raise EngineLost(measured.lost)
    return measured.report


def measure_stages(
    engine: Engine,
    settings: Settings,
    wanted: str | None = None,
    progress: Progress = log.info,
    keep: Callable[[Path], bool] = lambda folder: True,
    board: StatusBoard | None = None,
) -> Measured:
    """Build, verify and measure every selected stage (and kept by `keep`), then sweep what the run left untagged.

    An Engine lost part-way is returned, not raised: the stages measured before it are kept,
    the rest are errors, and nothing is asked of the Engine any more.  `board` is told
    what each stage under way is doing (see harness.statusboard).
    """
    ledger = Ledger.open(settings.repo_root, engine.identity())
    ledger.record_session(settings.session, settings.namespace)
    made = Made(ledger, settings.session, settings.namespace, board or StatusBoard.silent())
    layer_cache = None if settings.cache_dir is None else LayerCache.for_store(engine.describe().image_store, settings.cache_dir)
    bases = BaseCache(engine, ledger, layer_cache, announce=progress)
    results: list[StageResult] = []
    lost: EngineUnavailable | None = None
    try:
        # Each stage folder is read once, here: its Dockerfile's text and stage.toml go down the run in the record.
        planned = tuple(Planned.read(folder) for folder in filter(keep, select(discover(settings.stages_dir), wanted)))
        for folder, done in _processed(engine, settings, planned, bases, progress, made):
            if lost is None:
                if isinstance(done, EngineUnavailable):
                    lost = done
                else:
                    result = done
            if lost is not None:
                # Keep what was measured; the stages after the loss are errors, not silence.
                result = StageResult(
                    name=folder.name, title="(not measured)", changes="", outcome=Outcome.ERROR, reason=str(lost)
                )
            progress(_summary(result))
            results.append(result)
    finally:
        if lost is None:
            # This run's containers (an interrupt may leave one), and the images this checkout made in this
            # namespace that are left untagged: a rebuilt tag's old image, compiler stages, a failed build's last step.
            results_made = frozenset(r.image_info.image_id for r in results if r.image_info is not None)
            sweep = ownership.Scope(
                namespace=settings.namespace, untagged_only=True, sessions=frozenset({settings.session}), keep=results_made
            )
            # Not waiting for another checkout's builds: what is left stays in the ledger for the next sweep.
            try:
                ownership.clean(engine, ledger, sweep, wait=False)
            except EngineUnavailable as error:
                lost = error  # gone after the last stage: the report is kept as a partial one, like any loss
    report = RunReport(
        base=settings.base,
        engine=engine.describe() if lost is None else EngineFacts.unknown(),
        stages=tuple(results),
        versions=measuring_versions(),
        platform=None if settings.platform is None else str(settings.platform),
    )
    return Measured(report, lost)


def _processed(
    engine: Engine, settings: Settings, planned: tuple[Planned, ...], bases: BaseCache, progress: Progress, made: Made
) -> Iterator[tuple[Path, StageResult | EngineUnavailable]]:
    """Each folder's result (or the Engine's loss), in the folders' order, built `settings.jobs` at a time.

    With more than one job, the bases are provided first, one at a time (a
    bootstrap is never run twice), then the stages are built, run and measured
    in threads: the Engine builds them concurrently and their downloads
    overlap.  Each stage's own lines are held back and printed with its
    result, in name order, so the output reads as a serial run's does; only a
    `started` line is printed as each one starts.  An interrupt closes the
    Engine's connections, which cancels the builds under way.
    """
    if settings.jobs <= 1 or len(planned) <= 1:
        lost: EngineUnavailable | None = None
        for stage in planned:
            if lost is None:
                try:
                    yield stage.folder, _watched(engine, settings, stage, bases, progress, made)
                    continue
                except EngineUnavailable as error:
                    lost = error
            yield stage.folder, lost
        return
    for ref in sorted({ref for stage in planned for ref in stage.bases(settings)}):
        bases.provide(ref)  # a bootstrap is announced
    held: dict[str, list[str]] = {stage.folder.name: [] for stage in planned}

    def one(stage: Planned) -> StageResult:
        progress(f"{stage.folder.name}: started")
        return _watched(engine, settings, stage, bases, held[stage.folder.name].append, made)

    pool = ThreadPoolExecutor(max_workers=settings.jobs, thread_name_prefix="stage")
    futures = [(stage.folder, pool.submit(one, stage)) for stage in planned]
    try:
        for folder, future in futures:
            try:
                done: StageResult | EngineUnavailable = future.result()
            except EngineUnavailable as error:
                done = error
            for line in held[folder.name]:
                progress(line)
            yield folder, done
    except BaseException:
        for _, future in futures:
            future.cancel()
        close = getattr(engine, "close", None)
        if close is not None:
            close()  # the builds under way are cancelled with their connections
        # A stage's program may be running: removing its container ends the wait on it.
        with contextlib.suppress(HarnessError):
            ownership.clean(engine, made.ledger, ownership.Scope(sessions=frozenset({made.session}), images=False))
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _watched(engine: Engine, settings: Settings, stage: Planned, bases: BaseCache, progress: Progress, made: Made) -> StageResult:
    """`process_stage`, with the board told the stage is under way until it is done."""
    made.board.begin(stage.folder.name)
    try:
        return process_stage(engine, settings, stage, bases, progress, made)
    finally:
        made.board.end(stage.folder.name)


def _summary(result: StageResult) -> str:
    parts = [f"{result.name}: {result.outcome.value}"]
    if result.image_info is not None and result.size_bytes is not None:
        parts.append(f"{result.size_bytes:,} bytes in {result.image_info.layer_count} layers")
    if result.build is not None:
        parts.append("cached" if result.build.fully_cached else f"built in {result.build.seconds:.1f} s")
    if result.reason:
        parts.append(result.reason)
    return " | ".join(parts)
