"""The Debian packages an SBOM scanner sees in an image: those dpkg's status file and distroless's status.d declare.

syft and trivy find Debian packages through these files alone; a file whose
package nothing declares (libc.so.6 copied by hand into scratch) is invisible
to them.  Beside the names, `metadata_bytes` counts what being visible to
scanners, and keeping to the licences, costs the image: dpkg's database and
the packages' copyright files, a file's bytes and a symlink's target.

Read from the merged view of the image's layers (`declared_in`), with the
status files' content captured as the layers stream past
(`layertar.DEFAULT_CAPTURE`): the layer reads the size figures need already
hold all of it, so nothing is exported or read again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from harness.debian.dpkg import DOC_DIR, DPKG_DIR, DPKG_STATUS, DPKG_STATUS_D, installed_packages, parse_status
from harness.layers.layertar import EntryKind, LayerTar
from harness.layers.mergedview import MergedView
from harness.records.layers import ScannerView

# As the layer tars name them: no leading `/`; a folder with its trailing one.
STATUS = DPKG_STATUS.lstrip("/")
STATUS_D = DPKG_STATUS_D.lstrip("/") + "/"
DPKG_DATABASE = DPKG_DIR.lstrip("/") + "/"
DOC = DOC_DIR.lstrip("/") + "/"


def is_metadata(name: str) -> bool:
    """dpkg's database, or a package's copyright file (`usr/share/doc/<package>/copyright`); `name` without its `/`."""
    if name.startswith(DPKG_DATABASE):
        return True
    package, _, rest = name.removeprefix(DOC).partition("/")
    return name.startswith(DOC) and bool(package) and rest == "copyright"


def is_status_d_entry(name: str) -> bool:
    """A package's own status file in distroless's status.d (its `.md5sums` beside it declares nothing)."""
    return name.startswith(STATUS_D) and not name.endswith(".md5sums")


def packages_in(texts: Iterable[tuple[bool, str]]) -> tuple[str, ...]:
    """Package names of (is a status.d file, text) pairs: the status file's installed ones, every status.d one."""
    names: set[str] = set()
    for is_status_d, text in texts:
        names.update(p.name for p in (parse_status(text) if is_status_d else installed_packages(text)))
    return tuple(sorted(names))


def _metadata_paths(view: MergedView) -> Iterator[str]:
    """The view's paths below dpkg's database, and each package's would-be copyright file: found through the
    children index, not by testing each of the view's paths (a toolchain image has a hundred thousand)."""
    stack = ["/" + DPKG_DATABASE.rstrip("/")]
    while stack:
        for child in view.children.get(stack.pop(), ()):
            yield child
            stack.append(child)
    for package in view.children.get("/" + DOC.rstrip("/"), ()):
        yield package + "/copyright"


def declared_in(view: MergedView, layers: Sequence[LayerTar]) -> ScannerView | None:
    """What the final view declares; None if a status file's content was not captured (too large to keep)."""
    metadata_bytes = 0
    texts: list[tuple[bool, str]] = []
    links: dict[int, dict[str, str]] = {}  # layer -> its symlinks' targets, for the metadata symlinks of the view
    for path in _metadata_paths(view):
        item = view.items.get(path)
        if item is None or item[0]:
            continue  # a directory, or (for a copyright file) no such path
        _, layer, content, size = item
        name = path.lstrip("/")
        if content >= 0:
            metadata_bytes += size  # a regular file's bytes; a hard link counts none, as in a tar of the view
            if name == STATUS or is_status_d_entry(name):
                text = layers[view.content_layer[content]].captured_content(path) if size == view.content_size[content] else None
                if text is None:
                    return None
                texts.append((name != STATUS, text.decode("utf-8", "replace")))
            continue
        if layer not in links:
            entries = layers[layer].entries
            links[layer] = {e.path: e.link for e in entries if e.kind is EntryKind.SYMLINK and is_metadata(e.path.lstrip("/"))}
        target = links[layer].get(path)
        if target is not None:
            metadata_bytes += len(target.encode("utf-8", "surrogateescape"))
    return ScannerView(packages_in(texts), metadata_bytes)
