"""Read the tar stream `docker save` writes (Engine API `GET /images/{name}/get`), in one pass.

The outer stream is the legacy save format as Engine 20.10 writes it::

    <id>/VERSION  <id>/json  <id>/layer.tar   (one directory per layer, in lexical order)
    <config-hex>.json                          (the image config: rootfs.diff_ids, history)
    manifest.json                              ([{"Config", "RepoTags", "Layers": ["<id>/layer.tar", ...]}])
    repositories

`manifest.json` usually comes *after* the layers (the Engine tars a directory
in lexical order), so every layer tar is analysed as it streams past, keyed by
its member name, and put in manifest order at the end.  Newer Engines (25+)
write an OCI layout whose `manifest.json` names `blobs/sha256/<hex>` members;
those work too: a blob whose first block is a tar header is analysed as a layer.

Nothing is extracted and no content is kept: a layer tar is parsed as it streams,
keeping per-path metadata only (`LayerEntry`), while its bytes go through a
byte counter, SHA-256 and a gzip compressor whose output is only counted.  The one
exception is `capture`: the content of a few small files (by default
`/var/lib/dpkg/status`) is kept, per layer, for `harness.layers.dpkg`.

Wire size
---------
`wire_bytes` of a layer is the length of its layer tar gzip-compressed at zlib
level 6 with a 10-byte gzip header and no file name, i.e. exactly
`len(gzip.compress(layer_tar, compresslevel=6, mtime=0))`.  Level 6 is the
"default compression" of both zlib and Go's compress/gzip, which is what the
Engine uses when it pushes a layer; Go's deflate implementation is not zlib's,
so a registry's blob size differs from this figure by a few per cent, but the
figure is reproducible to the byte from the layer tar alone.  (Python's own
`gzip.compress` default is level 9; that is not what is measured here.)

The gzip compression dominates the cost (about 40 MB/s on incompressible data,
200 MB/s on text or zeros, per core); it runs in background threads, one layer
per thread, so parsing, hashing and compression overlap.  `wire=False` skips it.

Tar parsing
-----------
A small strict reader (ustar, GNU long names, PAX `path`/`linkpath`/`size`/
`uid`/`gid`) is used instead of `tarfile`, because `tarfile` in stream mode
silently stops at a corrupt header; here every header checksum is verified, a
truncated member is an error, and anything but zeros after the end-of-archive
marker is an error.  Member names are normalised (`./` and leading `/` removed,
`a/../b` folded); a name, hard-link target or whiteout that climbs out of the
root (`../x`) is refused with `HostileMember`, as the Engine refuses to load it.
Device nodes, fifos and symlinks are metadata only; nothing is ever written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import posixpath
import queue
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import BinaryIO

from harness.errors import HarnessError

BLOCK = 512
CHUNK = 1 << 20
WIRE_LEVEL = 6
DEFAULT_CAPTURE = frozenset({"/var/lib/dpkg/status"})
CAPTURE_LIMIT = 64 << 20  # a captured file larger than this is not kept
SMALL_LIMIT = 16 << 20  # non-layer members (json) larger than this are refused
SMALL_TOTAL_LIMIT = 64 << 20
_META_LIMIT = 16 << 20  # PAX / GNU long-name payloads
_ZERO_BLOCK = bytes(BLOCK)

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
META_PREFIX = ".wh..wh."


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


class SaveStreamError(HarnessError):
    """A docker-save stream (or a layer tar in it) that cannot be analysed.

    The message is one line, `<subject>: <what failed>: <evidence>`.
    """

    def __init__(self, subject: str, what: str, evidence: str) -> None:
        self.subject = subject
        self.what = what
        self.evidence = evidence
        super().__init__(f"{subject}: {what}: {_one_line(evidence)}")


class CorruptTar(SaveStreamError):
    """A tar that is truncated, has a bad header checksum, or has data after its end."""


class HostileMember(SaveStreamError):
    """A member whose name, hard-link target or whiteout climbs out of the root."""


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


_TYPE_KIND = {
    b"0": EntryKind.FILE, b"\0": EntryKind.FILE, b"7": EntryKind.FILE,
    b"1": EntryKind.HARDLINK, b"2": EntryKind.SYMLINK, b"3": EntryKind.CHAR,
    b"4": EntryKind.BLOCK, b"5": EntryKind.DIR, b"6": EntryKind.FIFO, b"D": EntryKind.DIR,
}
_HEADER_ONLY = frozenset({b"1", b"2", b"3", b"4", b"5", b"6"})


@dataclass(frozen=True, slots=True)
class LayerEntry:
    """Metadata of one member of a layer tar; content is never kept.

    `path` is normalised and absolute-looking (`/usr/bin/env`).  For WHITEOUT it is
    the path deleted, for OPAQUE the directory made opaque.  `size` is the size in
    the tar header (the content length for regular files, normally 0 otherwise).
    `link` is the symlink target as written, or the normalised hard-link target.
    """

    path: str
    kind: EntryKind
    size: int = 0
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    link: str = ""


@dataclass(frozen=True)
class LayerTar:
    """One layer tar as read from the stream.

    `tar_bytes` is the length of the layer tar, `sha256` its digest (`sha256:<hex>`,
    which is the layer's diff_id), `wire_bytes` its gzip length at level 6 (None
    when not computed), `entries` its members in tar order, `captured` the content
    of the captured paths it holds (later occurrences win).
    """

    name: str
    tar_bytes: int
    sha256: str
    wire_bytes: int | None
    entries: tuple[LayerEntry, ...]
    captured: tuple[tuple[str, bytes], ...] = ()

    @property
    def file_bytes(self) -> int:
        """Sum of the sizes of the regular files in this layer tar."""
        return sum(e.size for e in self.entries if e.kind is EntryKind.FILE)

    def captured_content(self, path: str) -> bytes | None:
        for captured_path, content in self.captured:
            if captured_path == path:
                return content
        return None


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of the config's `history`."""

    created_by: str
    empty_layer: bool
    created: str = ""
    comment: str = ""


