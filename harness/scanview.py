"""The Debian packages an SBOM scanner sees in an image: those dpkg's status file and distroless's status.d declare.

syft and trivy find Debian packages through these files alone; a file whose
package nothing declares (libc.so.6 copied by hand into scratch) is invisible
to them.  Read from the image's file system, streamed from an export without
unpacking it, with the bytes of dpkg's database and the copyright files: what
being visible to scanners, and keeping to the licences, costs the image.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Mapping

from harness.engine_protocol import Engine
from harness.layers.cache import LayerCache
from harness.layers.dpkg import installed_packages, parse_status
from harness.model import ScannerView
from harness.unpack import ChunkStream

STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d/"
DPKG_DATABASE = "var/lib/dpkg/"
DOC = "usr/share/doc/"


def scanner_view(engine: Engine, image: str, container_labels: Mapping[str, str], cache: LayerCache | None = None) -> ScannerView:
    """The packages `image` declares, sorted, and the bytes of its metadata; `container_labels` go on the export container.

    With `cache`, an image (by ID) read before is not exported again: its ID is a digest of its content.
    """
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
                if member.isreg() and (name == STATUS or (name.startswith(STATUS_D) and not name.endswith(".md5sums"))):
                    handle = tar.extractfile(member)
                    if handle is not None:
                        texts.append((name != STATUS, handle.read().decode("utf-8", "replace")))
    return ScannerView(packages_in(texts), metadata_bytes)


def is_metadata(name: str) -> bool:
    """dpkg's database, or a package's copyright file (`usr/share/doc/<package>/copyright`)."""
    if name.startswith(DPKG_DATABASE):
        return True
    package, _, rest = name.removeprefix(DOC).partition("/")
    return name.startswith(DOC) and bool(package) and rest == "copyright"


def packages_in(texts: Iterable[tuple[bool, str]]) -> tuple[str, ...]:
    """Package names of (is a status.d file, text) pairs: the status file's installed ones, every status.d one."""
    names: set[str] = set()
    for is_status_d, text in texts:
        names.update(p.name for p in (parse_status(text) if is_status_d else installed_packages(text)))
    return tuple(sorted(names))
