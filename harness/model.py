"""The records passed between the harness's modules: what was built, run and measured."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

# The tutorial's own program; other runtimes get a table of their own in the report.
DEFAULT_RUNTIME = "c"


@dataclass(frozen=True)
class LayerRecord:
    """One entry of the image's history that added a file system layer."""

    size_bytes: int
    created_by: str


@dataclass(frozen=True)
class ImageInfo:
    """An image as the Engine describes it.

    Neither size is the headline: what they mean depends on the image store.
    On overlay2 `engine_size_bytes` (the API's `Size`) is the sum of the layers'
    uncompressed content; on the containerd store it is the compressed content,
    and `docker images` (`listed_size_bytes`) adds the unpacked snapshots.
    """

    image_id: str
    engine_size_bytes: int  # `Size` of GET /images/{id}/json
    listed_size_bytes: int | None  # `Size` of GET /images/json: what `docker images` prints
    layer_count: int
    layers: tuple[LayerRecord, ...]


@dataclass(frozen=True)
class EngineFacts:
    """Which Engine measured a run, and how it stores and builds images."""

    product: str  # "Docker Engine" or "Podman"
    version: str
    api_version: str
    image_store: str  # "overlay2", "containerd (overlayfs snapshotter)", ...
    builder: str

    def describe(self) -> str:
        return (f"{self.product} {self.version} (API {self.api_version}), image store: {self.image_store}, "
                f"builder: {self.builder}")

    @property
    def containerd_store(self) -> bool:
        """Whether images live in containerd's store (its snapshotters) rather than a graph driver's."""
        return self.image_store.startswith("containerd")

    @classmethod
    def unknown(cls, version: str = "unknown") -> EngineFacts:
        return cls("Docker Engine", version, "unknown", "unknown", "unknown")


@dataclass(frozen=True)
class BuildRecord:
    """A successful build: the image id, how long it took, and whether every step came from cache."""

    image_id: str
    seconds: float
    fully_cached: bool


@dataclass(frozen=True)
class RunPolicy:
    """How tightly a stage's container is locked down."""

    timeout_s: float
    user: str
    memory_bytes: int = 64 * 1024 * 1024
    pids: int = 64
    output_cap_bytes: int = 64 * 1024


@dataclass(frozen=True)
class RunResult:
    """What running a command in a container did.

    `error` is the Engine's own message when the container could not start
    (the dynamic binary in scratch fails there, before any program runs).
    """

    stdout: str
    stderr: str
    exit_code: int | None
    error: str | None = None
    timed_out: bool = False
    truncated: bool = False

    def failure_text(self) -> str:
        """Everything that can carry a failure message, for matching an expected failure."""
        return "\n".join(part for part in (self.error, self.stderr, self.stdout) if part)


@dataclass(frozen=True)
class LayerFigure:
    """One layer as its tar shows it: what it adds, changes and deletes, and the bytes it stores in vain."""

    instruction: str
    file_bytes: int
    added: int
    changed: int
    deleted: int
    dead_bytes: int  # stored in this layer, not shown by the final file system
    killed_bytes: int  # of lower layers, made dead by this one
    wire_bytes: int | None
    largest: tuple[tuple[str, int], ...]  # (path, bytes), largest first


@dataclass(frozen=True)
class LayerFigures:
    """Where an image's bytes are (from its saved layer tars; see harness.layers for the definitions)."""

    content_bytes: int  # the headline size: what overlay2 reports as `Size`, computed from the layer tars
    live_bytes: int
    dead_bytes: int
    wire_bytes: int | None
    efficiency: float  # dive's score
    wasted_bytes: int  # dive's
    user_wasted_percent: float | None  # dive's, a fraction
    layers: tuple[LayerFigure, ...]
    leftover_packages: tuple[tuple[str, int], ...] = ()  # (package, installed bytes) the stage added


class Outcome(enum.Enum):
    PASS = "pass"  # did what stage.toml expects
    FAIL = "fail"  # built, but did not do what stage.toml expects
    SKIPPED = "skipped"  # not attempted, for the stated reason
    ERROR = "error"  # could not be built or configured

    @property
    def is_problem(self) -> bool:
        return self in (Outcome.FAIL, Outcome.ERROR)


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
    # The Debian packages an SBOM scanner sees: declared in dpkg's status file or status.d (None: not read).
    scanner_packages: tuple[str, ...] | None = None

    @property
    def size_bytes(self) -> int | None:
        """The headline size: the layers' uncompressed content, the same on every image store."""
        return None if self.layer_figures is None else self.layer_figures.content_bytes


@dataclass(frozen=True)
class RunReport:
    """A whole run: the base it used, the Engine that measured it, and every stage's result."""

    base: str
    engine: EngineFacts
    stages: tuple[StageResult, ...]
    platform: str | None = None  # `linux/arm64` when the run was for a platform given; None: the Engine's own

    @property
    def ok(self) -> bool:
        return not any(stage.outcome.is_problem for stage in self.stages)

    def stage(self, name: str) -> StageResult | None:
        return next((stage for stage in self.stages if stage.name == name), None)