@dataclass(frozen=True)
class SavedImage:
    """One image of a docker-save stream, its layers in manifest (bottom-up) order.

    `image_id` is `sha256:` + the digest of the config json; `diff_ids` come from
    the config's `rootfs`; `history` is the whole config history (empty layers included).
    """

    repo_tags: tuple[str, ...]
    image_id: str
    config_name: str
    diff_ids: tuple[str, ...]
    history: tuple[HistoryEntry, ...]
    layers: tuple[LayerTar, ...]

    def instructions(self) -> tuple[str | None, ...]:
        """`created_by` aligned with the layers, as dive aligns them.

        History entries with `empty_layer` are skipped; the i-th remaining entry
        belongs to the i-th layer; a layer without one gets None.
        """
        with_layer = [h.created_by for h in self.history if not h.empty_layer]
        return tuple(with_layer[i] if i < len(with_layer) else None for i in range(len(self.layers)))


# --------------------------------------------------------------------------- byte sources


class _Short(Exception):
    """Internal: the source ended before the bytes the tar promised."""


class _OuterShort(Exception):
    """Internal: the enclosing stream ended inside a member (not an error of the inner tar)."""


class _Source:
    """A buffered reader over `read(n)`; `hook` sees every byte once, as it is pulled in."""

    __slots__ = ("_read", "_buf", "_pos", "_chunk", "_hook", "offset")

    def __init__(self, read: Callable[[int], bytes], hook: Callable[[bytes], None] | None = None,
                 chunk: int = CHUNK) -> None:
        self._read = read
        self._buf = b""
        self._pos = 0
        self._chunk = chunk
        self._hook = hook
        self.offset = 0  # bytes handed out (read or skipped) so far

    def _fill(self) -> bool:
        data = self._read(self._chunk)
        if not data:
            return False
        if self._hook is not None:
            self._hook(data)
        if self._pos < len(self._buf):
            self._buf = self._buf[self._pos:] + data
        else:
            self._buf = data
        self._pos = 0
        return True

    def peek(self, n: int) -> bytes:
        while len(self._buf) - self._pos < n:
            if not self._fill():
                break
        return self._buf[self._pos:self._pos + n]

    def read_exact(self, n: int) -> bytes:
        pos = self._pos
        if len(self._buf) - pos >= n:
            self._pos = pos + n
            self.offset += n
            return self._buf[pos:pos + n]
        parts = []
        need = n
        while need:
            avail = len(self._buf) - self._pos
            if not avail:
                if not self._fill():
                    raise _Short(need)
                continue
            take = min(avail, need)
            parts.append(self._buf[self._pos:self._pos + take])
            self._pos += take
            need -= take
        self.offset += n
        return b"".join(parts)

    def read_some(self, n: int) -> bytes:
        """Up to n bytes (at least one unless at the end)."""
        if self._pos >= len(self._buf) and not self._fill():
            return b""
        pos = self._pos
        data = self._buf[pos:pos + n]
        self._pos = pos + len(data)
        self.offset += len(data)
        return data

    def skip(self, n: int) -> None:
        while n:
            avail = len(self._buf) - self._pos
            if not avail:
                if not self._fill():
                    raise _Short(n)
                continue
            take = min(avail, n)
            self._pos += take
            self.offset += take
            n -= take

    def scan_rest(self) -> int | None:
        """Consume everything left; the offset of the first non-zero byte, or None if all zero."""
        found = None
        while True:
            avail = len(self._buf) - self._pos
            if not avail:
                if not self._fill():
                    return found
                continue
            if found is None:
                rest = self._buf[self._pos:] if self._pos else self._buf
                if rest.count(0) != len(rest):
                    found = self.offset + next(i for i, b in enumerate(rest) if b)
            self.offset += avail
            self._pos = len(self._buf)


