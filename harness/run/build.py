"""A stage's Dockerfile built by the Engine, and every image the build made recorded in the ledger."""

from __future__ import annotations

import logging

from harness.custody.enginelock import EngineLocks
from harness.custody.ledger import ROLE_BUILDER
from harness.custody.made import Made
from harness.custody.publish import keep
from harness.records.buildlog import StageTops, step_of
from harness.records.engine import BuildContext, BuildRecord, Engine
from harness.records.errors import EngineError, EngineUnavailable
from harness.records.settings import Settings
from harness.stages.dockerfile import instructions
from harness.stages.stage import Stage

log = logging.getLogger(__name__)


def build_dockerfile(
    engine: Engine,
    stage: Stage,
    settings: Settings,
    dockerfile: str,
    tag: str,
    image_labels: dict[str, str],
    made: Made,
    role: str,
) -> BuildRecord:
    """Build the stage's Dockerfile in one request, and record in the ledger every image the build made.

    The last image of each compile stage of a multi-stage build (read from the
    build's output, `StageTops`) is kept under a tag of its own,
    `<stage tag>-builder<N>`, recorded with role builder: the end-of-run sweep
    removes only untagged images, so the compile stage and its build cache
    survive to the next run, whose build takes it from the cache.  `invoke
    clean` removes it by its ID in the ledger, as everything else.
    """
    seen = StageTops()
    stages = sum(1 for instruction in instructions(dockerfile) if instruction.keyword == "FROM")

    def on_line(line: str) -> None:
        seen.read(line)
        log.debug("%s: %s", stage.name, line)
        if (step := step_of(line)) is not None:
            made.board.doing(stage.name, step if len(seen.tops) >= stages else f"compile stage, {step}")

    record: BuildRecord | None = None
    try:
        with EngineLocks.for_engine(made.ledger.engine_id).building():
            record = engine.build(
                stage=stage.name,
                context=BuildContext(settings.source_dir, dockerfile),
                tag=tag,
                build_args=settings.build_args,
                labels=image_labels,
                no_cache=settings.no_cache,
                on_line=on_line,
                platform=None if settings.platform is None else str(settings.platform),
                step_timeout_s=settings.build_timeout_s or stage.build_timeout_s,
            )
            made.ledger.record_image(record.image_id, role, (tag,), made.namespace)
            _keep_compile_stages(engine, made, settings, stage, seen.compile_tops())
        return record
    finally:
        _record_unreturned(engine, made, stage, seen, finished=record is not None)


def _record_unreturned(engine: Engine, made: Made, stage: Stage, seen: StageTops, *, finished: bool) -> None:
    """Record what the build made that the API does not return and no tag keeps.

    For a build that failed or was stopped: the last step it committed, and the
    container of the step it was in (the builder removes that one itself,
    unless the Engine was killed).  A step the Engine commits after an
    interrupt closed the connection is never named to us: that one image goes
    unrecorded, and is left (cleanup removes less, never more).
    """
    if not finished and seen.step_container is not None:
        made.ledger.record_step_container(seen.step_container, made.namespace)
    for short in seen.made(finished=finished):
        try:
            image_id = engine.image_info(short).image_id
        except EngineUnavailable:
            image_id = short  # the Engine is gone: the build's output named it, and cleanup finds it by that
        except EngineError:
            log.info("%s: image %s is gone already", stage.name, short)
            continue
        made.ledger.record_image(image_id, ROLE_BUILDER, (), made.namespace)


def _keep_compile_stages(engine: Engine, made: Made, settings: Settings, stage: Stage, tops: tuple[str | None, ...]) -> None:
    """Each compile stage's last image tagged `<stage tag>-builder<N>` and recorded with role builder."""
    for index, top in enumerate(tops):
        if top is None:
            continue  # a stage of nothing but its FROM: the base, not ours
        keep(engine, made, engine.image_info(top).image_id, settings.kept_tag(stage.name, f"builder{index}"), log.info)
