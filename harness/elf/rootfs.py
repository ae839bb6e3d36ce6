"""Path resolution confined to a root directory, the way a chroot would see it.

Absolute symlinks are resolved against the root, `..` never climbs above the
root, more than 40 links in one resolution is a loop (Linux's limit).  Every
symlink traversed is recorded by its physical location (its parent directories
already resolved), so that copying the links plus the final target, links kept
as links, reproduces every path the loader used.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harness.elf.errors import RootEscape, SymlinkLoop

log = logging.getLogger(__name__)

MAX_SYMLINKS = 40

_MISSING = 0
_DIR = 1
_FILE = 2
_LINK = 3
_OTHER = 4


@dataclass(frozen=True)
class Resolved:
    """A path inside the root: as asked (`path`), physically (`real`), and the links passed on the way."""

    path: PurePosixPath
    real: PurePosixPath
    links: tuple[PurePosixPath, ...]
    is_file: bool

    @property
    def files(self) -> tuple[PurePosixPath, ...]:
        """What to copy to reproduce `path`: each link traversed, then the target."""
        return (*self.links, self.real)


class RootFS:
    """Look up paths inside `root`; every lstat, readlink and directory listing is cached."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))
        self._root_str = str(self.root).rstrip("/")
        self._entries: dict[str, tuple[int, str]] = {}
        self._listings: dict[str, frozenset[str] | None] = {}
        self._resolved: dict[str, Resolved | None] = {}

    def host_path(self, path: PurePosixPath | str) -> Path:
        """The host path of a physical path inside the root."""
        return Path(self._root_str + "/" + str(path).lstrip("/"))

    def resolve(self, path: PurePosixPath | str) -> Resolved | None:
        """Resolve `path` (absolute, as seen inside the root); None when it does not exist."""
        key = str(path)
        try:
            return self._resolved[key]
        except KeyError:
            pass
        if not key.startswith("/"):
            raise RootEscape(key, f"only absolute paths can be located inside the root {self.root}")
        if "\0" in key:
            raise RootEscape(key, "path contains a NUL byte")
        result = self._walk(key)
        self._resolved[key] = result
        return result

    def _walk(self, path: str) -> Resolved | None:
        pending = [part for part in reversed(path.split("/")) if part]
        current: list[str] = []
        links: list[PurePosixPath] = []
        kind = _DIR
        while pending:
            part = pending.pop()
            if part == ".":
                continue
            if part == "..":
                if current:
                    current.pop()
                continue
            parent = "/" + "/".join(current) if current else "/"
            kind, target = self._entry(parent, part)
            if kind == _MISSING:
                return None
            if kind == _LINK:
                link = PurePosixPath(parent) / part
                links.append(link)
                if len(links) > MAX_SYMLINKS:
                    raise SymlinkLoop(path, tuple(links), MAX_SYMLINKS)
                if target.startswith("/"):
                    current = []
                pending.extend(p for p in reversed(target.split("/")) if p)
                kind = _DIR
                continue
            current.append(part)
            if kind != _DIR and pending:
                return None  # a file used as a directory: ENOTDIR
        real = PurePosixPath("/" + "/".join(current))
        return Resolved(PurePosixPath(path), real, tuple(links), kind == _FILE)

    def _listing(self, directory: str) -> frozenset[str] | None:
        try:
            return self._listings[directory]
        except KeyError:
            pass
        try:
            names: frozenset[str] | None = frozenset(os.listdir(self._root_str + directory))
        except OSError:
            names = None
        self._listings[directory] = names
        return names

    def _entry(self, parent: str, name: str) -> tuple[int, str]:
        """(kind, link target) of `name` in the physical directory `parent`."""
        full = parent.rstrip("/") + "/" + name
        try:
            return self._entries[full]
        except KeyError:
            pass
        names = self._listing(parent)
        if names is not None and name not in names:
            entry = (_MISSING, "")
        else:
            entry = self._lstat(full)
        self._entries[full] = entry
        return entry

    def _lstat(self, full: str) -> tuple[int, str]:
        host = self._root_str + full
        try:
            mode = os.lstat(host).st_mode
        except OSError:
            return (_MISSING, "")
        if stat.S_ISLNK(mode):
            try:
                return (_LINK, os.readlink(host))
            except OSError:
                return (_MISSING, "")
        if stat.S_ISDIR(mode):
            return (_DIR, "")
        if stat.S_ISREG(mode):
            return (_FILE, "")
        return (_OTHER, "")

    def is_dir(self, path: PurePosixPath | str) -> bool:
        resolved = self.resolve(path)
        return resolved is not None and self._entry_kind(resolved.real) == _DIR

    def _entry_kind(self, real: PurePosixPath) -> int:
        if str(real) == "/":
            return _DIR
        return self._entry(str(real.parent), real.name)[0]

    def listdir(self, path: PurePosixPath | str) -> tuple[str, ...]:
        """Sorted names in a directory inside the root (empty when it does not exist)."""
        resolved = self.resolve(path)
        if resolved is None:
            return ()
        return tuple(sorted(self._listing(str(resolved.real)) or ()))
