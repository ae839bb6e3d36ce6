"""The Debian packages an SBOM scanner sees in an image, and the bytes of the metadata that declares them.

Read from the image's layers when they were read for its sizes
(`harness.layers.declared`); otherwise (a status file too large to keep) from
its file system, streamed from an export without unpacking it.
"""

from __future__ import annotations

import tarfile
from collections.abc import Mapping

from harness.layers.cache import LayerCache
from harness.layers.declared import STATUS, is_metadata, is_status_d_entry, packages_in
from harness.layers.unpack import ChunkStream
from harness.records.engine import Engine
from harness.records.layers import ScannerView


def scanner_view(
    engine: Engine,
    image: str,
    container_labels: Mapping[str, str],
    cache: LayerCache | None = None,
    declared: ScannerView | None = None,
) -> ScannerView:
    """The packages `image` declares, sorted, and the bytes of its metadata; `container_labels` go on the export container.

    `declared`, what its layers were read to declare, is the answer when there is one.  Else,
    with `cache`, an image (by ID) read before is not exported again: its ID is a digest of its content.
    """
    if declared is not None:
        return declared
    if cache is not None:
        known = cache.image_figures("scanner", image)
        if known is not None:
            try:
                return ScannerView(tuple(str(name) for name in known["packages"]), int(known["metadata_bytes"]))
            except (KeyError, TypeError, ValueError):
                pass  # read again below, and stored again
    view = _exported_view(engine, image, container_labels)
    if cache is not None:
        cache.store_image_figures("scanner", image, {"packages": list(view.packages), "metadata_bytes": view.metadata_bytes})
    return view


def _exported_view(engine: Engine, image: str, container_labels: Mapping[str, str]) -> ScannerView:
    texts = []
    metadata_bytes = 0
    with engine.export_filesystem(image, dict(container_labels)) as chunks:
        with tarfile.open(fileobj=ChunkStream(chunks), mode="r|") as tar:
            for member in tar:
                name = member.name.removeprefix("./").lstrip("/")
                if is_metadata(name) and (member.isreg() or member.issym()):
                    # Counted as the layer figures count content: a file's bytes, a symlink's target.
                    metadata_bytes += member.size if member.isreg() else len(member.linkname.encode())
                if member.isreg() and (name == STATUS or is_status_d_entry(name)):
                    handle = tar.extractfile(member)
                    if handle is not None:
                        texts.append((name != STATUS, handle.read().decode("utf-8", "replace")))
    return ScannerView(packages_in(texts), metadata_bytes)
