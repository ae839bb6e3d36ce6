"""Unpack an image's file system into a private folder, refusing anything that could reach outside it.

The tar comes from the Engine (`docker export`), but its contents come from
whoever made the image: member names, link targets and sizes are all
untrusted.  tarfile's `data` filter (PEP 706) refuses absolute symlinks,
which every Debian root has (`/etc/alternatives`, the loader's own link), so
this module applies its own rules instead:

- names are made relative; a name that climbs out with `..` is refused;
- nothing is ever written through a symlink: each parent folder must be a
  real folder inside the destination;
- symlinks are stored as they are, whatever they point at (they are read
  later against the unpacked root, never followed by the host);
- hard links must point at a member already unpacked;
- device nodes and FIFOs are skipped; permissions lose setuid, setgid and
  sticky bits and gain owner read/write;
- a member larger than `max_member_bytes`, or a total past `max_total_bytes`
  (a huge sparse file costs its full size here), stops the unpacking.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.records.errors import HarnessError

COPY_CHUNK = 1024 * 1024


class UnsafeArchive(HarnessError):
    """An archive whose contents break the unpacking limits, or cannot be read."""


@dataclass(frozen=True)
class UnpackLimits:
    max_member_bytes: int = 4 * 1024**3
    max_total_bytes: int = 16 * 1024**3
    max_members: int = 2_000_000


@dataclass(frozen=True)
class UnpackReport:
    files: int
    links: int
    total_bytes: int
    skipped: tuple[tuple[str, str], ...]  # (member name, why)


class ChunkStream(io.RawIOBase):
    """A read-only file object over an iterator of byte chunks (the Engine's export stream)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        # A view, so that taking a small read off a large chunk copies nothing else.
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def safe_name(name: str) -> str | None:
    """The member's path relative to the root, or None if it would climb out of it."""
    relative = posixpath.normpath(name.lstrip("/"))
    if relative in ("", ".") or relative == ".." or relative.startswith("../"):
        return None
    return relative


def unpack(stream: IO[bytes], dest: Path, limits: UnpackLimits = UnpackLimits()) -> UnpackReport:
    """Unpack the tar read from `stream` (sequentially) into the existing folder `dest`."""
    dest = dest.resolve()
    files = links = total = members = 0
    skipped: list[tuple[str, str]] = []
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            for member in archive:
                members += 1
                if members > limits.max_members:
                    raise UnsafeArchive(f"archive: more than {limits.max_members:,} members: refused")
                name = safe_name(member.name)
                if name is None:
                    skipped.append((member.name, "climbs out of the root"))
                    continue
                target = dest / name
                if not _ensure_real_parents(dest, target):
                    skipped.append((member.name, "its folder is a symlink or not a folder"))
                    continue
                if member.isdir():
                    _replace_with_folder(target, member.mode)
                elif member.isreg():
                    if member.size > limits.max_member_bytes:
                        raise UnsafeArchive(
                            f"{member.name}: {member.size:,} bytes: over the {limits.max_member_bytes:,}-byte limit"
                        )
                    total += member.size
                    if total > limits.max_total_bytes:
                        raise UnsafeArchive(f"archive: over {limits.max_total_bytes:,} bytes in all: refused")
                    source = archive.extractfile(member)
                    assert source is not None
                    _write_file(target, source, member.mode)
                    files += 1
                elif member.issym():
                    _remove(target)
                    os.symlink(member.linkname, target)
                    links += 1
                elif member.islnk():
                    linked = safe_name(member.linkname)
                    source_path = dest / linked if linked else None
                    if source_path is None or not source_path.is_file() or source_path.is_symlink():
                        skipped.append((member.name, f"hard link to {member.linkname!r}, not an unpacked file"))
                        continue
                    _remove(target)
                    os.link(source_path, target)
                    files += 1
                else:
                    skipped.append((member.name, "device node or FIFO"))
    except (tarfile.TarError, EOFError) as error:
        raise UnsafeArchive(f"archive: not a readable tar: {error}") from error
    return UnpackReport(files=files, links=links, total_bytes=total, skipped=tuple(skipped))


def _ensure_real_parents(dest: Path, target: Path) -> bool:
    """Create the member's missing parent folders; False if any existing one is not a real folder."""
    current = dest
    for part in target.relative_to(dest).parts[:-1]:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            current.mkdir(mode=0o755)
            continue
        if not stat.S_ISDIR(mode):
            return False
    return True


def _clean_mode(mode: int, owner_bits: int) -> int:
    return (mode & 0o777) | owner_bits


def _replace_with_folder(target: Path, mode: int) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        target.unlink()
    target.mkdir(exist_ok=True)
    target.chmod(_clean_mode(mode, 0o700))


def _write_file(target: Path, source: IO[bytes], mode: int) -> None:
    _remove(target)
    with open(target, "xb") as handle:
        shutil.copyfileobj(source, handle, COPY_CHUNK)
    target.chmod(_clean_mode(mode, 0o600))


def _remove(target: Path) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