class _Member:
    """`read(n)` over exactly `size` bytes of an enclosing source."""

    __slots__ = ("_src", "_left", "_subject")

    def __init__(self, src: _Source, size: int, subject: str) -> None:
        self._src = src
        self._left = size
        self._subject = subject

    def read(self, n: int) -> bytes:
        if self._left <= 0:
            return b""
        data = self._src.read_some(min(n, self._left))
        if not data:
            raise _OuterShort(self._left)
        self._left -= len(data)
        return data


# --------------------------------------------------------------------------- tar headers


@dataclass(slots=True)
class _Header:
    name: str
    typeflag: bytes
    size: int  # header (or PAX) size
    data_size: int  # bytes of data following the header
    mode: int
    uid: int
    gid: int
    linkname: str
    offset: int  # offset of the (first) header block


def _number(field: bytes, subject: str, what: str, offset: int) -> int:
    if field and field[0] & 0x80:
        if field[0] == 0xFF:
            raise CorruptTar(subject, "corrupt tar", f"negative base-256 {what} in the header at offset {offset}")
        value = field[0] & 0x7F
        for byte in field[1:]:
            value = (value << 8) | byte
        return value
    text = field.split(b"\0", 1)[0]
    try:
        return int(text, 8)  # int() ignores surrounding spaces
    except ValueError:
        if not text.strip(b" "):
            return 0
        raise CorruptTar(subject, "corrupt tar",
                         f"{what} field {field!r} of the header at offset {offset} is not octal") from None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _pax_records(data: bytes, subject: str, offset: int) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # trailing NUL padding
            break
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            length = -1
        if space < 0 or length <= 0 or pos + length > len(data) or data[pos + length - 1:pos + length] != b"\n":
            raise CorruptTar(subject, "corrupt tar", f"malformed PAX record in the header at offset {offset}")
        key, sep, value = data[space + 1:pos + length - 1].partition(b"=")
        if not sep:
            raise CorruptTar(subject, "corrupt tar", f"PAX record without '=' in the header at offset {offset}")
        records[_text(key)] = _text(value)
        pos += length
    return records


