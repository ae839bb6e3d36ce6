"""The Engine protocol and the records it speaks in: what the harness needs from a container engine.

No third-party import, here or below: a module that only speaks of images,
builds and runs imports this, never `harness.engine` (the one package that
imports the Docker SDK and implements the protocol) nor `docker`.  Tests
drive the harness with a fake that implements it (tests/fakes.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


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
    # The history entries that added a layer, bottom-up.  The Engine's history does not say
    # which those are; the config's `empty_layer` flags do (`aligned`, from the save stream).
    layers: tuple[LayerRecord, ...]
    # Every entry of the Engine's history, oldest first, config-only entries (ENV, CMD) included.
    history: tuple[LayerRecord, ...] = ()

    def aligned(self, empty_layer: tuple[bool, ...]) -> ImageInfo | None:
        """`layers` from `history` and the config history's `empty_layer` flags; None if the two do not pair up."""
        if len(empty_layer) != len(self.history):
            return None
        return dataclasses.replace(
            self, layers=tuple(entry for entry, empty in zip(self.history, empty_layer, strict=True) if not empty)
        )


@dataclass(frozen=True)
class EngineFacts:
    """Which Engine measured a run, and how it stores and builds images."""

    product: str  # "Docker Engine" or "Podman"
    version: str
    api_version: str
    image_store: str  # "overlay2", "containerd (overlayfs snapshotter)", ...
    builder: str

    def describe(self) -> str:
        return f"{self.product} {self.version} (API {self.api_version}), image store: {self.image_store}, builder: {self.builder}"

    @property
    def containerd_store(self) -> bool:
        """Whether images live in containerd's store (its snapshotters) rather than a graph driver's."""
        return self.image_store.startswith("containerd")

    @classmethod
    def unknown(cls, version: str = "unknown") -> EngineFacts:
        return cls("Docker Engine", version, "unknown", "unknown", "unknown")


@dataclass(frozen=True)
class BuildContext:
    """What a build sends the Engine: a source folder, less what its `.dockerignore` excludes, and a Dockerfile.

    The adapter writes it as a tar and streams it (`harness.engine.context`), with Docker's own rules for
    `.dockerignore`, which only the SDK has.
    """

    source_dir: Path
    dockerfile_text: str


@dataclass(frozen=True)
class BuildRecord:
    """A successful build: the image id, how long it took, and whether every step came from cache."""

    image_id: str
    seconds: float
    fully_cached: bool


# What a stage's program may use unless its stage.toml says why it needs more (`memory`).
DEFAULT_MEMORY_BYTES = 64 * 1024 * 1024
# The most a stage may ask for: still a bound, on a machine other runs share.
MAX_MEMORY_BYTES = 2_000_000_000


@dataclass(frozen=True)
class RunPolicy:
    """How tightly a stage's container is locked down."""

    timeout_s: float
    user: str
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    pids: int = 64
    output_cap_bytes: int = 64 * 1024
    # Folders that get a private, size-bounded, world-writable tmpfs (the root stays read-only).
    tmpfs: tuple[str, ...] = ()


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


# The tools' output folder, inside `output_at`: world-writable, as the run's user is not root.
OUTPUT_FOLDER = "out"


@dataclass(frozen=True)
class Instrumentation:
    """A tool brought into a locked-down run, and where it writes what it finds (see harness.slim.tracer).

    `tools` is a tar archive extracted at `tools_at`, mounted read-only; `output_at` is
    a writable folder, read back after the run whatever way it ended.  `stop_signal`
    is what the run gets at its time limit, so that the tool can write what it has
    before the Engine kills it.
    """

    tools: bytes
    tools_at: str
    output_at: str
    stop_signal: str = "SIGTERM"
    output_cap_bytes: int = 256 * 1024 * 1024


@dataclass(frozen=True)
class InstrumentedRun:
    """A run, and the files its tool wrote (name within `output_at`, content)."""

    result: RunResult
    outputs: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class ImageOrigin:
    """What the slim image takes from its source image."""

    created: int  # seconds since the epoch
    architecture: str
    os: str
    env: tuple[tuple[str, str], ...] = ()  # its Config.Env, for the LD_LIBRARY_PATH the resolver must follow
    # When its oldest history entry was made: the base it was built from, imported once, so the same in
    # every clone that rebuilds the source (its own `created` is the wall-clock time of its last uncached step).
    base_created: int | None = None


@dataclass(frozen=True)
class EngineImage:
    """A top-level image as the Engine lists it."""

    image_id: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class EngineContainer:
    """A container, with its labels and its image's labels (to tell its own labels from inherited ones)."""

    container_id: str
    name: str
    labels: Mapping[str, str]
    image_labels: Mapping[str, str]

    def own_label(self, key: str) -> str | None:
        """The label's value if the container was given it, None if absent or copied from the image."""
        value = self.labels.get(key)
        return None if value is None or self.image_labels.get(key) == value else value


@dataclass(frozen=True)
class EngineVolume:
    """A volume, with its labels: a volume has no image, so every label it carries is its own."""

    name: str
    labels: Mapping[str, str]


class Engine(Protocol):
    """What the harness needs from a container engine."""

    def describe(self) -> EngineFacts: ...

    def has_image(self, ref: str) -> bool: ...

    def image_info(self, ref: str) -> ImageInfo: ...

    def pull(self, ref: str) -> None: ...

    def import_rootfs(self, tarball: Path, ref: str, labels: dict[str, str]) -> str: ...

    def build(
        self,
        stage: str,
        context: BuildContext,
        *,
        tag: str,
        build_args: dict[str, str],
        labels: dict[str, str],
        no_cache: bool = False,
        on_line: Callable[[str], None] | None = None,
        platform: str | None = None,
        step_timeout_s: float | None = None,
    ) -> BuildRecord: ...

    def run(self, image: str, command: tuple[str, ...], policy: RunPolicy, labels: dict[str, str]) -> RunResult: ...

    def run_instrumented(
        self, image: str, command: tuple[str, ...], policy: RunPolicy, labels: dict[str, str], tools: Instrumentation
    ) -> InstrumentedRun: ...

    def list_images(self) -> tuple[EngineImage, ...]: ...

    def tag_image(self, image_id: str, ref: str) -> None: ...

    def untag_image(self, image_id: str, ref: str) -> None: ...

    def remove_image(self, image_id: str) -> None: ...

    def export_filesystem(self, image: str, labels: dict[str, str]) -> contextlib.AbstractContextManager[Iterator[bytes]]: ...

    def save_image(self, image: str) -> Iterator[bytes]: ...

    def list_containers(self, label_key: str) -> tuple[EngineContainer, ...]: ...

    def find_containers(self, container_ids: tuple[str, ...]) -> tuple[EngineContainer, ...]: ...

    def list_volumes(self, label_key: str) -> tuple[EngineVolume, ...]: ...

    def remove_volume(self, name: str) -> None: ...

    def remove_container(self, container_id: str) -> None: ...

    def identity(self) -> str: ...

    def image_origin(self, ref: str) -> ImageOrigin: ...

    def load_image(self, archive: bytes | Iterable[bytes]) -> str: ...
