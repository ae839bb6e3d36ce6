"""A strict tar reader, streaming and single-pass: headers, PAX and GNU long names, member names.

A small strict reader (ustar, GNU long names, PAX `path`/`linkpath`/`size`/
`uid`/`gid`/`mtime` and extended attributes) is used instead of `tarfile`, because `tarfile` in stream mode
silently stops at a corrupt header; here every header checksum is verified, a
truncated member is an error, and anything but zeros after the end-of-archive
marker is an error.  Member names are normalised (`./` and leading `/` removed,
`a/../b` folded); a name, hard-link target or whiteout that climbs out of the
root (`../x`) is refused with `HostileMember`, as the Engine refuses to load it.
Device nodes, fifos and symlinks are metadata only; nothing is ever written.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from harness.layers.bytesource import ByteSource, SourceEnded
from harness.records.errors import EvidenceError

BLOCK = 512
_META_LIMIT = 16 << 20  # PAX / GNU long-name payloads
_ZERO_BLOCK = bytes(BLOCK)
_HEADER_ONLY = frozenset({b"1", b"2", b"3", b"4", b"5", b"6"})
_EXTENDED = frozenset({b"x", b"g", b"L", b"K"})  # PAX (local, global), GNU long name, GNU long link


class SaveStreamError(EvidenceError):
    """A docker-save stream (or a layer tar in it) that cannot be analysed.

    The message is one line, `<subject>: <what failed>: <evidence>`.
    """


class CorruptTar(SaveStreamError):
    """A tar that is truncated, has a bad header checksum, or has data after its end."""


class HostileMember(SaveStreamError):
    """A member whose name, hard-link target or whiteout climbs out of the root."""


# --------------------------------------------------------------------------- tar headers


@dataclass(slots=True)
class TarHeader:
    """One member's header as `iter_headers` yields it, its PAX and GNU long names already applied."""

    name: str
    typeflag: bytes
    size: int  # header (or PAX) size
    data_size: int  # bytes of data following the header
    mode: int
    uid: int
    gid: int
    linkname: str
    offset: int  # offset of the (first) header block
    mtime_ns: int = 0  # PAX's (to the nanosecond, where it says) or the header's (whole seconds)
    xattrs: tuple[tuple[str, str], ...] = ()  # (name, value) of its PAX SCHILY.xattr.* records, sorted: file capabilities


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
        raise CorruptTar(
            subject, "corrupt tar", f"{what} field {field!r} of the header at offset {offset} is not octal"
        ) from None


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
        if space < 0 or length <= 0 or pos + length > len(data) or data[pos + length - 1 : pos + length] != b"\n":
            raise CorruptTar(subject, "corrupt tar", f"malformed PAX record in the header at offset {offset}")
        key, sep, value = data[space + 1 : pos + length - 1].partition(b"=")
        if not sep:
            raise CorruptTar(subject, "corrupt tar", f"PAX record without '=' in the header at offset {offset}")
        records[_text(key)] = _text(value)
        pos += length
    return records


def _check_sum(block: bytes, subject: str, offset: int) -> None:
    """The header's checksum, as an unsigned or (old tars) a signed sum of its bytes."""
    stored = _number(block[148:156], subject, "checksum", offset)
    unsigned = sum(block) - sum(block[148:156]) + 8 * 32
    if stored != unsigned:
        signed = unsigned - 256 * sum(1 for i, b in enumerate(block) if b >= 128 and not 148 <= i < 156)
        if stored != signed:
            raise CorruptTar(
                subject, "corrupt tar", f"bad header checksum at offset {offset}: stored {stored}, computed {unsigned}"
            )


def _extended_data(src: ByteSource, data_size: int, subject: str, offset: int) -> bytes:
    """The data of an extended header (PAX, GNU long name or link), its padding skipped."""
    try:
        data = src.read_exact(data_size)
        src.skip(-data_size % BLOCK)
    except SourceEnded:
        raise CorruptTar(subject, "truncated tar", f"stream ends inside the extended header at offset {offset}") from None
    return data


def _names(block: bytes, pax: dict[str, str], long_name: str | None, long_link: str | None) -> tuple[str, str]:
    """The member's name and link name: PAX's, else a GNU long one, else the header's (with ustar's prefix)."""
    name_raw = block[0:100].split(b"\0", 1)[0]
    magic = block[257:263]
    if magic == b"ustar\x00":
        prefix = block[345:500].split(b"\0", 1)[0]
        if prefix:
            name_raw = prefix + b"/" + name_raw
    name = pax.get("path", long_name if long_name is not None else _text(name_raw))
    linkname = pax.get("linkpath", long_link if long_link is not None else _text(block[157:257].split(b"\0", 1)[0]))
    return name, linkname


def _pax_numbers(
    block: bytes, pax: dict[str, str], typeflag: bytes, size: int, data_size: int, subject: str, offset: int
) -> tuple[int, int, int, int]:
    """(size, data size, uid, gid): PAX's where it gives them, else the header's."""
    try:
        if "size" in pax:
            size = int(pax["size"])
            if typeflag not in _HEADER_ONLY:
                data_size = size
        uid = int(pax["uid"]) if "uid" in pax else _number(block[108:116], subject, "uid", offset)
        gid = int(pax["gid"]) if "gid" in pax else _number(block[116:124], subject, "gid", offset)
    except ValueError:
        raise CorruptTar(subject, "corrupt tar", f"non-numeric PAX field in the header at offset {offset}") from None
    return size, data_size, uid, gid


