"""An image's file system, unpacked into a private temporary folder for as long as it is needed."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harness import labels
from harness.engine import Engine
from harness.unpack import ChunkStream, unpack

log = logging.getLogger(__name__)


@contextlib.contextmanager
def unpacked_image(engine: Engine, image: str, namespace: str = "hello-ladder") -> Iterator[Path]:
    """Yield a folder holding `image`'s file system; the folder and the export container are always removed."""
    with tempfile.TemporaryDirectory(prefix="hello-ladder-rootfs-") as scratch:
        root = Path(scratch) / "root"
        root.mkdir()
        export_labels = labels.managed(labels.ROLE_RUN, namespace=namespace)
        with engine.export_filesystem(image, export_labels) as chunks:
            report = unpack(ChunkStream(chunks), root)
        for name, why in report.skipped:
            log.info("%s: %s: not unpacked: %s", image, name, why)
        yield root
