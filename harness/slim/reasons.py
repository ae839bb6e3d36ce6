"""Why each file of a slim image is there, and a report of it: files and bytes by reason, noise, paths never used."""

from __future__ import annotations

import enum
import os
import stat
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from harness.elf import RootFS


class Reason(enum.Enum):
    """What put a file into a slim image; a file two reasons name keeps the first, in this order."""

    ELF = "elf"  # the resolver: the program's ELF closure
    EXTRA = "extra"  # named by the user (--extra, extras_from), with its own closure
    BUNDLE = "bundle"  # --with certs, tzdata, passwd, tmp, nss
    TRACE = "trace"  # reached by a traced run, with the command that reached it
    METADATA = "metadata"  # dpkg status.d, md5sums and copyright files of the packages


@dataclass(frozen=True)
class FileReason:
    path: PurePosixPath
    reason: Reason
    detail: str = ""  # the extra's source, the bundle, or "opened by `file /usr/bin/file`"


def describe(reasons: tuple[FileReason, ...]) -> dict[PurePosixPath, str]:
    """Each path's reason as one line: `trace: opened by `file /usr/bin/file``, `elf: /usr/bin/file`."""
    return {item.path: f"{item.reason.value}: {item.detail}" if item.detail else item.reason.value for item in reasons}


class Reasons:
    """Collects the first reason of each path, in the order plan_slim adds them (internal to one plan)."""

    def __init__(self) -> None:
        self._by_path: dict[PurePosixPath, FileReason] = {}

    def add(self, paths: Iterable[PurePosixPath], reason: Reason, detail: str = "") -> None:
        for path in paths:
            self._by_path.setdefault(path, FileReason(path, reason, detail))

    def result(self) -> tuple[FileReason, ...]:
        return tuple(self._by_path.values())


def bytes_of(fs: RootFS, path: PurePosixPath) -> int:
    """A regular file's size in the source root; links and folders count 0."""
    info = os.lstat(fs.host_path(path))
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


@dataclass(frozen=True)
class ReasonTotal:
    reason: Reason
    files: int
    bytes: int


def totals(reasons: tuple[FileReason, ...], sizes: dict[PurePosixPath, int]) -> tuple[ReasonTotal, ...]:
    """Files and bytes by reason, in the order of Reason."""
    files: Counter[Reason] = Counter(item.reason for item in reasons)
    size: Counter[Reason] = Counter()
    for item in reasons:
        size[item.reason] += sizes.get(item.path, 0)
    return tuple(ReasonTotal(reason, files[reason], size[reason]) for reason in Reason if files[reason])


def render_reasons(reasons: tuple[FileReason, ...], sizes: dict[PurePosixPath, int]) -> list[str]:
    """Files and bytes by reason (pure)."""
    lines = ["files by reason:"]
    for total in totals(reasons, sizes):
        lines.append(f"  {total.reason.value:<9} {total.files:>5} files {total.bytes:>12,} bytes")
    return lines
