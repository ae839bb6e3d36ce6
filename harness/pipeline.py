"""Build, verify and measure stages: the work behind `invoke all`.

Each stage is handled on its own: a stage that fails to build, or whose
stage.toml is invalid, becomes an `error` row and the run goes on.  Only the
loss of the Engine itself stops a run.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from harness import labels, ownership
from harness.atomic import write_files
from harness.bases import BaseStatus, ensure_base
from harness.context import DOCKERFILE_NAME, build_context
from harness.dockerfile import base_images, label_build_stages, name_build_stages
from harness.engine_protocol import Engine
from harness.enginelock import EngineLocks
from harness.errors import (
    BaseUnavailable,
    BuildFailed,
    EngineError,
    EngineLost,
    EngineUnavailable,
    HarnessError,
    StageConfigError,
)
from harness.imagefs import unpacked_image
from harness.imagewrite import image_archive, layer_tar
from harness.layers import SaveStreamError
from harness.layers.cache import LayerCache
from harness.ledger import ROLE_BUILDER, ROLE_STAGE, Ledger
from harness.measure import installed_packages, measure_layers
from harness.model import BuildRecord, EngineFacts, ImageInfo, Outcome, RunPolicy, RunReport, StageResult
from harness.platforms import Platform, emulation_missing
from harness.reasons import describe
from harness.sbom import SbomSubject, render_spdx_json, spdx_document
from harness.scanview import scanner_view
from harness.slim import SlimPlan, SlimSpec, layer_entries, plan_slim
from harness.slimcache import SlimMade, SlimMemo, slim_key
from harness.stages import DEFAULT_USER, Stage, WhenBaseMissing, discover, load_stage, names_stage
from harness.tracer import trace_commands
from harness.verify import judge
from harness.versions import measuring_versions

log = logging.getLogger(__name__)

DEFAULT_BASE = "debian:bookworm"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    """Where the stages and the source are, which base to build on, and how to name what is built."""

    repo_root: Path
    base: str = DEFAULT_BASE
    namespace: str = labels.DEFAULT_NAMESPACE
    no_cache: bool = False
    # Every image's layer tars are read: for the headline size, dead bytes and dive's figures, and
    # (slow where the store keeps layers uncompressed: gzip) the wire size.
    wire_size: bool = True
    # Every container of this run carries it as its own label; the ledger records it before the first one.
    session: str = field(default_factory=lambda: uuid.uuid4().hex)
    # SOURCE_DATE_EPOCH: what the [slim] images' mtimes and `created` are clamped to (else the source image's time).
    source_date_epoch: int | None = None
    # Where each [slim] stage's SPDX document goes (<stage>.spdx.json); None: not written.
    sbom_dir: Path | None = None
    # How many stages are built, run and measured at once (see `_processed`).
    jobs: int = 1
    # The user's cache folder (harness.layers.cache): layer reads by diff_id, [slim] images by their inputs.
    # None: nothing is cached, every image is saved and read, every [slim] image written again.
    cache_dir: Path | None = None
    # The platform to build and run for (`--platform linux/arm64`); None: the Engine's own, as before.
    platform: Platform | None = None

    @property
    def stages_dir(self) -> Path:
        return self.repo_root / "stages"

    @property
    def source_dir(self) -> Path:
        return self.repo_root / "hello"

    @property
    def build_args(self) -> dict[str, str]:
        if self.platform is None:
            return {"BASE": self.base}
        return {"BASE": self.platform.base_ref(self.base), **self.platform.build_args}

    def tag(self, stage: str) -> str:
        """`hello-ladder/07-scratch-libs:debian-bookworm` (`...-arm64` for a platform): one tag per stage, base and platform."""
        suffix = "" if self.platform is None else f"-{self.platform.slug}"
        return f"{self.namespace}/{stage}:{re.sub(r'[^a-z0-9_.-]+', '-', self.base.lower())}{suffix}"

    def private_tag(self, stage: str, checkout: str, suffix: str = "") -> str:
        """The stage's tag in this checkout alone: what a build writes, so two checkouts never re-tag each other."""
        return f"{self.tag(stage)}-{checkout}{suffix}"


