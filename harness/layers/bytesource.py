"""The byte sources the tar reader pulls from: a buffered `read(n)` and a reader over one member of it.

`ByteSource` hands out exact lengths, skips, and shows every byte it pulls in to
a hook once (the layer's digest and gzip size are computed that way, as the
bytes stream past); `MemberReader` is a `read(n)` over one member of an
enclosing source, for a layer tar inside the save stream.
"""

from __future__ import annotations

from collections.abc import Callable

CHUNK = 1 << 20


class SourceEnded(Exception):
    """The source ended before the bytes the tar promised (args[0]: how many were missing); callers turn it into CorruptTar."""


class OuterStreamEnded(Exception):
    """The enclosing stream ended inside a member (args[0]: how many bytes were missing), not an error of the inner tar."""


class ByteSource:
    """A buffered reader over `read(n)`; `hook` sees every byte once, as it is pulled in."""

    __slots__ = ("_read", "_buf", "_pos", "_chunk", "_hook", "offset")

    def __init__(
        self, read: Callable[[int], bytes], hook: Callable[[bytes], None] | None = None, chunk: int = CHUNK, head: bytes = b""
    ) -> None:
        self._read = read
        self._buf = head  # bytes a sniffing caller already pulled from `read`: handed out first
        self._pos = 0
        self._chunk = chunk
        self._hook = hook
        self.offset = 0  # bytes handed out (read or skipped) so far
        if head and hook is not None:
            hook(head)

    def _fill(self) -> bool:
        data = self._read(self._chunk)
        if not data:
            return False
        if self._hook is not None:
            self._hook(data)
        if self._pos < len(self._buf):
            self._buf = self._buf[self._pos :] + data
        else:
            self._buf = data
        self._pos = 0
        return True

    def read_exact(self, n: int) -> bytes:
        pos = self._pos
        if len(self._buf) - pos >= n:
            self._pos = pos + n
            self.offset += n
            return self._buf[pos : pos + n]
        parts = []
        need = n
        while need:
            avail = len(self._buf) - self._pos
            if not avail:
                if not self._fill():
                    raise SourceEnded(need)
                continue
            take = min(avail, need)
            parts.append(self._buf[self._pos : self._pos + take])
            self._pos += take
            need -= take
        self.offset += n
        return b"".join(parts)

    def read_some(self, n: int) -> bytes:
        """Up to n bytes (at least one unless at the end)."""
        if self._pos >= len(self._buf) and not self._fill():
            return b""
        pos = self._pos
        data = self._buf[pos : pos + n]
        self._pos = pos + len(data)
        self.offset += len(data)
        return data

    def skip(self, n: int) -> None:
        while n:
            avail = len(self._buf) - self._pos
            if not avail:
                if not self._fill():
                    raise SourceEnded(n)
                continue
            take = min(avail, n)
            self._pos += take
            self.offset += take
            n -= take

    def feed(self, n: int, sink: Callable[[memoryview], None]) -> None:
        """Consume n bytes, handing them to `sink` as they stand in the buffer (a member's content, hashed unseen)."""
        while n:
            avail = len(self._buf) - self._pos
            if not avail:
                if not self._fill():
                    raise SourceEnded(n)
                continue
            take = min(avail, n)
            sink(memoryview(self._buf)[self._pos : self._pos + take])
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
                rest = self._buf[self._pos :] if self._pos else self._buf
                if rest.count(0) != len(rest):
                    found = self.offset + next(i for i, b in enumerate(rest) if b)
            self.offset += avail
            self._pos = len(self._buf)


class MemberReader:
    """`read(n)` over exactly `size` bytes of an enclosing source."""

    __slots__ = ("_src", "_left", "_subject")

    def __init__(self, src: ByteSource, size: int, subject: str) -> None:
        self._src = src
        self._left = size
        self._subject = subject

    def read(self, n: int) -> bytes:
        if self._left <= 0:
            return b""
        data = self._src.read_some(min(n, self._left))
        if not data:
            raise OuterStreamEnded(self._left)
        self._left -= len(data)
        return data