def _iter_headers(src: _Source, subject: str) -> Iterator[_Header]:
    """Yield the entries of a tar; after each yield the caller may consume any part of the data.

    Whatever the caller leaves of an entry's data, and the padding after it, is
    skipped here.  Ends at the end-of-archive marker (checking that only zeros
    follow it), or at a clean end of the stream at a header boundary.
    """
    pax: dict[str, str] = {}
    long_name: str | None = None
    long_link: str | None = None
    while True:
        offset = src.offset
        try:
            block = src.read_exact(BLOCK)
        except _Short as short:
            got = BLOCK - short.args[0]
            if got == 0:
                if pax or long_name is not None or long_link is not None:
                    raise CorruptTar(subject, "truncated tar",
                                     f"stream ends after an extended header, at offset {offset}") from None
                return  # no end-of-archive marker: accepted at a header boundary, as Go's reader does
            raise CorruptTar(subject, "truncated tar", f"stream ends inside the header at offset {offset}") from None
        if block == _ZERO_BLOCK:
            nonzero = src.scan_rest()
            if nonzero is not None:
                raise CorruptTar(subject, "corrupt tar",
                                 f"non-zero byte at offset {nonzero}, after the end-of-archive marker at {offset}")
            return
        stored = _number(block[148:156], subject, "checksum", offset)
        unsigned = sum(block) - sum(block[148:156]) + 8 * 32
        if stored != unsigned:
            signed = unsigned - 256 * sum(1 for i, b in enumerate(block) if b >= 128 and not 148 <= i < 156)
            if stored != signed:
                raise CorruptTar(subject, "corrupt tar",
                                 f"bad header checksum at offset {offset}: stored {stored}, computed {unsigned}")
        typeflag = block[156:157]
        size = _number(block[124:136], subject, "size", offset)
        data_size = 0 if typeflag in _HEADER_ONLY else size
        if typeflag in (b"x", b"g", b"L", b"K"):
            if data_size > _META_LIMIT:
                raise CorruptTar(subject, "corrupt tar",
                                 f"extended header of {data_size} bytes at offset {offset}")
            try:
                data = src.read_exact(data_size)
                src.skip(-data_size % BLOCK)
            except _Short:
                raise CorruptTar(subject, "truncated tar",
                                 f"stream ends inside the extended header at offset {offset}") from None
            if typeflag == b"x":
                pax.update(_pax_records(data, subject, offset))
            elif typeflag == b"L":
                long_name = _text(data.split(b"\0", 1)[0])
            elif typeflag == b"K":
                long_link = _text(data.split(b"\0", 1)[0])
            # b"g" (global PAX header): no field it may carry matters here
            continue
        if typeflag in (b"S", b"M") or any(key.startswith("GNU.sparse.") for key in pax):
            raise SaveStreamError(subject, "unsupported tar member",
                                  f"sparse or multi-volume member at offset {offset}")
        name_raw = block[0:100].split(b"\0", 1)[0]
        magic = block[257:263]
        if magic == b"ustar\x00":
            prefix = block[345:500].split(b"\0", 1)[0]
            if prefix:
                name_raw = prefix + b"/" + name_raw
        name = pax.get("path", long_name if long_name is not None else _text(name_raw))
        linkname = pax.get("linkpath", long_link if long_link is not None else _text(block[157:257].split(b"\0", 1)[0]))
        try:
            if "size" in pax:
                size = int(pax["size"])
                if typeflag not in _HEADER_ONLY:
                    data_size = size
            uid = int(pax["uid"]) if "uid" in pax else _number(block[108:116], subject, "uid", offset)
            gid = int(pax["gid"]) if "gid" in pax else _number(block[116:124], subject, "gid", offset)
        except ValueError:
            raise CorruptTar(subject, "corrupt tar",
                             f"non-numeric PAX field in the header at offset {offset}") from None
        if size < 0 or data_size < 0:
            raise CorruptTar(subject, "corrupt tar", f"negative size in the header at offset {offset}")
        mode = _number(block[100:108], subject, "mode", offset) & 0o7777
        if typeflag == b"\0" and name.endswith("/"):
            typeflag = b"5"  # old-style directory, as Go's and Python's readers read it
        pax = {}
        long_name = long_link = None
        start = src.offset
        yield _Header(name, typeflag, size, data_size, mode, uid, gid, linkname, offset)
        try:
            src.skip(data_size - (src.offset - start) + (-data_size % BLOCK))
        except _Short:
            raise CorruptTar(subject, "truncated tar",
                             f"stream ends inside the data of {name!r} (header at offset {offset}, "
                             f"{data_size} bytes of data)") from None