@dataclass
class _Extended:
    """What the extended headers (PAX, GNU long name and long link) read so far say of the member that follows."""

    pax: dict[str, str] = field(default_factory=dict)
    long_name: str | None = None
    long_link: str | None = None

    def started(self) -> bool:
        return bool(self.pax) or self.long_name is not None or self.long_link is not None

    def add(self, typeflag: bytes, data: bytes, subject: str, offset: int) -> None:
        if typeflag == b"x":
            self.pax.update(_pax_records(data, subject, offset))
        elif typeflag == b"L":
            self.long_name = _text(data.split(b"\0", 1)[0])
        elif typeflag == b"K":
            self.long_link = _text(data.split(b"\0", 1)[0])
        # b"g" (global PAX header): no field it may carry matters here


def iter_headers(src: ByteSource, subject: str) -> Iterator[TarHeader]:
    """Yield the entries of a tar; after each yield the caller may consume any part of the data.

    Whatever the caller leaves of an entry's data, and the padding after it, is
    skipped here.  Ends at the end-of-archive marker (checking that only zeros
    follow it), or at a clean end of the stream at a header boundary.
    """
    extended = _Extended()
    while True:
        offset = src.offset
        block = _header_block(src, subject, offset, extended)
        if block is None:
            return
        _check_sum(block, subject, offset)
        typeflag = block[156:157]
        size = _number(block[124:136], subject, "size", offset)
        data_size = 0 if typeflag in _HEADER_ONLY else size
        if typeflag in _EXTENDED:
            if data_size > _META_LIMIT:
                raise CorruptTar(subject, "corrupt tar", f"extended header of {data_size} bytes at offset {offset}")
            extended.add(typeflag, _extended_data(src, data_size, subject, offset), subject, offset)
            continue
        header = _member_header(block, typeflag, size, data_size, extended, subject, offset)
        extended = _Extended()
        start = src.offset
        yield header
        try:
            src.skip(header.data_size - (src.offset - start) + (-header.data_size % BLOCK))
        except SourceEnded:
            raise CorruptTar(
                subject,
                "truncated tar",
                f"stream ends inside the data of {header.name!r} (header at offset {offset}, {header.data_size} bytes of data)",
            ) from None


def _header_block(src: ByteSource, subject: str, offset: int, extended: _Extended) -> bytes | None:
    """The next header block; None at the end of the archive (its marker, or the stream's end at a header boundary)."""
    try:
        block = src.read_exact(BLOCK)
    except SourceEnded as short:
        got = BLOCK - short.args[0]
        if got == 0:
            if extended.started():
                raise CorruptTar(subject, "truncated tar", f"stream ends after an extended header, at offset {offset}") from None
            return None  # no end-of-archive marker: accepted at a header boundary, as Go's reader does
        raise CorruptTar(subject, "truncated tar", f"stream ends inside the header at offset {offset}") from None
    if block == _ZERO_BLOCK:
        nonzero = src.scan_rest()
        if nonzero is not None:
            raise CorruptTar(
                subject, "corrupt tar", f"non-zero byte at offset {nonzero}, after the end-of-archive marker at {offset}"
            )
        return None
    return block


def _member_header(
    block: bytes, typeflag: bytes, size: int, data_size: int, extended: _Extended, subject: str, offset: int
) -> TarHeader:
    """A member's header, what the extended headers before it said applied."""
    pax = extended.pax
    if typeflag in (b"S", b"M") or any(key.startswith("GNU.sparse.") for key in pax):
        raise SaveStreamError(subject, "unsupported tar member", f"sparse or multi-volume member at offset {offset}")
    name, linkname = _names(block, pax, extended.long_name, extended.long_link)
    size, data_size, uid, gid = _pax_numbers(block, pax, typeflag, size, data_size, subject, offset)
    if size < 0 or data_size < 0:
        raise CorruptTar(subject, "corrupt tar", f"negative size in the header at offset {offset}")
    mode = _number(block[100:108], subject, "mode", offset) & 0o7777
    if typeflag == b"\0" and name.endswith("/"):
        typeflag = b"5"  # old-style directory, as Go's and Python's readers read it
    xattrs = tuple(sorted((key.removeprefix(_XATTR), value) for key, value in pax.items() if key.startswith(_XATTR)))
    mtime_ns = _mtime_ns(block, pax, subject, offset)
    return TarHeader(name, typeflag, size, data_size, mode, uid, gid, linkname, offset, mtime_ns, xattrs)


_XATTR = "SCHILY.xattr."


def _mtime_ns(block: bytes, pax: dict[str, str], subject: str, offset: int) -> int:
    if "mtime" not in pax:
        return _number(block[136:148], subject, "mtime", offset) * 1_000_000_000
    try:
        return int(Decimal(pax["mtime"]) * 1_000_000_000)
    except InvalidOperation:
        raise CorruptTar(subject, "corrupt tar", f"non-numeric PAX mtime in the header at offset {offset}") from None


def is_tar_start(block: bytes) -> bool:
    if len(block) < BLOCK:
        return False
    if block[:BLOCK] == _ZERO_BLOCK:
        return True
    try:
        stored = int(block[148:156].split(b"\0", 1)[0].strip(b" ") or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:BLOCK]) - sum(block[148:156]) + 256


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