@dataclass(frozen=True)
class Made:
    """Where a run records what it makes: the checkout's ledger for this Engine, and the run's container labels."""

    ledger: Ledger
    session: str
    namespace: str

    def container_labels(self, **extra: str) -> dict[str, str]:
        return labels.container(self.session, self.namespace, **extra)


@dataclass
class BaseCache:
    """Each base is provided at most once per run, and a failure is remembered."""

    engine: Engine
    ledger: Ledger | None = None
    layers: LayerCache | None = None  # layer reads by content, for the bases and the stages alike
    statuses: dict[str, BaseStatus | BaseUnavailable] = field(default_factory=dict)
    packages: dict[str, dict[str, int]] = field(default_factory=dict)

    def installed(self, ref: str) -> dict[str, int]:
        """The base's dpkg packages, read once per run."""
        if ref not in self.packages:
            self.packages[ref] = installed_packages(self.engine, ref, self.layers)
        return self.packages[ref]

    def provide(self, ref: str) -> BaseStatus | BaseUnavailable:
        if ref not in self.statuses:
            try:
                self.statuses[ref] = ensure_base(self.engine, ref, self.ledger, self.layers)
            except BaseUnavailable as error:
                self.statuses[ref] = error
        return self.statuses[ref]


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


def stage_bases(stage: Stage, settings: Settings) -> tuple[str, ...]:
    return base_images(stage.dockerfile.read_text(encoding="utf-8"), settings.build_args)


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
) -> RunReport:
    """Build, verify and measure every selected stage (and kept by `keep`); EngineLost if the Engine goes away."""
    measured = measure_stages(engine, settings, wanted, progress, keep)
    if measured.lost is not None:
        raise EngineLost(measured.lost)
    return measured.report


def measure_stages(
    engine: Engine,
    settings: Settings,
    wanted: str | None = None,
    progress: Progress = log.info,
    keep: Callable[[Path], bool] = lambda folder: True,
) -> Measured:
    """Build, verify and measure every selected stage (and kept by `keep`), then sweep what the run left untagged.

    An Engine lost part-way is returned, not raised: the stages measured before it are kept,
    the rest are errors, and nothing is asked of the Engine any more.
    """
    ledger = Ledger.open(settings.repo_root, engine.identity())
    ledger.record_session(settings.session, settings.namespace)
    made = Made(ledger, settings.session, settings.namespace)
    layer_cache = None if settings.cache_dir is None else LayerCache.for_store(engine.describe().image_store, settings.cache_dir)
    bases = BaseCache(engine, ledger, layer_cache)
    results: list[StageResult] = []
    lost: EngineUnavailable | None = None
    try:
        folders = tuple(filter(keep, select(discover(settings.stages_dir), wanted)))
        for folder, done in _processed(engine, settings, folders, bases, progress, made):
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
            ownership.clean(engine, ledger, sweep, wait=False)
    report = RunReport(
        base=settings.base,
        engine=engine.describe() if lost is None else EngineFacts.unknown(),
        stages=tuple(results),
        versions=measuring_versions(),
        platform=None if settings.platform is None else str(settings.platform),
    )
    return Measured(report, lost)