# --------------------------------------------------------------------------- names


def normalise(name: str, subject: str, what: str = "member") -> str:
    """`./a//b/../c` -> `/a/c`; `/` for the root; HostileMember if the name climbs out of the root.

    A leading `/` is neutralised (taken relative to the root), as the Engine does.
    """
    if "\0" in name:
        raise HostileMember(subject, f"hostile {what}", f"{name!r} contains a NUL byte")
    stripped = name.lstrip("/")
    if not stripped:
        return "/"
    norm = posixpath.normpath(stripped)
    if norm == "..":
        raise HostileMember(subject, f"hostile {what}", f"{name!r} climbs out of the root")
    if norm.startswith("../"):
        raise HostileMember(subject, f"hostile {what}", f"{name!r} climbs out of the root")
    return "/" if norm == "." else "/" + norm


# --------------------------------------------------------------------------- layer tars


class _Digest:
    """Counts, hashes and (optionally, in a worker) gzip-compresses the bytes of one layer tar."""

    def __init__(self, wire: bool, level: int, pool: _CompressPool | None) -> None:
        self.count = 0
        self._sha = hashlib.sha256()
        self._wire = wire
        self._level = level
        self._pool = pool
        self._job: _CompressJob | None = None
        if wire:
            self._job = _CompressJob(level)
            if pool is not None:
                pool.start(self._job)

    def update(self, data: bytes) -> None:
        self.count += len(data)
        self._sha.update(data)
        if self._job is not None:
            if self._pool is not None:
                self._pool.feed(self._job, data)
            else:
                self._job.compress(data)

    def finish(self) -> tuple[str, _CompressJob | None]:
        if self._job is not None:
            if self._pool is not None:
                self._pool.finish(self._job)
            else:
                self._job.flush()
        return "sha256:" + self._sha.hexdigest(), self._job


class _CompressJob:
    __slots__ = ("_obj", "length", "done")

    def __init__(self, level: int) -> None:
        self._obj = zlib.compressobj(level, zlib.DEFLATED, 31)
        self.length = 0
        self.done = False

    def compress(self, data: bytes) -> None:
        self.length += len(self._obj.compress(data))

    def flush(self) -> None:
        self.length += len(self._obj.flush())
        self._obj = None
        self.done = True


class _CompressPool:
    """Background gzip compression: each layer is pinned to one worker (deflate is sequential).

    Queues are bounded, so memory stays at a few chunks per worker whatever the
    image size; zlib releases the GIL, so workers run beside the parser.
    """

    def __init__(self, workers: int, depth: int = 8) -> None:
        self._queues: list[queue.Queue] = [queue.Queue(depth) for _ in range(workers)]
        self._threads = [threading.Thread(target=self._run, args=(q,), daemon=True, name=f"layers-gzip-{i}")
                         for i, q in enumerate(self._queues)]
        self._assigned: dict[int, queue.Queue] = {}
        self._next = 0
        self._error: BaseException | None = None
        for thread in self._threads:
            thread.start()

    def _run(self, jobs: queue.Queue) -> None:
        while True:
            item = jobs.get()
            if item is None:
                return
            job, data = item
            if self._error is not None:
                continue
            try:
                if data is None:
                    job.flush()
                else:
                    job.compress(data)
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = error

    def start(self, job: _CompressJob) -> None:
        self._assigned[id(job)] = self._queues[self._next % len(self._queues)]
        self._next += 1

    def feed(self, job: _CompressJob, data: bytes) -> None:
        self._assigned[id(job)].put((job, data))

    def finish(self, job: _CompressJob) -> None:
        self._assigned.pop(id(job)).put((job, None))

    def close(self) -> None:
        for jobs in self._queues:
            jobs.put(None)
        for thread in self._threads:
            thread.join()
        if self._error is not None:
            raise self._error


