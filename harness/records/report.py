"""The records passed between the harness's modules: what was built, run and measured."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from harness.records.engine import BuildRecord, EngineFacts, ImageInfo, RunResult
from harness.records.layers import LayerFigures, ScannerView

# The tutorial's own program; other runtimes get a table of their own in the report.
DEFAULT_RUNTIME = "c"


class Outcome(enum.Enum):
    PASS = "pass"  # did what stage.toml expects
    FAIL = "fail"  # built, but did not do what stage.toml expects
    SKIPPED = "skipped"  # not attempted, for the stated reason
    ERROR = "error"  # could not be built or configured

    @property
    def is_problem(self) -> bool:
        return self in (Outcome.FAIL, Outcome.ERROR)


@dataclass(frozen=True)
class Anchor:
    """An image a user would otherwise pick for a stage's program, and its size as a named source published it."""

    image: str  # what the source measured, e.g. "distroless cc-debian11"
    size: str  # as the source printed it: "23MB"
    source: str  # where the figure was published, so a reader can check it


@dataclass(frozen=True)
class StageResult:
    """Everything measured for one stage; the row of the results table."""

    name: str
    title: str
    changes: str
    outcome: Outcome
    image: str | None = None
    article_size: str | None = None
    expected: dict[str, str] = field(default_factory=dict)
    image_info: ImageInfo | None = None
    build: BuildRecord | None = None
    observed: RunResult | None = None
    reason: str | None = None
    log_tail: tuple[str, ...] = ()
    runtime: str = DEFAULT_RUNTIME
    layer_figures: LayerFigures | None = None
    scanner: ScannerView | None = None  # None: not read
    anchors: tuple[Anchor, ...] = ()

    @property
    def size_bytes(self) -> int | None:
        """The headline size: the layers' uncompressed content, the same on every image store (`LayerFigures.headline_bytes`)."""
        return None if self.layer_figures is None else self.layer_figures.headline_bytes

    @property
    def tar_content_bytes(self) -> int | None:
        """What the layer tars store: the headline plus the files a layer stores again unchanged (overlay2's `Size`)."""
        return None if self.layer_figures is None else self.layer_figures.content_bytes


@dataclass(frozen=True)
class RunReport:
    """A whole run: the base it used, the Engine that measured it, and every stage's result."""

    base: str
    engine: EngineFacts
    stages: tuple[StageResult, ...]
    # (distribution, version) of the libraries that measured it (harness.render.versions); () in older results.
    versions: tuple[tuple[str, str], ...] = ()
    platform: str | None = None  # `linux/arm64` when the run was for a platform given; None: the Engine's own

    @property
    def ok(self) -> bool:
        return not any(stage.outcome.is_problem for stage in self.stages)

    def stage(self, name: str) -> StageResult | None:
        return next((stage for stage in self.stages if stage.name == name), None)