def _processed(
    engine: Engine, settings: Settings, folders: tuple[Path, ...], bases: BaseCache, progress: Progress, made: Made
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
    if settings.jobs <= 1 or len(folders) <= 1:
        lost: EngineUnavailable | None = None
        for folder in folders:
            if lost is None:
                try:
                    yield folder, process_folder(engine, settings, folder, bases, progress, made)
                    continue
                except EngineUnavailable as error:
                    lost = error
            yield folder, lost
        return
    for ref in sorted({ref for folder in folders for ref in _folder_bases(folder, settings)}):
        progress(f"{ref}: providing the base image")
        bases.provide(ref)
    held: dict[str, list[str]] = {folder.name: [] for folder in folders}

    def one(folder: Path) -> StageResult:
        progress(f"{folder.name}: started")
        return process_folder(engine, settings, folder, bases, held[folder.name].append, made)

    pool = ThreadPoolExecutor(max_workers=settings.jobs, thread_name_prefix="stage")
    futures = [(folder, pool.submit(one, folder)) for folder in folders]
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


def _folder_bases(folder: Path, settings: Settings) -> tuple[str, ...]:
    try:
        return stage_bases(load_stage(folder), settings)
    except (StageConfigError, OSError):
        return ()  # reported as that stage's error when it is processed


def process_folder(
    engine: Engine, settings: Settings, folder: Path, bases: BaseCache, progress: Progress, made: Made
) -> StageResult:
    try:
        stage = load_stage(folder)
    except StageConfigError as error:
        return StageResult(name=folder.name, title="(invalid stage)", changes="", outcome=Outcome.ERROR, reason=str(error))
    common = dict(
        name=stage.name,
        title=stage.title,
        changes=stage.changes,
        article_size=stage.article_size,
        expected=stage.expect.as_dict(),
        image=settings.tag(stage.name),
        runtime=stage.runtime,
    )
    if settings.platform is not None and (missing := emulation_missing(settings.platform)) is not None:
        return StageResult(**common, outcome=Outcome.SKIPPED, reason=f"{settings.platform}: {missing}")
    base_refs = stage_bases(stage, settings)
    for ref in base_refs:
        status = bases.provide(ref)
        if isinstance(status, BaseUnavailable):
            skip = stage.when_base_missing is WhenBaseMissing.SKIP
            return StageResult(**common, outcome=Outcome.SKIPPED if skip else Outcome.ERROR, reason=str(status))
    try:
        build, info, known_as = build_stage(engine, stage, settings, progress, made)
    except BuildFailed as error:
        return StageResult(**common, outcome=Outcome.ERROR, reason=str(error), log_tail=error.log_tail)
    common["image"] = known_as
    # Run and measure the image this build made, by ID: a tag can be moved by anyone at any time.
    observed = engine.run(
        info.image_id,
        stage.command,
        RunPolicy(timeout_s=stage.timeout_s, user=stage.user),
        made.container_labels(stage=stage.name),
    )
    outcome, reason = judge(stage.expect, observed)
    progress(f"{stage.name}: reading its layers")
    base_packages: dict[str, int] = {}
    for ref in base_refs:
        base_packages.update(bases.installed(ref))
    try:
        info, figures = measure_layers(engine, info, base_packages, wire=settings.wire_size, cache=bases.layers)
    except SaveStreamError as error:
        # The image was built and run; only its save stream could not be read: this stage alone is an error.
        return StageResult(**common, outcome=Outcome.ERROR, reason=str(error), image_info=info, build=build, observed=observed)
    scanned = scanner_view(engine, info.image_id, made.container_labels(stage=stage.name), bases.layers)
    return StageResult(
        **common,
        outcome=outcome,
        reason=reason,
        image_info=info,
        build=build,
        observed=observed,
        layer_figures=figures,
        scanner=scanned,
    )


def build_stage(
    engine: Engine, stage: Stage, settings: Settings, progress: Progress, made: Made
) -> tuple[BuildRecord, ImageInfo, str]:
    """Build one stage with the source folder as context; return the build record, the Engine's figures, and its tag."""
    checkout = made.ledger.checkout
    dockerfile = label_build_stages(stage.dockerfile.read_text(encoding="utf-8"), {labels.NAMESPACE: settings.namespace})
    if stage.slim is not None:
        return build_slim_stage(engine, stage, settings, progress, dockerfile, made)
    tag = settings.tag(stage.name)
    private = settings.private_tag(stage.name, checkout)
    progress(f"{stage.name}: building {tag}")
    stage_labels = labels.image(checkout, settings.namespace, stage=stage.name, base=settings.base)
    record = _build_dockerfile(engine, stage, settings, dockerfile, private, stage_labels, made, ROLE_STAGE)
    known_as = publish(engine, made, record.image_id, private, tag, progress)
    return record, engine.image_info(record.image_id), known_as


def publish(engine: Engine, made: Made, image_id: str, private: str, public: str, progress: Progress) -> str:
    """Move the public tag to the image just built, unless an image this checkout did not make holds it.

    Returns the tag the image is known by.  The Engine has no compare-and-set
    for tags, so checkouts on this machine take turns (harness.enginelock):
    otherwise another could move the public tag between our tag and untag,
    and dropping the private tag would remove our image with its last tag.
    """
    with EngineLocks.for_engine(made.ledger.engine_id).tagging():
        holder = engine.image_info(public).image_id if engine.has_image(public) else None
        if holder is not None and holder != image_id and made.ledger.read().image(holder) is None:
            progress(
                f"{public}: held by an image this checkout did not make (another checkout's or the user's): kept as {private}"
            )
            return private
        made.ledger.record_image(image_id, ROLE_STAGE, (public,), made.namespace)
        engine.tag_image(image_id, public)
        engine.untag_image(image_id, private)  # the public tag is still ours: no other checkout moves it meanwhile
        return public


def _build_dockerfile(
    engine: Engine,
    stage: Stage,
    settings: Settings,
    dockerfile: str,
    tag: str,
    image_labels: dict[str, str],
    made: Made,
    role: str,
) -> BuildRecord:
    """Build the stage's Dockerfile with the source folder as context, and record in the ledger every image it made.

    Each compile stage of a multi-stage build is built first on its own
    (`target=`) and kept under a tag of its own, `<tag>-builder<N>`, recorded
    with role builder: the end-of-run sweep removes only untagged images, so
    the compile stage and its build cache survive to the next run, and the
    full build that follows takes it from the cache.  `invoke clean` removes
    it by its ID in the ledger, as everything else.
    """
    dockerfile, builder_stages = name_build_stages(dockerfile)
    builds = [
        _build_one(
            engine,
            stage,
            settings,
            dockerfile,
            f"{tag}-builder{index}",
            {},
            made,
            ROLE_BUILDER,
            target=name,
            no_cache=settings.no_cache,
        )
        for index, name in enumerate(builder_stages)
    ]
    # Under --no-cache the compile stages were just built afresh: the full build takes them from there
    # instead of compiling them again (its own steps only copy from them).
    final = _build_one(
        engine, stage, settings, dockerfile, tag, image_labels, made, role, no_cache=settings.no_cache and not builds
    )
    return BuildRecord(final.image_id, sum(b.seconds for b in (*builds, final)), all(b.fully_cached for b in (*builds, final)))


def _build_one(
    engine: Engine,
    stage: Stage,
    settings: Settings,
    dockerfile: str,
    tag: str,
    image_labels: dict[str, str],
    made: Made,
    role: str,
    no_cache: bool,
    target: str | None = None,
) -> BuildRecord:
    """One build request; the image it answers with is recorded under `tag`, and so is each untagged one it made."""
    seen = StageTops()

    def on_line(line: str) -> None:
        seen.read(line)
        log.debug("%s: %s", stage.name, line)

    record: BuildRecord | None = None
    try:
        with EngineLocks.for_engine(made.ledger.engine_id).building():
            record = engine.build(
                stage=stage.name,
                context=build_context(settings.source_dir, dockerfile),
                dockerfile=DOCKERFILE_NAME,
                tag=tag,
                build_args=settings.build_args,
                labels=image_labels,
                no_cache=no_cache,
                on_line=on_line,
                target=target,
                platform=None if settings.platform is None else str(settings.platform),
            )
        made.ledger.record_image(record.image_id, role, (tag,), made.namespace)
        return record
    finally:
        # Images the build made that the API does not return: the last image of each earlier
        # stage, and, for a build that failed or was stopped, the last step it committed.  A
        # step the Engine commits after an interrupt closed the connection is never named to
        # us: that one image goes unrecorded, and is left (cleanup removes less, never more).
        short_ids = seen.made(finished=record is not None)
        for short in short_ids:
            try:
                made.ledger.record_image(engine.image_info(short).image_id, ROLE_BUILDER, (), made.namespace)
            except EngineError:
                log.info("%s: image %s is gone already", stage.name, short)


@dataclass
class StageTops:
    """The images a classic-builder build committed that its answer does not name, read from its output.

    The classic builder prints `Step N/M : INSTRUCTION`, then ` ---> Running in ...` when
    it runs the step (` ---> Using cache` when not), then ` ---> <short image ID>`.  The
    image printed last before a `FROM` is the previous stage's last image: a compiler
    stage, left untagged; so is a failed build's last image.  Each is kept only if its
    step ran in this build, so this build made it.  A cache hit is an image some earlier
    build made (this checkout's, which recorded it then, or another checkout's, which
    must keep it), and the ` ---> ` after a `FROM` is the base image: neither is ours.
    """

    tops: list[str] = field(default_factory=list)
    last: str | None = None
    last_ran: bool = False
    stages: int = 0
    step_ran: bool = False

    def read(self, line: str) -> None:
        text = line.strip()
        if text.startswith("Step ") and " : " in text:
            if text.partition(" : ")[2].upper().startswith("FROM "):
                if self.stages and self.last and self.last_ran:
                    self.tops.append(self.last)
                self.stages += 1
            self.step_ran = False
        elif text.startswith("---> Running in "):
            self.step_ran = True
        elif (found := re.fullmatch(r"---> ([0-9a-f]{12})", text)) is not None:
            self.last, self.last_ran = found[1], self.step_ran

    def made(self, finished: bool) -> tuple[str, ...]:
        extra = [self.last] if not finished and self.last and self.last_ran else []
        return tuple(dict.fromkeys([*self.tops, *extra]))


def build_slim_stage(
    engine: Engine, stage: Stage, settings: Settings, progress: Progress, dockerfile: str, made: Made
) -> tuple[BuildRecord, ImageInfo, str]:
    """Build the stage's Dockerfile as a source image, then a scratch image of the binary's closure from it."""
    assert stage.slim is not None
    checkout = made.ledger.checkout
    tag = settings.tag(stage.name)
    source = settings.private_tag(stage.name, checkout, "-source")
    progress(f"{stage.name}: building the source image {source}")
    started = time.monotonic()
    source_labels = labels.image(checkout, settings.namespace, stage=stage.name)
    # The source image is kept (tagged, role builder), with its build cache: the next run builds it from the cache.
    source_build = _build_dockerfile(engine, stage, settings, dockerfile, source, source_labels, made, ROLE_BUILDER)
    stage_labels = labels.image(checkout, settings.namespace, stage=stage.name, base=settings.base)
    private = settings.private_tag(stage.name, checkout)
    sbom = settings.sbom_dir / f"{stage.name}.spdx.json" if settings.sbom_dir is not None else None
    memo = None if settings.cache_dir is None else SlimMemo(settings.cache_dir)
    key = slim_key(source_build.image_id, stage.slim, stage.command, stage_labels, settings.source_date_epoch, sbom is not None)
    before = memo.get(key) if memo is not None else None
    if before is not None and engine.has_image(before.image_id) and made.ledger.read().image(before.image_id):
        # The same source and spec: the image written last time is this one, byte for byte.
        engine.tag_image(before.image_id, private)
        if sbom is not None and before.sbom is not None:
            write_files(sbom.parent, {sbom.name: before.sbom})
        record = BuildRecord(before.image_id, 0.0, True)
        lines = before.lines
        progress(f"{stage.name}: the source image and [slim] spec are unchanged: image {before.image_id} reused")
    else:
        record, plan = build_slim_image(
            engine,
            source_build.image_id,
            stage.slim,
            private,
            stage.command,
            stage_labels,
            made,
            settings.source_date_epoch,
            sbom,
        )
        lines = (
            f"{len(plan.copies)} paths copied: the closure from the resolver, and the extras",
            slim_summary(plan, record.image_id),
        )
        if memo is not None:
            memo.put(key, SlimMade(record.image_id, lines, sbom.read_text(encoding="utf-8") if sbom else None))
    for line in lines:
        progress(f"{stage.name}: {line}")
    known_as = publish(engine, made, record.image_id, private, tag, progress)
    seconds = time.monotonic() - started
    cached = source_build.fully_cached and record.fully_cached
    return BuildRecord(record.image_id, seconds, cached), engine.image_info(record.image_id), known_as


def build_slim_image(
    engine: Engine,
    source: str,
    spec: SlimSpec,
    tag: str,
    command: tuple[str, ...],
    image_labels: dict[str, str],
    made: Made,
    source_date_epoch: int | None = None,
    sbom: Path | None = None,
) -> tuple[BuildRecord, SlimPlan]:
    """Write and load `tag`: one layer of `spec.binary`'s closure (and extras, bundles, package metadata) read from `source`.

    The same source image and epoch always give the same image ID (see harness.imagewrite).
    With `sbom`, the image's SPDX document is written there.  The image is recorded in the ledger.
    """
    started = time.monotonic()
    origin = engine.image_origin(source)
    epoch = origin.created if source_date_epoch is None else source_date_epoch
    # With `spec.trace`, the command (or each probe) runs in the source image under a tracer first.
    traced = (
        trace_commands(
            engine, source, spec.probes or (command,), DEFAULT_USER, made.container_labels(), architecture=origin.architecture
        )
        if spec.trace
        else ()
    )
    with unpacked_image(engine, source, made.container_labels()) as root:
        plan = plan_slim(root, spec, origin.env, traced)
        layer = layer_tar(layer_entries(root, plan), epoch)
    archive = image_archive(
        layer,
        origin,
        command,
        plan.env,
        image_labels,
        tag,
        epoch,
        created_by=f"hello-ladder slim: {spec.binary} and its closure, {len(plan.copies)} paths",
    )
    cached = engine.has_image(archive.image_id)
    image_id = engine.load_image(archive.data)
    made.ledger.record_image(image_id, ROLE_STAGE, (tag,), made.namespace)
    if image_id != archive.image_id:
        # The containerd store names an image by its manifest's digest, not its config's.
        log.info("%s: the Engine names the loaded image %s, its config is %s", tag, image_id, archive.image_id)
    if sbom is not None:
        document = spdx_document(
            SbomSubject(sbom.name.removesuffix(".spdx.json"), tag, image_id, epoch),
            layer,
            plan.provenance,
            describe(plan.reasons),
        )
        write_files(sbom.parent, {sbom.name: render_spdx_json(document)})
    return BuildRecord(image_id, time.monotonic() - started, cached), plan


def slim_summary(plan: SlimPlan, image_id: str) -> str:
    """One line: the packages the image's files come from, and what their metadata adds."""
    packages = ", ".join(f"{p.name} {p.version}" for p in plan.provenance.packages) or "none"
    line = f"image {image_id}; packages: {packages}; {len(plan.provenance.unowned)} paths of no package"
    if plan.metadata is not None:
        line += f"; package metadata and copyright files add {plan.metadata.added_bytes:,} bytes"
    return line


def _summary(result: StageResult) -> str:
    parts = [f"{result.name}: {result.outcome.value}"]
    if result.image_info is not None and result.size_bytes is not None:
        parts.append(f"{result.size_bytes:,} bytes in {result.image_info.layer_count} layers")
    if result.build is not None:
        parts.append("cached" if result.build.fully_cached else f"built in {result.build.seconds:.1f} s")
    if result.reason:
        parts.append(result.reason)
    return " | ".join(parts)