def _default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def _layer_entries(src: _Source, subject: str, capture: frozenset[str],
                   captured: dict[str, bytes]) -> list[LayerEntry]:
    entries: list[LayerEntry] = []
    append = entries.append
    for header in _iter_headers(src, subject):
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
            target = base[len(WHITEOUT_PREFIX):]
            if target in ("", ".", ".."):
                raise HostileMember(subject, "hostile whiteout",
                                    f"{header.name!r} deletes {target or 'its directory'!r}")
            whiteout = posixpath.join(parent, target)
            append(LayerEntry(whiteout, EntryKind.WHITEOUT, header.size, header.mode, header.uid, header.gid))
            continue
        kind = _TYPE_KIND.get(header.typeflag, EntryKind.OTHER)
        link = header.linkname
        if kind is EntryKind.HARDLINK:
            link = normalise(link, subject, "hard link")
            if link == "/":
                raise HostileMember(subject, "hostile hard link", f"{header.name!r} links to the root")
        if kind is EntryKind.FILE and path in capture and header.data_size <= CAPTURE_LIMIT:
            captured[path] = src.read_exact(header.data_size)
        append(LayerEntry(path, kind, header.size, header.mode, header.uid, header.gid, link))
    return entries


def _read_layer(read: Callable[[int], bytes], name: str, subject: str, *, wire: bool, level: int,
                capture: frozenset[str], pool: _CompressPool | None,
                first: bytes = b"") -> tuple[list[LayerEntry], dict[str, bytes], _Digest]:
    digest = _Digest(wire, level, pool)
    if first:
        digest.update(first)
    src = _Source(read, digest.update)
    if first:  # bytes already pulled from `read` by a sniffing caller
        src._buf = first  # noqa: SLF001
    captured: dict[str, bytes] = {}
    try:
        entries = _layer_entries(src, subject, capture, captured)
        src.scan_rest()  # no-op after an end marker; consumes a tail otherwise
    except _Short as short:
        raise CorruptTar(subject, "truncated tar", f"the layer tar ends {short.args[0]} bytes early") from None
    return entries, captured, digest


def read_layer_tar(stream: BinaryIO, name: str = "layer.tar", *, wire: bool = True, level: int = WIRE_LEVEL,
                   capture: Iterable[str] = DEFAULT_CAPTURE) -> LayerTar:
    """Analyse one (uncompressed) layer tar stream; see the module docstring."""
    entries, captured, digest = _read_layer(stream.read, name, f"layer {name}", wire=wire, level=level,
                                            capture=frozenset(capture), pool=None)
    sha, job = digest.finish()
    return LayerTar(name, digest.count, sha, job.length if job else None, tuple(entries),
                    tuple(sorted(captured.items())))


def _is_tar_start(block: bytes) -> bool:
    if len(block) < BLOCK:
        return False
    if block[:BLOCK] == _ZERO_BLOCK:
        return True
    try:
        stored = int(block[148:156].split(b"\0", 1)[0].strip(b" ") or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:BLOCK]) - sum(block[148:156]) + 256


def _metadata_name(name: str) -> str | None:
    """"keep" for json the image needs (manifest, config, index), "skip" for other metadata, else None."""
    base = name.rpartition("/")[2]
    if base in ("json", "VERSION", "repositories", "oci-layout"):
        return "skip"  # per-layer v1 json, format versions: not needed
    return "keep" if base.endswith(".json") else None


# --------------------------------------------------------------------------- the save stream


@dataclass
class _Pending:
    name: str
    entries: list[LayerEntry]
    captured: dict[str, bytes]
    tar_bytes: int
    sha256: str
    job: _CompressJob | None


