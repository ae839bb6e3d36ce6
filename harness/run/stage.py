"""One stage's work: provide its bases, build it, run its program, judge the output, measure the image.

A stage that fails to build, or whose stage.toml is invalid, becomes an
`error` result; only the loss of the Engine itself is raised.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from harness.custody.ledger import ROLE_STAGE, Ledger
from harness.custody.made import Made
from harness.custody.publish import publish
from harness.elf.errors import ElfError
from harness.layers import SaveStreamError
from harness.layers.cache import LayerCache
from harness.records import labels
from harness.records.engine import BuildRecord, Engine, ImageInfo, RunPolicy, RunResult
from harness.records.errors import BaseUnavailable, BuildFailed, StageConfigError
from harness.records.layers import LayerFigures, ScannerView
from harness.records.report import Anchor, Outcome, StageResult
from harness.records.settings import Progress, Settings
from harness.run.bases import BaseStatus, ensure_base
from harness.run.build import build_dockerfile
from harness.run.emulation import emulation_missing
from harness.run.measure import installed_packages, measure_layers
from harness.run.scanview import scanner_view
from harness.run.slimbuild import build_slim_stage
from harness.run.verify import judge
from harness.slim.tracer import TraceError, TracerOfAnotherArchitecture
from harness.stages.dockerfile import base_images, label_build_stages
from harness.stages.slimspec import SlimError
from harness.stages.stage import Stage, WhenBaseMissing, load_stage


@dataclass
class BaseCache:
    """Each base is provided at most once per run, and a failure is remembered."""

    engine: Engine
    ledger: Ledger | None = None
    layers: LayerCache | None = None  # layer reads by content, for the bases and the stages alike
    announce: Progress = field(default=lambda line: None)  # says a bootstrap is starting, before its silence
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
                self.statuses[ref] = ensure_base(self.engine, ref, self.ledger, self.layers, self.announce)
            except BaseUnavailable as error:
                self.statuses[ref] = error
        return self.statuses[ref]


@dataclass(frozen=True)
class Planned:
    """A stage folder as the run read it, once: the stage it holds, or why it holds none."""

    folder: Path
    stage: Stage | StageConfigError

    @classmethod
    def read(cls, folder: Path) -> Planned:
        try:
            return cls(folder, load_stage(folder))
        except StageConfigError as error:
            return cls(folder, error)
        except OSError as error:
            return cls(folder, StageConfigError(folder, None, f"cannot be read: {error}"))

    def bases(self, settings: Settings) -> tuple[str, ...]:
        """The base images its Dockerfile names; () for a folder that holds no stage (its error is its result)."""
        return () if isinstance(self.stage, StageConfigError) else stage_bases(self.stage, settings)


def stage_bases(stage: Stage, settings: Settings) -> tuple[str, ...]:
    return base_images(stage.dockerfile_text, settings.build_args)


@dataclass(frozen=True)
class StageFacts:
    """What every result of a stage says, whatever its outcome: its stage.toml's facts, and the tag its image has."""

    name: str
    title: str
    changes: str
    article_size: str | None
    expected: dict[str, str]
    image: str
    runtime: str
    anchors: tuple[Anchor, ...]

    @classmethod
    def of(cls, stage: Stage, image: str) -> StageFacts:
        expected = stage.expect.as_dict()
        return cls(stage.name, stage.title, stage.changes, stage.article_size, expected, image, stage.runtime, stage.anchors)

    def result(
        self,
        outcome: Outcome,
        reason: str | None,
        *,
        log_tail: tuple[str, ...] = (),
        image_info: ImageInfo | None = None,
        build: BuildRecord | None = None,
        observed: RunResult | None = None,
        layer_figures: LayerFigures | None = None,
        scanner: ScannerView | None = None,
    ) -> StageResult:
        return StageResult(
            name=self.name,
            title=self.title,
            changes=self.changes,
            article_size=self.article_size,
            expected=self.expected,
            image=self.image,
            runtime=self.runtime,
            anchors=self.anchors,
            outcome=outcome,
            reason=reason,
            log_tail=log_tail,
            image_info=image_info,
            build=build,
            observed=observed,
            layer_figures=layer_figures,
            scanner=scanner,
        )


def process_stage(
    engine: Engine, settings: Settings, planned: Planned, bases: BaseCache, progress: Progress, made: Made
) -> StageResult:
    stage = planned.stage
    if isinstance(stage, StageConfigError):
        return StageResult(
            name=planned.folder.name, title="(invalid stage)", changes="", outcome=Outcome.ERROR, reason=str(stage)
        )
    facts = StageFacts.of(stage, settings.tag(stage.name))
    if settings.platform is not None and (missing := emulation_missing(settings.platform)) is not None:
        return facts.result(Outcome.SKIPPED, f"{settings.platform}: {missing}")
    base_refs = stage_bases(stage, settings)
    for ref in base_refs:
        made.board.doing(stage.name, f"providing {ref}")
        status = bases.provide(ref)
        if isinstance(status, BaseUnavailable):
            skip = stage.when_base_missing is WhenBaseMissing.SKIP
            return facts.result(Outcome.SKIPPED if skip else Outcome.ERROR, str(status))
    try:
        build, info, known_as = build_stage(engine, stage, settings, progress, made)
    except BuildFailed as error:
        return facts.result(Outcome.ERROR, str(error), log_tail=error.log_tail)
    except TracerOfAnotherArchitecture as error:
        # A platform limit, not a fault of the stage: no emulator here runs the image's programs to trace them.
        return facts.result(Outcome.SKIPPED, str(error))
    except (SlimError, TraceError, ElfError) as error:
        # The source image built, but no scratch image can be made of it (a library the resolver cannot
        # find, a trace that cannot run here): this stage alone is an error, the others go on.
        return facts.result(Outcome.ERROR, str(error))
    facts = dataclasses.replace(facts, image=known_as)
    # Run and measure the image this build made, by ID: a tag can be moved by anyone at any time.
    made.board.doing(stage.name, f"running {' '.join(stage.command)}")
    observed = engine.run(
        info.image_id,
        stage.command,
        RunPolicy(timeout_s=stage.timeout_s, user=stage.user, memory_bytes=stage.memory_bytes),
        made.container_labels(stage=stage.name),
    )
    outcome, reason = judge(stage.expect, observed)
    made.board.doing(stage.name, "reading its layers")
    base_packages: dict[str, int] = {}
    for ref in base_refs:
        base_packages.update(bases.installed(ref))
    try:
        info, figures, declared = measure_layers(engine, info, base_packages, wire=settings.wire_size, cache=bases.layers)
    except SaveStreamError as error:
        # The image was built and run; only its save stream could not be read: this stage alone is an error.
        return facts.result(Outcome.ERROR, str(error), image_info=info, build=build, observed=observed)
    scanned = scanner_view(engine, info.image_id, made.container_labels(stage=stage.name), bases.layers, declared)
    return facts.result(
        outcome,
        reason,
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
    dockerfile = label_build_stages(stage.dockerfile_text, {labels.NAMESPACE: settings.namespace})
    if stage.slim is not None:
        return build_slim_stage(engine, stage, settings, progress, dockerfile, made)
    tag = settings.tag(stage.name)
    private = settings.private_tag(stage.name)
    progress(f"{stage.name}: building {tag}")
    stage_labels = labels.image(settings.namespace, stage=stage.name, base=settings.base)
    record = build_dockerfile(engine, stage, settings, dockerfile, private, stage_labels, made, ROLE_STAGE)
    known_as = publish(engine, made, record.image_id, private, tag, progress)
    return record, engine.image_info(record.image_id), known_as
