"""Build, verify and measure stages: the work behind `invoke all`.

Each stage is handled on its own: a stage that fails to build, or whose
stage.toml is invalid, becomes an `error` row and the run goes on.  Only the
loss of the Engine itself stops a run.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness import labels
from harness.bases import BaseStatus, ensure_base
from harness.context import DOCKERFILE_NAME, build_context
from harness.dockerfile import base_images, label_build_stages
from harness.engine import Engine
from harness.imagefs import unpacked_image
from harness.layers import SaveStreamError
from harness.measure import installed_packages, layer_figures
from harness.imagewrite import image_archive, layer_tar
from harness.results import write_files
from harness.sbom import SbomSubject, render_spdx_json, spdx_document
from harness.scanview import declared_packages
from harness.slim import SlimPlan, SlimSpec, layer_entries, plan_slim
from harness.errors import BaseUnavailable, BuildFailed, EngineLost, EngineUnavailable, StageConfigError
from harness.model import BuildRecord, EngineFacts, ImageInfo, Outcome, RunPolicy, RunReport, StageResult
from harness.stages import Stage, WhenBaseMissing, discover, load_stage, names_stage
from harness.verify import judge

log = logging.getLogger(__name__)

DEFAULT_BASE = "debian:bookworm"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    """Where the stages and the source are, which base to build on, and how to name what is built."""

    repo_root: Path
    base: str = DEFAULT_BASE
    namespace: str = "hello-ladder"
    no_cache: bool = False
    # Every image's layer tars are read: for the headline size, dead bytes and dive's figures, and
    # (slow where the store keeps layers uncompressed: gzip) the wire size.
    wire_size: bool = True
    # Labels every container of this run, so an interrupted run can find all of them.
    session: str = field(default_factory=lambda: uuid.uuid4().hex)
    # SOURCE_DATE_EPOCH: what the [slim] images' mtimes and `created` are clamped to (else the source image's time).
    source_date_epoch: int | None = None
    # Where each [slim] stage's SPDX document goes (<stage>.spdx.json); None: not written.
    sbom_dir: Path | None = None

    @property
    def stages_dir(self) -> Path:
        return self.repo_root / "stages"

    @property
    def source_dir(self) -> Path:
        return self.repo_root / "hello"

    @property
    def build_args(self) -> dict[str, str]:
        return {"BASE": self.base}

    def tag(self, stage: str) -> str:
        """`hello-ladder/07-scratch-libs:debian-bookworm`: one tag per stage and base."""
        return f"{self.namespace}/{stage}:{re.sub(r'[^a-z0-9_.-]+', '-', self.base.lower())}"


@dataclass
class BaseCache:
    """Each base is provided at most once per run, and a failure is remembered."""

    engine: Engine
    statuses: dict[str, BaseStatus | BaseUnavailable] = field(default_factory=dict)
    packages: dict[str, dict[str, int]] = field(default_factory=dict)

    def installed(self, ref: str) -> dict[str, int]:
        """The base's dpkg packages, read once per run."""
        if ref not in self.packages:
            self.packages[ref] = installed_packages(self.engine, ref)
        return self.packages[ref]

    def provide(self, ref: str) -> BaseStatus | BaseUnavailable:
        if ref not in self.statuses:
            try:
                self.statuses[ref] = ensure_base(self.engine, ref)
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


def run_stages(
    engine: Engine,
    settings: Settings,
    wanted: str | None = None,
    progress: Progress = log.info,
    keep: Callable[[Path], bool] = lambda folder: True,
) -> RunReport:
    """Build, verify and measure every selected stage (and kept by `keep`), then remove the dangling images the run left."""
    bases = BaseCache(engine)
    results: list[StageResult] = []
    lost: EngineUnavailable | None = None
    try:
        for folder in filter(keep, select(discover(settings.stages_dir), wanted)):
            if lost is None:
                try:
                    result = process_folder(engine, settings, folder, bases, progress)
                except EngineUnavailable as error:
                    lost = error
            if lost is not None:
                # Keep what was measured; the stages after the loss are errors, not silence.
                result = StageResult(name=folder.name, title="(not measured)", changes="", outcome=Outcome.ERROR, reason=str(lost))
            progress(_summary(result))
            results.append(result)
    except KeyboardInterrupt:
        engine.remove_containers(labels.selector(session=settings.session))
        raise
    finally:
        if lost is None:
            # Rebuilt tags and the classic builder's compiler stages leave untagged images behind.
            engine.remove_images(labels.selector(namespace=settings.namespace), dangling_only=True)
    report = RunReport(
        base=settings.base,
        engine=engine.describe() if lost is None else EngineFacts.unknown(),
        stages=tuple(results),
    )
    if lost is not None:
        raise EngineLost(lost, report)
    return report