def read_save(stream: BinaryIO, *, image: str | None = None, wire: bool = True, level: int = WIRE_LEVEL,
              capture: Iterable[str] = DEFAULT_CAPTURE, workers: int | None = None,
              subject: str = "docker save stream") -> SavedImage:
    """Read a docker-save tar stream in one pass and return the image's layers in manifest order.

    `image` picks one image of a multi-image save by a RepoTag or an image-id
    prefix; with one image it may be omitted.  `wire=False` skips the gzip sizes
    (`LayerTar.wire_bytes` is then None).  `workers` is the number of gzip threads
    (default: CPUs - 1, at most 4; 0 compresses in the calling thread).
    Raises SaveStreamError (CorruptTar, HostileMember) with a one-line message.
    """
    capture = frozenset(capture)
    workers = _default_workers() if workers is None else workers
    pool = _CompressPool(workers) if wire and workers > 0 else None
    outer = _Source(stream.read)
    pending: dict[str, _Pending] = {}
    links: dict[str, str] = {}
    small: dict[str, bytes] = {}
    small_total = 0
    not_tar: dict[str, bytes] = {}  # large members that are not tars -> their first bytes
    try:
        try:
            headers = _iter_headers(outer, subject)
            for header in headers:
                name = normalise(header.name, subject).lstrip("/")
                if header.typeflag == b"2" and name.endswith(".tar"):
                    links[name] = normalise(posixpath.join(posixpath.dirname(name), header.linkname),
                                            subject, "layer link").lstrip("/")
                    continue
                if _TYPE_KIND.get(header.typeflag) is not EntryKind.FILE:
                    continue
                member = _Member(outer, header.data_size, subject)
                layer_subject = f"{subject}: layer {name}"
                metadata = _metadata_name(name)
                if metadata == "skip":
                    continue
                if metadata == "keep":
                    if header.data_size > SMALL_LIMIT or small_total + header.data_size > SMALL_TOTAL_LIMIT:
                        raise SaveStreamError(subject, "unexpectedly large metadata member",
                                              f"{name} has {header.data_size} bytes")
                    small[name] = outer.read_exact(header.data_size)
                    small_total += header.data_size
                    continue
                first = b""
                if not name.endswith(".tar"):
                    first = member.read(BLOCK)
                    while len(first) < min(BLOCK, header.data_size):
                        first += member.read(BLOCK - len(first))
                    if not _is_tar_start(first) and header.data_size:
                        # not a layer tar (e.g. an OCI json blob without extension): keep it if small
                        if header.data_size <= SMALL_LIMIT and small_total + header.data_size <= SMALL_TOTAL_LIMIT:
                            small[name] = first + outer.read_exact(header.data_size - len(first))
                            small_total += header.data_size
                        else:
                            not_tar[name] = first[:4]
                        continue
                entries, captured, digest = _read_layer(member.read, name, layer_subject, wire=wire,
                                                        level=level, capture=capture, pool=pool, first=first)
                if digest.count != header.data_size:
                    raise CorruptTar(layer_subject, "corrupt tar",
                                     f"layer tar has {digest.count} bytes, its header says {header.data_size}")
                sha, job = digest.finish()
                pending[name] = _Pending(name, entries, captured, digest.count, sha, job)
        except (_Short, _OuterShort) as short:
            raise CorruptTar(subject, "truncated stream",
                             f"the stream ends {short.args[0]} bytes before the end of a member") from None
        if outer.offset == 0:
            raise CorruptTar(subject, "not a docker save stream", "the stream is empty")
    finally:
        if pool is not None:
            pool.close()
    return _assemble(subject, image, pending, links, small, not_tar, capture, wire, level)


