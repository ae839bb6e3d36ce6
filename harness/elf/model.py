"""The resolver's results: frozen, paths as PurePosixPath inside the root, tuples not lists."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class Dependency:
    """A DT_NEEDED entry as the loader satisfied it.

    `path` is the path the loader opened (search directory + soname, or the
    cache's path), `real` the file behind it, `via` the first object that needed it.
    """

    soname: str
    path: PurePosixPath
    via: PurePosixPath
    real: PurePosixPath


@dataclass(frozen=True)
class DlopenDependency:
    """An optional library announced by a `.note.dlopen` note of `via`; `path` None when not in the root."""

    sonames: tuple[str, ...]
    feature: str | None
    priority: str | None
    description: str | None
    via: PurePosixPath
    soname: str | None = None
    path: PurePosixPath | None = None
    real: PurePosixPath | None = None


@dataclass(frozen=True)
class Closure:
    """Everything one ELF file needs at load time, inside one root.

    `files` lists every path to copy, symlinks (by their physical location) before
    their targets, in load order, each once.  `missing` pairs each soname nothing
    provided with the object that needed it (empty unless resolved with strict=False).
    """

    path: PurePosixPath
    real: PurePosixPath
    interpreter: PurePosixPath | None
    interpreter_real: PurePosixPath | None
    is_static: bool
    needed: tuple[Dependency, ...]
    dlopen: tuple[DlopenDependency, ...]
    files: tuple[PurePosixPath, ...]
    missing: tuple[tuple[str, PurePosixPath], ...] = ()

    def real_paths(self) -> frozenset[PurePosixPath]:
        """Physical paths of the interpreter and of every needed library (not of `path` itself)."""
        reals = {dep.real for dep in self.needed}
        if self.interpreter_real is not None:
            reals.add(self.interpreter_real)
        return frozenset(reals)
