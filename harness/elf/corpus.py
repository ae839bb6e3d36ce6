"""Corpora for checking the resolver: the dynamic ELF files of a tree, and what ldd said about them.

    paths = dynamic_elf_files(Path("/"), limit=300)
    output = subprocess.run(["ldd", *map(str, paths)], capture_output=True, text=True).stdout
    reference = parse_ldd_output(output, map(str, paths), os.path.realpath)

`parse_ldd_output` reads both `ldd file1 file2 ...` (each block headed by
`file:`) and the output of a shell loop `for f in ...; do echo "== $f"; ldd "$f"; done`
(each block headed by `== file`), e.g. run inside a container.  The paths
ldd prints are turned into real paths by the injected `realpath`; for an
image, one that resolves them against the exported root on the host.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harness.elf.errors import ElfError
from harness.elf.reader import read_elf

__all__ = ["LddResult", "dynamic_elf_files", "parse_ldd_output"]

_REFUSED = "not a dynamic executable"
_LOOP_HEAD = "== "


@dataclass(frozen=True)
class LddResult:
    """What ldd reported for one file.

    `found`: real paths (after the caller's `realpath`) of the interpreter and of
    every library ldd listed; `missing`: the sonames it reported "not found".
    """

    found: frozenset[str]
    missing: frozenset[str]


def dynamic_elf_files(root: Path, under: str = "/usr", limit: int | None = None) -> tuple[PurePosixPath, ...]:
    """In-root paths of the dynamically linked ELF files under ROOT/`under`, sorted.

    A file counts when it is a regular file (symlinks are not followed, nor are
    symlinked directories descended into) that read_elf parses and that has a
    PT_INTERP or a DT_NEEDED.  Unreadable and malformed files are skipped.  The
    tree is walked in sorted order, so with `limit` the result is the first
    `limit` such files of the full sorted list.
    """
    found: list[PurePosixPath] = []
    if limit is not None and limit <= 0:
        return ()
    top = PurePosixPath("/") / under.lstrip("/")
    for host, inside in _regular_files(Path(root) / str(top).lstrip("/"), top):
        try:
            info = read_elf(Path(host), inside)
        except (OSError, ElfError):
            continue
        if info.interpreter or info.needed:
            found.append(inside)
            if limit is not None and len(found) >= limit:
                break
    return tuple(found)


def _sorted_entries(host_dir: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(host_dir) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except OSError:
        return []


def _regular_files(host_top: Path, inside_top: PurePosixPath) -> Iterator[tuple[str, PurePosixPath]]:
    """(host path, in-root path) of the regular files below host_top, in PurePosixPath order."""
    stack: list[tuple[Iterator[os.DirEntry[str]], PurePosixPath]] = [(iter(_sorted_entries(str(host_top))), inside_top)]
    while stack:
        entries, inside = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                stack.append((iter(_sorted_entries(entry.path)), inside / entry.name))
            elif entry.is_file(follow_symlinks=False):
                yield entry.path, inside / entry.name
        except OSError:
            continue


def parse_ldd_output(text: str, paths: Iterable[str], realpath: Callable[[str], str]) -> dict[str, LddResult]:
    """ldd's verdict on each of `paths`, read from its output `text`.

    Blocks are headed by `path:` (the multi-file form of ldd) or `== path`
    (a shell loop echoing a header before each single-file ldd); a header only
    counts for a path of `paths`.  Files ldd refused ("not a dynamic
    executable", or nothing at all printed) are absent from the result; the
    `linux-vdso` and `statically linked` lines are ignored.
    """
    wanted = set(paths)
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        name = _header(line)
        if name is not None and name in wanted:
            current = blocks.setdefault(name, [])
            continue
        if current is not None:
            current.append(line)
    results: dict[str, LddResult] = {}
    for path, lines in blocks.items():
        if not lines or any(_REFUSED in line for line in lines):
            continue
        found: set[str] = set()
        missing: set[str] = set()
        for raw in lines:
            line = raw.strip()
            if not line or line == "statically linked" or line.startswith("linux-vdso"):
                continue
            if "=> not found" in line:
                missing.add(line.split(" => ")[0])
            elif " => " in line:
                target = line.split(" => ", 1)[1].rsplit(" (", 1)[0]
                if target.startswith("/"):
                    found.add(realpath(target))
            elif line.startswith("/"):
                found.add(realpath(line.rsplit(" (", 1)[0]))
        results[path] = LddResult(frozenset(found), frozenset(missing))
    return results


def _header(line: str) -> str | None:
    """The path a block header line names, or None when the line is no header."""
    if line.startswith(_LOOP_HEAD):
        return line[len(_LOOP_HEAD) :]
    if line and not line.startswith("\t") and line.endswith(":"):
        return line[:-1]
    return None