def _assemble(subject: str, image: str | None, pending: dict[str, _Pending], links: dict[str, str],
              small: dict[str, bytes], not_tar: dict[str, bytes], capture: frozenset[str], wire: bool,
              level: int) -> SavedImage:
    if "manifest.json" not in small:
        found = ", ".join(sorted(small)[:5]) or "no metadata members"
        raise SaveStreamError(subject, "no manifest.json", f"found {found}; is this a `docker save` stream?")
    manifest = _json(subject, "manifest.json", small["manifest.json"])
    if not isinstance(manifest, list) or not manifest or not all(isinstance(m, dict) for m in manifest):
        raise SaveStreamError(subject, "manifest.json: not a list of images", repr(manifest)[:120])
    entry = _pick(subject, manifest, image, small)
    config_name = str(entry.get("Config", ""))
    if config_name not in small:
        raise SaveStreamError(subject, "image config missing",
                              f"manifest.json names {config_name!r}, not in the stream")
    config_bytes = small[config_name]
    config = _json(subject, config_name, config_bytes)
    if not isinstance(config, dict):
        raise SaveStreamError(subject, f"{config_name}: not an image config", repr(config)[:120])
    rootfs = config.get("rootfs") or {}
    diff_ids = tuple(str(d) for d in rootfs.get("diff_ids") or ())
    history = tuple(
        HistoryEntry(str(h.get("created_by", "")), bool(h.get("empty_layer", False)), str(h.get("created", "")),
                     str(h.get("comment", "")))
        for h in config.get("history") or () if isinstance(h, dict))
    layer_names = [str(n) for n in entry.get("Layers") or ()]
    if len(diff_ids) != len(layer_names):
        raise SaveStreamError(subject, "config and manifest disagree",
                              f"{config_name} lists {len(diff_ids)} diff_ids, manifest.json {len(layer_names)} layers")
    layers = []
    built: dict[str, LayerTar] = {}
    for name in layer_names:
        key = normalise(name, subject, "manifest layer").lstrip("/")
        seen = set()
        while key in links and key not in pending and key not in seen:
            seen.add(key)
            key = links[key]
        small_not_tar = key in small and not _is_tar_start(small[key].ljust(BLOCK, b"\0"))
        if key not in pending and (key in not_tar or small_not_tar):
            head = not_tar.get(key, small.get(key, b""))[:4]
            raise SaveStreamError(subject, "unsupported layer",
                                  f"{name} is not an uncompressed tar (it starts with {head!r}; "
                                  "compressed layer blobs are not supported)")
        if key not in pending and key in small:  # a small layer blob kept before we knew it was a layer
            entries, captured, digest = _read_layer(io.BytesIO(small[key]).read, key, f"{subject}: layer {key}",
                                                    wire=wire, level=level, capture=capture, pool=None)
            sha, job = digest.finish()
            pending[key] = _Pending(key, entries, captured, digest.count, sha, job)
        if key not in pending:
            raise SaveStreamError(subject, "layer missing", f"manifest.json lists {name}, the stream has no such tar")
        p = pending[key]
        if key not in built:
            built[key] = LayerTar(name, p.tar_bytes, p.sha256, p.job.length if p.job else None, tuple(p.entries),
                                  tuple(sorted(p.captured.items())))
        layers.append(built[key] if built[key].name == name else dataclasses.replace(built[key], name=name))
    return SavedImage(
        repo_tags=tuple(str(t) for t in entry.get("RepoTags") or ()),
        image_id="sha256:" + hashlib.sha256(config_bytes).hexdigest(),
        config_name=config_name,
        diff_ids=diff_ids,
        history=history,
        layers=tuple(layers),
    )


def _json(subject: str, name: str, data: bytes) -> object:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise SaveStreamError(subject, f"{name}: invalid json", str(error)) from None


def _pick(subject: str, manifest: Sequence[dict], image: str | None, small: dict[str, bytes]) -> dict:
    if image is None:
        if len(manifest) == 1:
            return manifest[0]
        tags = [t for m in manifest for t in m.get("RepoTags") or ()]
        raise SaveStreamError(subject, "several images in the stream, none chosen", f"RepoTags {tags}")
    for m in manifest:
        if image in (m.get("RepoTags") or ()):
            return m
    wanted = image.removeprefix("sha256:")
    for m in manifest:
        config = small.get(str(m.get("Config", "")))
        if config is not None and len(wanted) >= 4 and hashlib.sha256(config).hexdigest().startswith(wanted):
            return m
    tags = [t for m in manifest for t in m.get("RepoTags") or ()]
    raise SaveStreamError(subject, f"image {image!r} not in the stream", f"RepoTags {tags}")
