"""What a run is asked to do: `Settings`."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.records import labels
from harness.records.platform import Platform

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
    # How many stages are built, run and measured at once (see `harness.run.pipeline._processed`).
    jobs: int = 1
    # The user's cache folder (harness.layers.cache): layer reads by diff_id, [slim] images by their inputs.
    # None: nothing is cached, every image is saved and read, every [slim] image written again.
    cache_dir: Path | None = None
    # The platform to build and run for (`--platform linux/arm64`); None: the Engine's own, as before.
    platform: Platform | None = None
    # Every stage's build step limit (`--build-timeout`), in seconds; None: each stage's own `build_timeout`.
    build_timeout_s: float | None = None

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

    def private_tag(self, stage: str, suffix: str = "") -> str:
        """The tag a build of this run writes; `publish` then moves the public tag to the image it names."""
        return f"{self.tag(stage)}{suffix}-{self.session[:12]}"

    def kept_tag(self, stage: str, suffix: str) -> str:
        """`...:debian-bookworm-source`, `...-builder0`: an image kept for the next run's build cache, one per namespace."""
        return f"{self.tag(stage)}-{suffix}"