def process_folder(
    engine: Engine, settings: Settings, folder: Path, bases: BaseCache, progress: Progress
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
    base_refs = stage_bases(stage, settings)
    for ref in base_refs:
        status = bases.provide(ref)
        if isinstance(status, BaseUnavailable):
            skip = stage.when_base_missing is WhenBaseMissing.SKIP
            return StageResult(**common, outcome=Outcome.SKIPPED if skip else Outcome.ERROR, reason=str(status))
    try:
        build, info = build_stage(engine, stage, settings, progress)
    except BuildFailed as error:
        return StageResult(**common, outcome=Outcome.ERROR, reason=str(error), log_tail=error.log_tail)
    observed = engine.run(
        settings.tag(stage.name),
        stage.command,
        RunPolicy(timeout_s=stage.timeout_s, user=stage.user),
        labels.managed(labels.ROLE_RUN, namespace=settings.namespace, stage=stage.name, session=settings.session),
    )
    outcome, reason = judge(stage.expect, observed)
    progress(f"{stage.name}: reading its layers")
    base_packages: dict[str, int] = {}
    for ref in base_refs:
        base_packages.update(bases.installed(ref))
    try:
        figures = layer_figures(engine, settings.tag(stage.name), base_packages, wire=settings.wire_size)
    except SaveStreamError as error:
        # The image was built and run; only its save stream could not be read: this stage alone is an error.
        return StageResult(**common, outcome=Outcome.ERROR, reason=str(error), image_info=info, build=build,
                           observed=observed)
    scanned = declared_packages(engine, settings.tag(stage.name), settings.namespace)
    return StageResult(
        **common, outcome=outcome, reason=reason, image_info=info, build=build, observed=observed, layer_figures=figures,
        scanner_packages=scanned,
    )


def build_stage(engine: Engine, stage: Stage, settings: Settings, progress: Progress) -> tuple[BuildRecord, ImageInfo]:
    """Build one stage with the source folder as context; return the build record and the Engine's figures."""
    builder_labels = labels.managed(labels.ROLE_BUILDER, namespace=settings.namespace)
    dockerfile = label_build_stages(stage.dockerfile.read_text(encoding="utf-8"), builder_labels)
    tag = settings.tag(stage.name)
    if stage.slim is not None:
        return build_slim_stage(engine, stage, settings, progress, dockerfile)
    progress(f"{stage.name}: building {tag}")
    stage_labels = labels.managed(labels.ROLE_STAGE, namespace=settings.namespace, stage=stage.name, base=settings.base)
    record = _build_dockerfile(engine, stage, settings, dockerfile, tag, stage_labels)
    return record, engine.image_info(tag)


def _build_dockerfile(
    engine: Engine, stage: Stage, settings: Settings, dockerfile: str, tag: str, image_labels: dict[str, str]
) -> BuildRecord:
    """Build the stage's Dockerfile with the source folder as context."""
    return engine.build(
        stage=stage.name,
        context=build_context(settings.source_dir, dockerfile),
        dockerfile=DOCKERFILE_NAME,
        tag=tag,
        build_args=settings.build_args,
        labels=image_labels,
        no_cache=settings.no_cache,
        on_line=lambda line: log.debug("%s: %s", stage.name, line),
    )


def build_slim_stage(
    engine: Engine, stage: Stage, settings: Settings, progress: Progress, dockerfile: str
) -> tuple[BuildRecord, ImageInfo]:
    """Build the stage's Dockerfile as a source image, then a scratch image of the binary's closure from it."""
    assert stage.slim is not None
    tag = settings.tag(stage.name)
    source = f"{tag}-source"
    progress(f"{stage.name}: building the source image {source}")
    started = time.monotonic()
    source_labels = labels.managed(labels.ROLE_BUILDER, namespace=settings.namespace, stage=stage.name)
    source_build = _build_dockerfile(engine, stage, settings, dockerfile, source, source_labels)
    try:
        stage_labels = labels.managed(labels.ROLE_STAGE, namespace=settings.namespace, stage=stage.name, base=settings.base)
        sbom = settings.sbom_dir / f"{stage.name}.spdx.json" if settings.sbom_dir is not None else None
        record, plan = build_slim_image(engine, source, stage.slim, tag, stage.command, stage_labels, settings.namespace,
                                        settings.source_date_epoch, sbom)
        progress(f"{stage.name}: {len(plan.copies)} paths copied: the closure from the resolver, and the extras")
        progress(f"{stage.name}: {slim_summary(plan, record.image_id)}")
    finally:
        # The source image served only to read the closure from.
        engine.remove_images(labels.selector(namespace=settings.namespace, stage=stage.name, role=labels.ROLE_BUILDER))
    seconds = time.monotonic() - started
    cached = source_build.fully_cached and record.fully_cached
    return BuildRecord(record.image_id, seconds, cached), engine.image_info(tag)


def build_slim_image(
    engine: Engine,
    source: str,
    spec: SlimSpec,
    tag: str,
    command: tuple[str, ...],
    image_labels: dict[str, str],
    namespace: str,
    source_date_epoch: int | None = None,
    sbom: Path | None = None,
) -> tuple[BuildRecord, SlimPlan]:
    """Write and load `tag`: one layer of `spec.binary`'s closure (and extras, bundles, package metadata) read from `source`.

    The same source image and epoch always give the same image ID (see harness.imagewrite).
    With `sbom`, the image's SPDX document is written there.
    """
    started = time.monotonic()
    origin = engine.image_origin(source)
    epoch = origin.created if source_date_epoch is None else source_date_epoch
    with unpacked_image(engine, source, namespace) as root:
        plan = plan_slim(root, spec, origin.env)
        layer = layer_tar(layer_entries(root, plan), epoch)
    archive = image_archive(layer, origin, command, plan.env, image_labels, tag, epoch,
                            created_by=f"hello-ladder slim: {spec.binary} and its closure, {len(plan.copies)} paths")
    cached = engine.has_image(archive.image_id)
    image_id = engine.load_image(archive.data)
    if image_id != archive.image_id:
        log.warning("%s: the Engine names the loaded image %s, not %s", tag, image_id, archive.image_id)
    if sbom is not None:
        document = spdx_document(SbomSubject(sbom.name.removesuffix(".spdx.json"), tag, image_id, epoch), layer,
                                 plan.provenance)
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
