"""One layer tar: its members as `LayerEntry`s (overlay whiteouts recognised), its length, digest and wire size.

Nothing is extracted and no content is kept: a layer tar is parsed as it streams,
keeping per-path metadata only (`LayerEntry`, with each regular file's SHA-256,
so that a file a layer stores again as it was below can be told apart), while
its bytes go through a byte counter, SHA-256 and a gzip compressor whose output
is only counted.  The one
exception is `capture`: the content of a few small files is kept, per layer:
by default dpkg's status file and every file of distroless's status.d (a path
ending in `/` captures the files below it), for `harness.debian.dpkg` and
`harness.layers.declared`.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import BinaryIO

from harness.debian.dpkg import DPKG_STATUS, DPKG_STATUS_D
from harness.layers.bytesource import ByteSource, SourceEnded
from harness.layers.compressed import Compression
from harness.layers.tarstream import (
    CorruptTar,
    HostileMember,
    iter_headers,
    normalise,
)
from harness.layers.wire import WIRE_LEVEL, CompressPool, LayerDigest

DEFAULT_CAPTURE = frozenset({DPKG_STATUS, f"{DPKG_STATUS_D}/"})
CAPTURE_LIMIT = 64 << 20  # a captured file larger than this is not kept

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
META_PREFIX = ".wh..wh."


class EntryKind(str, Enum):
    """What a layer tar member is.  WHITEOUT/OPAQUE/AUFS are overlay markers, not files."""

    FILE = "file"
    HARDLINK = "hardlink"
    SYMLINK = "symlink"
    CHAR = "char"
    BLOCK = "block"
    DIR = "dir"
    FIFO = "fifo"
    OTHER = "other"
    WHITEOUT = "whiteout"  # `.wh.<name>`: deletes `path` from the layers below
    OPAQUE = "opaque"  # `.wh..wh..opq`: `path` (a directory) hides everything below it
    AUFS = "aufs"  # other `.wh..wh.*` names (AUFS metadata): skipped, as the Engine does


TYPE_KIND = {
    b"0": EntryKind.FILE,
    b"\0": EntryKind.FILE,
    b"7": EntryKind.FILE,
    b"1": EntryKind.HARDLINK,
    b"2": EntryKind.SYMLINK,
    b"3": EntryKind.CHAR,
    b"4": EntryKind.BLOCK,
    b"5": EntryKind.DIR,
    b"6": EntryKind.FIFO,
    b"D": EntryKind.DIR,
}


@dataclass(frozen=True, slots=True)
class LayerEntry:
    """Metadata of one member of a layer tar; content is never kept.

    `path` is normalised and absolute-looking (`/usr/bin/env`).  For WHITEOUT it is
    the path deleted, for OPAQUE the directory made opaque.  `size` is the size in
    the tar header (the content length for regular files, normally 0 otherwise).
    `link` is the symlink target as written, or the normalised hard-link target.
    `mtime_ns`, `xattrs` and, for a regular file, `digest` (the SHA-256 of its
    content) say whether a file is the same file as one below it (`same_file_as`).
    """

    path: str
    kind: EntryKind
    size: int = 0
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    link: str = ""
    mtime_ns: int = 0
    xattrs: tuple[tuple[str, str], ...] = ()
    digest: str = ""

    def same_file_as(self, other: LayerEntry) -> bool:
        """Both regular files, with the same content, mode, owner, time and extended attributes.

        What the containerd image store's differ (containerd's continuity `fs.Changes`) leaves out of
        a layer as unchanged, and overlay2, which commits a layer from its upper folder, stores again.
        """
        return (
            self.kind is EntryKind.FILE
            and other.kind is EntryKind.FILE
            and self.digest == other.digest
            and (self.size, self.mode, self.uid, self.gid, self.mtime_ns, self.xattrs)
            == (other.size, other.mode, other.uid, other.gid, other.mtime_ns, other.xattrs)
        )


@dataclass(frozen=True)
class LayerTar:
    """One layer tar as read from the stream.

    `tar_bytes` is the length of the (uncompressed) layer tar, `sha256` its digest
    (`sha256:<hex>`, which is the layer's diff_id), `wire_bytes` its size on the
    wire: the blob's own length when the save stream stores it compressed
    (`stored_as`), else its gzip length at level 6 (None when not computed);
    `entries` its members in tar order, `captured` the content of the captured
    paths it holds (later occurrences win).
    """

    name: str
    tar_bytes: int
    sha256: str
    wire_bytes: int | None
    entries: tuple[LayerEntry, ...]
    captured: tuple[tuple[str, bytes], ...] = ()
    stored_as: Compression = Compression.NONE

    @property
    def file_bytes(self) -> int:
        """Sum of the sizes of the regular files in this layer tar."""
        return sum(e.size for e in self.entries if e.kind is EntryKind.FILE)

    @property
    def content_bytes(self) -> int:
        """The layer's size as overlay2 measures a layer's folder: regular files plus symlink targets.

        The Engine's overlay2 driver sums `st_size` of every non-directory in the
        layer (moby pkg/directory): a regular file's length, a symlink's target
        length, 0 for whiteouts and devices, each hard-linked inode once (a tar
        stores its content once too).  Summed over an image's layers this is its
        `Size` on overlay2, to the byte, and it is computed from the layer tar
        alone, so every image store gives the same figure.
        """
        links = sum(len(e.link.encode("utf-8", "surrogateescape")) for e in self.entries if e.kind is EntryKind.SYMLINK)
        return self.file_bytes + links

    def captured_content(self, path: str) -> bytes | None:
        for captured_path, content in self.captured:
            if captured_path == path:
                return content
        return None


# --------------------------------------------------------------------------- layer tars


def _layer_entries(src: ByteSource, subject: str, capture: frozenset[str], captured: dict[str, bytes]) -> list[LayerEntry]:
    entries: list[LayerEntry] = []
    append = entries.append
    below = tuple(path for path in capture if path.endswith("/"))
    for header in iter_headers(src, subject):
        path = normalise(header.name, subject)
        if path == "/":
            if header.typeflag == b"5":
                continue  # the root directory itself
            raise HostileMember(subject, "hostile member", f"{header.name!r} is not a directory but names the root")
        parent, _, base = path.rpartition("/")
        parent = parent or "/"
        if base.startswith(META_PREFIX) or "/" + META_PREFIX in parent:
            if base == OPAQUE_MARKER and "/" + META_PREFIX not in parent:
                append(LayerEntry(parent, EntryKind.OPAQUE, header.size, header.mode, header.uid, header.gid))
            else:
                append(LayerEntry(path, EntryKind.AUFS, header.size, header.mode, header.uid, header.gid))
            continue
        if base.startswith(WHITEOUT_PREFIX):
            target = base[len(WHITEOUT_PREFIX) :]
            if target in ("", ".", ".."):
                raise HostileMember(subject, "hostile whiteout", f"{header.name!r} deletes {target or 'its directory'!r}")
            whiteout = posixpath.join(parent, target)
            append(LayerEntry(whiteout, EntryKind.WHITEOUT, header.size, header.mode, header.uid, header.gid))
            continue
        kind = TYPE_KIND.get(header.typeflag, EntryKind.OTHER)
        link = header.linkname
        if kind is EntryKind.HARDLINK:
            link = normalise(link, subject, "hard link")
            if link == "/":
                raise HostileMember(subject, "hostile hard link", f"{header.name!r} links to the root")
        digest = ""
        if kind is EntryKind.FILE:
            content = hashlib.sha256()
            if (path in capture or path.startswith(below)) and header.data_size <= CAPTURE_LIMIT:
                captured[path] = src.read_exact(header.data_size)
                content.update(captured[path])
            else:
                src.feed(header.data_size, content.update)
            digest = content.hexdigest()
        append(
            LayerEntry(path, kind, header.size, header.mode, header.uid, header.gid, link, header.mtime_ns, header.xattrs, digest)
        )
    return entries


def read_layer(
    read: Callable[[int], bytes],
    name: str,
    subject: str,
    *,
    wire: bool,
    level: int,
    capture: frozenset[str],
    pool: CompressPool | None,
    first: bytes = b"",
) -> tuple[list[LayerEntry], dict[str, bytes], LayerDigest]:
    """One layer tar pulled from `read`: its entries, the captured files' content, and its digest, still to be finished.

    `first` holds bytes a caller pulled from `read` to sniff them; they are read first.
    """
    digest = LayerDigest(wire, level, pool)
    src = ByteSource(read, digest.update, head=first)
    captured: dict[str, bytes] = {}
    try:
        entries = _layer_entries(src, subject, capture, captured)
        src.scan_rest()  # no-op after an end marker; consumes a tail otherwise
    except SourceEnded as short:
        raise CorruptTar(subject, "truncated tar", f"the layer tar ends {short.args[0]} bytes early") from None
    return entries, captured, digest


def read_layer_tar(
    stream: BinaryIO,
    name: str = "layer.tar",
    *,
    wire: bool = True,
    level: int = WIRE_LEVEL,
    capture: Iterable[str] = DEFAULT_CAPTURE,
) -> LayerTar:
    """Analyse one (uncompressed) layer tar stream; see the module docstring."""
    entries, captured, digest = read_layer(
        stream.read, name, f"layer {name}", wire=wire, level=level, capture=frozenset(capture), pool=None
    )
    sha, job = digest.finish()
    return LayerTar(name, digest.count, sha, job.length if job else None, tuple(entries), tuple(sorted(captured.items())))
