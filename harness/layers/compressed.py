"""Compressed layer blobs: recognise gzip and zstd by their magic, and decompress them as a stream.

Engine 25+ with the containerd image store saves an OCI layout whose layer
blobs are stored as they were pulled or built: gzip (the default) or zstd.
Their uncompressed bytes are the layer tar (whose SHA-256 is the diff_id); their
own length is exactly the layer's size on the wire.  Decompression is a stream
over `read(n)`: memory stays at a chunk or two whatever the layer's size.
"""

from __future__ import annotations

import enum
import gzip
import io
import zlib
from collections.abc import Callable
from typing import Protocol

from harness.layers.tarstream import CorruptTar

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 20


class Compression(str, enum.Enum):
    """How a layer blob is stored in the save stream."""

    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"

    @classmethod
    def sniff(cls, head: bytes) -> Compression:
        if head.startswith(GZIP_MAGIC):
            return cls.GZIP
        if head.startswith(ZSTD_MAGIC):
            return cls.ZSTD
        return cls.NONE


class _Readable(Protocol):
    """What is read of a decompressor: GzipFile and zstandard's stream reader alike."""

    def read(self, n: int, /) -> bytes: ...


class _Prefixed:
    """`read(n)` that first hands out bytes a caller already sniffed, then reads on."""

    __slots__ = ("_head", "_read", "consumed")

    def __init__(self, head: bytes, read: Callable[[int], bytes]) -> None:
        self._head = head
        self._read = read
        self.consumed = 0  # compressed bytes handed to the decompressor

    def read(self, n: int = -1) -> bytes:
        if self._head:
            size = len(self._head) if n is None or n < 0 else n
            data, self._head = self._head[:size], self._head[size:]
        else:
            data = self._read(CHUNK if n is None or n < 0 else n)
        self.consumed += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        """Refused: a blob is read once, forwards (GzipFile seeks only to rewind, which nothing here asks)."""
        raise io.UnsupportedOperation("seek")


def decompressing_reader(
    compression: Compression, head: bytes, read: Callable[[int], bytes], subject: str
) -> Callable[[int], bytes]:
    """`read(n)` over the uncompressed bytes of a blob whose first bytes `head` were already read.

    Errors in the compressed data (a bad header, a truncated stream, trailing
    garbage) become `CorruptTar` with a one-line message.
    """
    source = _Prefixed(head, read)
    stream: _Readable
    if compression is Compression.GZIP:
        # GzipFile reads every member of a multi-member gzip, as Go's reader does.
        stream = gzip.GzipFile(fileobj=source, mode="rb")
        errors: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error)
    elif compression is Compression.ZSTD:
        try:
            import zstandard
        except ImportError:  # pragma: no cover - a dependency of the project
            raise CorruptTar(
                subject, "unsupported layer", "a zstd-compressed blob, and the `zstandard` package is not installed"
            ) from None
        # zstandard's stub asks for an IO[bytes]; its reader only ever calls `read`.
        stream = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)  # type: ignore[arg-type]
        errors = (zstandard.ZstdError, OSError, EOFError)
    else:
        raise ValueError(compression)

    def read_uncompressed(n: int) -> bytes:
        try:
            return stream.read(n)
        except errors as error:
            raise CorruptTar(
                subject, f"corrupt {compression.value} layer", f"{error} (after {source.consumed} compressed bytes)"
            ) from None

    return read_uncompressed
