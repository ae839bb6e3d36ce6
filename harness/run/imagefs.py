"""An image's file system, unpacked into a private temporary folder for as long as it is needed."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, cast

from harness.layers.unpack import ChunkStream, unpack
from harness.records.engine import Engine

log = logging.getLogger(__name__)


@contextlib.contextmanager
def unpacked_image(engine: Engine, image: str, container_labels: Mapping[str, str] | None = None) -> Iterator[Path]:
    """Yield a folder holding `image`'s file system; the folder and the export container are always removed.

    `container_labels` (a run's, from `harness.records.labels.container`) let a clean-up find the
    export container if this process dies before it removes it.
    """
    with tempfile.TemporaryDirectory(prefix="hello-ladder-rootfs-") as scratch:
        root = Path(scratch) / "root"
        root.mkdir()
        with engine.export_filesystem(image, dict(container_labels or {})) as chunks:
            # ChunkStream is a read-only binary file object: all that unpack asks of an IO[bytes].
            report = unpack(cast(IO[bytes], ChunkStream(chunks)), root)
        for name, why in report.skipped:
            log.info("%s: %s: not unpacked: %s", image, name, why)
        yield root
