"""Which Debian package each copied file comes from, read from dpkg's database in the source image's file system.

dpkg lists a package's files by the path its .deb shipped them under, while
the resolver names files by their physical location.  On a merged-/usr root
(`/lib -> usr/lib`) libc6 lists `/lib/x86_64-linux-gnu/libc.so.6` and the
resolver copies `/usr/lib/x86_64-linux-gnu/libc.so.6`; other packages list
`/usr/lib/...` themselves.  Both sides are compared after resolving the folder
a path is in (never the last component: a listed symlink is owned as a link),
so either spelling finds its owner.  A path that dpkg knows only as a folder
(`/lib64`, the merged-/usr links) belongs to no package.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harness.debian.dpkg import DPKG_INFO, DPKG_STATUS, paragraphs
from harness.debian.dpkg import fields as dpkg_fields
from harness.elf import RootFS

log = logging.getLogger(__name__)

STATUS = PurePosixPath(DPKG_STATUS)
INFO = PurePosixPath(DPKG_INFO)


@dataclass(frozen=True)
class DebPackage:
    """An installed package as dpkg records it; `paragraph` is its status paragraph, verbatim."""

    name: str
    version: str
    architecture: str
    source: str  # the source package's name, without a version ("" when it is the package's own)
    paragraph: str
    info_stem: str  # "libc6:amd64" or "gcc-12-base": its files' names under /var/lib/dpkg/info

    @property
    def source_name(self) -> str:
        return self.source.split(" (")[0] if self.source else self.name


@dataclass(frozen=True)
class Provenance:
    """Each copied path with the package that owns it (None: no package, the user's own or a generated file)."""

    owners: tuple[tuple[PurePosixPath, str | None], ...]  # in copy order
    packages: tuple[DebPackage, ...]  # the packages that own at least one copied path, by name

    def owner(self, path: PurePosixPath) -> str | None:
        return dict(self.owners).get(path)

    def files_of(self, package: str) -> tuple[PurePosixPath, ...]:
        return tuple(path for path, owner in self.owners if owner == package)

    def package(self, name: str) -> DebPackage:
        return next(package for package in self.packages if package.name == name)

    @property
    def unowned(self) -> tuple[PurePosixPath, ...]:
        return tuple(path for path, owner in self.owners if owner is None)


class DpkgDatabase:
    """The installed packages and the files each lists, as seen inside `root` (empty when the root has no dpkg)."""

    def __init__(self, root: Path) -> None:
        self.fs = RootFS(root)
        self.packages: dict[str, DebPackage] = {}
        self._owner: dict[str, str] = {}
        self._folders: set[str] = set()
        self._real_folders: dict[str, str] = {}
        status = self.fs.host_path(STATUS)
        if not status.is_file():
            log.info("%s: no dpkg database in the source image", STATUS)
            return
        for paragraph in paragraphs(status.read_text(encoding="utf-8", errors="replace")):
            package = self._package(paragraph)
            if package is not None:
                self.packages.setdefault(package.name, package)
        raw_folders: set[str] = set()
        for package in self.packages.values():
            for listed in self._listed(package):
                self._owner.setdefault(self.canonical(listed), package.name)
                raw_folders.add(posixpath.dirname(listed))
        self._folders = {self.canonical(folder) for folder in raw_folders}

    def _package(self, paragraph: str) -> DebPackage | None:
        fields = dpkg_fields(paragraph)
        name = fields.get("package", "")
        if not name or fields.get("status", "").split()[-1:] != ["installed"]:
            return None
        arch = fields.get("architecture", "")
        qualified = f"{name}:{arch}"
        stem = qualified if self.fs.host_path(INFO / f"{qualified}.list").is_file() else name
        return DebPackage(name, fields.get("version", ""), arch, fields.get("source", ""), paragraph, stem)

    def _listed(self, package: DebPackage) -> list[str]:
        listing = self.fs.host_path(INFO / f"{package.info_stem}.list")
        if not listing.is_file():
            log.warning("%s: %s: no file list", package.name, INFO / f"{package.info_stem}.list")
            return []
        lines = listing.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
        return [line.rstrip("/") for line in lines if line.startswith("/") and line != "/."]

    def canonical(self, path: str) -> str:
        """`path` with the folder it is in resolved inside the root (the last component kept as it is)."""
        folder, name = posixpath.split(path)
        if not name:
            return path
        try:
            real = self._real_folders[folder]
        except KeyError:
            found = self.fs.resolve(folder)
            real = self._real_folders[folder] = str(found.real) if found is not None else folder
        return posixpath.join(real, name)

    def owner(self, path: PurePosixPath) -> str | None:
        key = self.canonical(str(path))
        if key in self._folders:
            return None  # a folder many packages share, or a merged-/usr link standing for one
        return self._owner.get(key)

    def provenance(self, paths: Iterable[PurePosixPath]) -> Provenance:
        owners = tuple((path, self.owner(path)) for path in paths)
        names = sorted({owner for _, owner in owners if owner is not None})
        return Provenance(owners, tuple(self.packages[name] for name in names))
