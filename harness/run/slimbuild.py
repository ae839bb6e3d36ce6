"""A [slim] stage's image: its source image built, then one layer of the binary's closure written and loaded."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from harness.atomic import write_files
from harness.custody.ledger import ROLE_BUILDER, ROLE_STAGE
from harness.custody.made import Made
from harness.custody.publish import publish
from harness.records import labels
from harness.records.engine import BuildRecord, Engine, ImageInfo, ImageOrigin
from harness.records.settings import Progress, Settings
from harness.run.build import build_dockerfile
from harness.run.emulation import architecture_missing
from harness.run.imagefs import unpacked_image
from harness.slim.cache import SlimMade, SlimMemo, slim_key
from harness.slim.imagewrite import image_archive, layer_tar
from harness.slim.plan import SlimPlan, layer_entries, plan_slim
from harness.slim.reasons import describe
from harness.slim.tracelog import TracedRun
from harness.slim.tracer import trace_commands
from harness.stages.slimspec import SlimSpec
from harness.stages.stage import DEFAULT_USER, Stage

log = logging.getLogger(__name__)


def build_slim_stage(
    engine: Engine, stage: Stage, settings: Settings, progress: Progress, dockerfile: str, made: Made
) -> tuple[BuildRecord, ImageInfo, str]:
    """Build the stage's Dockerfile as a source image, then a scratch image of the binary's closure from it."""
    assert stage.slim is not None
    tag = settings.tag(stage.name)
    source = settings.kept_tag(stage.name, "source")
    progress(f"{stage.name}: building the source image {source}")
    started = time.monotonic()
    source_labels = labels.image(settings.namespace, stage=stage.name)
    # The source image is kept (tagged, role builder), with its build cache: the next run builds it from the cache.
    building = settings.private_tag(stage.name, "-source")
    source_build = build_dockerfile(engine, stage, settings, dockerfile, building, source_labels, made, ROLE_BUILDER)
    publish(engine, made, source_build.image_id, building, source, progress, role=ROLE_BUILDER)
    stage_labels = labels.image(settings.namespace, stage=stage.name, base=settings.base)
    private = settings.private_tag(stage.name)
    sbom = settings.sbom_dir / f"{stage.name}.spdx.json" if settings.sbom_dir is not None else None
    memo = None if settings.cache_dir is None else SlimMemo(settings.cache_dir)
    # The document names the public tag: the run's own tag is gone once the run ends.
    sbom_tag = tag if sbom is not None else None
    key = slim_key(source_build.image_id, stage.slim, stage.command, stage_labels, settings.source_date_epoch, sbom_tag)
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
        made.board.doing(stage.name, "writing the scratch image: the closure and the extras")
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
            sbom_tag,
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


def slim_epoch(origin: ImageOrigin, source_date_epoch: int | None) -> int:
    """The instant the slim image's mtimes are clamped to and its `created`: SOURCE_DATE_EPOCH, else its base's.

    Not the source image's own creation time: a rebuilt source step (two identical builds at once leave
    sibling chains in the classic builder's cache, and a later build may take either) gives a new one,
    and the same files would get another image ID in another clone.
    """
    if source_date_epoch is not None:
        return source_date_epoch
    return origin.created if origin.base_created is None else origin.base_created


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
    sbom_tag: str | None = None,
) -> tuple[BuildRecord, SlimPlan]:
    """Write and load `tag`: one layer of `spec.binary`'s closure (and extras, bundles, package metadata) read from `source`.

    The same source image and epoch always give the same image ID (see harness.slim.imagewrite).
    With `sbom`, the image's SPDX document is written there, naming the image `sbom_tag` (else `tag`).
    The image is recorded in the ledger.
    """
    started = time.monotonic()
    origin = engine.image_origin(source)
    epoch = slim_epoch(origin, source_date_epoch)
    traced = traced_runs(engine, source, spec, command, origin.architecture, made) if spec.trace else ()
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
        # Imported here: spdx-tools costs a sixth of a second to import, on every run, and a warm run
        # reuses the [slim] images with their documents, so it never writes one.
        from harness.render.sbom import SbomSubject, render_spdx_json, spdx_document

        document = spdx_document(
            SbomSubject(sbom.name.removesuffix(".spdx.json"), sbom_tag or tag, image_id, epoch),
            layer,
            plan.provenance,
            describe(plan.reasons),
        )
        write_files(sbom.parent, {sbom.name: render_spdx_json(document)})
    return BuildRecord(image_id, time.monotonic() - started, cached), plan


def traced_runs(
    engine: Engine, source: str, spec: SlimSpec, command: tuple[str, ...], architecture: str, made: Made
) -> tuple[TracedRun, ...]:
    """The command (or each probe) run in the source image under the tracer, through its emulator if need be."""
    return trace_commands(
        engine,
        source,
        spec.probes or (command,),
        DEFAULT_USER,
        made.container_labels(),
        architecture=architecture,
        emulation=architecture_missing(architecture),
    )


def slim_summary(plan: SlimPlan, image_id: str) -> str:
    """One line: the packages the image's files come from, and what their metadata adds."""
    packages = ", ".join(f"{p.name} {p.version}" for p in plan.provenance.packages) or "none"
    line = f"image {image_id}; packages: {packages}; {len(plan.provenance.unowned)} paths of no package"
    if plan.metadata is not None:
        line += f"; package metadata and copyright files add {plan.metadata.added_bytes:,} bytes"
    return line
