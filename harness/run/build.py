"""A stage's Dockerfile built by the Engine, and every image the build made recorded in the ledger."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from harness.custody.enginelock import EngineLocks
from harness.custody.ledger import ROLE_BUILDER
from harness.custody.made import Made
from harness.records.buildlog import step_of
from harness.records.engine import BuildRecord, Engine
from harness.records.errors import EngineError
from harness.records.settings import Settings
from harness.stages.context import DOCKERFILE_NAME, build_context
from harness.stages.dockerfile import name_build_stages
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
        if (step := step_of(line)) is not None:
            made.board.doing(stage.name, step if target is None else f"compile stage, {step}")

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
