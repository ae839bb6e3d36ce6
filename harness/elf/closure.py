"""The dependency closure of ELF files, in the order and with the search rules of glibc's ld.so.

Objects are loaded breadth first (as _dl_map_object_deps does); a DT_NEEDED
name already loaded (by the name it was asked for, its DT_SONAME or its path,
or the same file reached by another path) is reused.  A name without "/" is
looked up in: DT_RPATH of the requesting object and of its loaders up to the
executable (only when the requesting object has no DT_RUNPATH; an object's
DT_RPATH is void when it has a DT_RUNPATH), LD_LIBRARY_PATH, the requesting
object's own DT_RUNPATH, /etc/ld.so.cache, then the default directories;
DF_1_NODEFLIB skips the last two.  /etc/ld.so.conf is ldconfig's, never read
by ld.so: without a cache its directories are not searched (a missing
library found there is named in the error, with what to do).  Candidates of another class or machine are passed over;
a malformed candidate is an error, as it is fatal for ld.so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from harness.elf import ldcache
from harness.elf.errors import ElfError, FileMissing, MissingLibraries
from harness.elf.model import Closure, Dependency, DlopenDependency
from harness.elf.reader import DlopenNote, ElfInfo, read_dlopen_sections, read_elf
from harness.elf.rootfs import Resolved, RootFS
from harness.elf.search import Layout, detect_layout, expand, split_dirs

log = logging.getLogger(__name__)

# One library search, remembered: the ABI, the directories in their order, DF_1_NODEFLIB, and the name.
_SearchKey = tuple[tuple[int, bool, int], tuple[str, ...], bool, str]


@dataclass(eq=False)
class _Loaded:
    """One object mapped in the emulated process (internal, one per closure)."""

    path: str  # the name the loader opened it by
    resolved: Resolved
    info: ElfInfo
    loader: _Loaded | None
    origin: str | None


class _Run:
    """The state of one closure: the emulated link map."""

    def __init__(self) -> None:
        self.objects: list[_Loaded] = []
        self.by_name: dict[str, _Loaded] = {}
        self.by_real: dict[PurePosixPath, _Loaded] = {}
        self.needed: list[Dependency] = []
        self.listed: set[int] = set()
        self.files: dict[PurePosixPath, None] = {}
        self.missing: list[tuple[str, PurePosixPath]] = []

    def add_files(self, resolved: Resolved) -> None:
        for path in resolved.files:
            self.files.setdefault(path, None)

    def register(self, obj: _Loaded, *names: str | None) -> None:
        for name in (*names, obj.path, obj.info.soname):
            if name:
                self.by_name.setdefault(name, obj)
        self.by_real.setdefault(obj.resolved.real, obj)


class Resolver:
    """Resolves ELF closures inside `root`; every file is parsed at most once per Resolver."""

    def __init__(
        self, root: Path, ld_library_path: Sequence[str] = (), *, default_dirs: Sequence[str] | None = None, ld_cache: bool = True
    ) -> None:
        """`ld_cache=False`: search as ld.so does where /etc/ld.so.cache and /etc/ld.so.conf are absent (a slim image)."""
        self.root = Path(root)
        self.fs = RootFS(self.root)
        self.ld_library_path = ":".join(ld_library_path)
        self._default_dirs = tuple(default_dirs) if default_dirs is not None else None
        self._elves: dict[PurePosixPath, ElfInfo | ElfError] = {}
        self._section_notes: dict[PurePosixPath, tuple[DlopenNote, ...]] = {}
        self._layouts: dict[tuple[int, bool, int], Layout] = {}
        self._tables: dict[tuple[int, bool, int], dict[str, str] | None] = {}
        self._cache_entries: tuple[ldcache.CacheEntry, ...] | None | Literal[False] = False if ld_cache else None
        self._conf_dirs: tuple[str, ...] | None = None if ld_cache else ()
        self._dirs: dict[tuple[str, str | None, tuple[int, bool, int], str], tuple[str, ...]] = {}
        self._found: dict[_SearchKey, tuple[str, Resolved] | None] = {}

    def host_path(self, path: PurePosixPath | str) -> Path:
        """Where a path inside the root is on this machine."""
        return self.fs.host_path(path)

    def resolve_many(
        self, paths: Iterable[PurePosixPath | str], *, with_dlopen: bool = False, strict: bool = True
    ) -> tuple[Closure, ...]:
        return tuple(self.resolve(path, with_dlopen=with_dlopen, strict=strict) for path in paths)

    def resolve(self, path: PurePosixPath | str, *, with_dlopen: bool = False, strict: bool = True) -> Closure:
        """The closure of the ELF file at `path` (absolute, inside the root).

        Raises MissingLibraries listing every unresolved soname unless strict=False,
        in which case they are in Closure.missing.
        """
        path = PurePosixPath(path)
        resolved = self.fs.resolve(path)
        if resolved is None or not resolved.is_file:
            raise FileMissing(path, self.root)
        info = self.elf(resolved.real)
        run = _Run()
        run.add_files(resolved)
        main = _Loaded(str(path), resolved, info, None, str(resolved.real.parent))
        run.objects.append(main)
        run.register(main)
        interpreter = interpreter_real = None
        if info.interpreter:
            interp = self.fs.resolve(info.interpreter)
            if interp is None or not interp.is_file:
                run.missing.append((info.interpreter, path))
            else:
                interpreter, interpreter_real = PurePosixPath(info.interpreter), interp.real
                run.add_files(interp)
                rtld = _Loaded(info.interpreter, interp, self.elf(interp.real), None, os.path.dirname(info.interpreter))
                run.register(rtld)
        self._drain(run, main, 0, optional=False)
        dlopen = self._dlopen(run, main) if with_dlopen else ()
        if run.missing and strict:
            raise MissingLibraries(path, tuple(run.missing), self._uncached(name for name, _ in run.missing))
        return Closure(
            path=path,
            real=resolved.real,
            interpreter=interpreter,
            interpreter_real=interpreter_real,
            is_static=info.interpreter is None and not info.needed,
            needed=tuple(run.needed),
            dlopen=dlopen,
            files=tuple(run.files),
            missing=tuple(run.missing),
        )

    # --- loading -----------------------------------------------------------------------------

    def _drain(self, run: _Run, main: _Loaded, start: int, *, optional: bool) -> None:
        """Load the DT_NEEDED of run.objects[start:], breadth first, appending what gets loaded."""
        index = start
        while index < len(run.objects):
            obj = run.objects[index]
            index += 1
            for name in obj.info.needed:
                target = self._load(run, main, obj, name)
                if target is None:
                    if optional:
                        log.info("%s: optional dependency %s of %s not found", main.path, name, obj.path)
                    else:
                        run.missing.append((name, PurePosixPath(obj.path)))
                elif target is not main and id(target) not in run.listed:
                    run.listed.add(id(target))
                    run.needed.append(Dependency(name, PurePosixPath(target.path), PurePosixPath(obj.path), target.resolved.real))

    def _load(self, run: _Run, main: _Loaded, obj: _Loaded, name: str) -> _Loaded | None:
        if "$" in name:  # ld.so expands tokens before matching loaded names (expand_dst in dl-deps.c)
            candidates = [
                expanded if "/" not in expanded or expanded.startswith("/") else "/" + expanded
                for expanded in expand(name, obj.origin, self._layout(main.info.abi))
            ]
            # Of the names $PLATFORM may take, the one a file exists for (the kernel's when none does).
            if not candidates:
                return None
            existing = [candidate for candidate in candidates if "/" not in candidate or self.fs.resolve(candidate)]
            name = (existing or candidates)[0]
        known = run.by_name.get(name)
        if known is not None:
            return known
        found = self._locate(main, obj, name)
        if found is None:
            return None
        opened, resolved = found
        known = run.by_real.get(resolved.real)
        if known is not None:
            run.by_name.setdefault(name, known)
            return known
        loaded = _Loaded(opened, resolved, self.elf(resolved.real), obj, os.path.dirname(opened) or "/")
        run.objects.append(loaded)
        run.register(loaded, name)
        run.add_files(resolved)
        return loaded

    def _dlopen(self, run: _Run, main: _Loaded) -> tuple[DlopenDependency, ...]:
        results: list[DlopenDependency] = []
        index = 0
        while index < len(run.objects):
            obj = run.objects[index]
            index += 1
            for note in self._notes(obj.info):
                chosen = None
                for soname in note.sonames:
                    before = len(run.objects)
                    chosen = self._load(run, main, obj, soname)
                    if chosen is not None:
                        self._drain(run, main, before, optional=True)
                        break
                results.append(
                    DlopenDependency(
                        sonames=note.sonames,
                        feature=note.feature,
                        priority=note.priority,
                        description=note.description,
                        via=PurePosixPath(obj.path),
                        soname=soname if chosen else None,
                        path=PurePosixPath(chosen.path) if chosen else None,
                        real=chosen.resolved.real if chosen else None,
                    )
                )
        return tuple(results)

    def _notes(self, info: ElfInfo) -> tuple[DlopenNote, ...]:
        if info.dlopen or not info.has_sections:
            return info.dlopen
        if info.path not in self._section_notes:
            self._section_notes[info.path] = read_dlopen_sections(self.fs.host_path(info.path), info.path)
        return self._section_notes[info.path]

    # --- searching ---------------------------------------------------------------------------

    def elf(self, real: PurePosixPath) -> ElfInfo:
        """The parsed ELF file at a physical path inside the root (parsed once, errors remembered)."""
        cached = self._elves.get(real)
        if cached is None:
            try:
                cached = read_elf(self.fs.host_path(real), real)
            except ElfError as error:
                cached = error
            self._elves[real] = cached
        if isinstance(cached, ElfError):
            raise cached
        return cached

    def _locate(self, main: _Loaded, obj: _Loaded, name: str) -> tuple[str, Resolved] | None:
        abi = main.info.abi
        layout = self._layout(abi)
        if "/" in name:
            return self._try(name if name.startswith("/") else "/" + name, abi)
        dirs: list[str] = []
        if obj.info.runpath is None:
            chain: _Loaded | None = obj
            seen_main = False
            while chain is not None:
                dirs.extend(self._path_dirs(chain, "rpath", layout))
                seen_main |= chain is main
                chain = chain.loader
            if not seen_main:
                dirs.extend(self._path_dirs(main, "rpath", layout))
        if self.ld_library_path:
            dirs.extend(self._expand(self.ld_library_path, main.origin, abi, ":;"))
        dirs.extend(self._path_dirs(obj, "runpath", layout))
        key = (abi, tuple(dirs), obj.info.nodeflib, name)
        if key not in self._found:
            self._found[key] = self._search(key[1], name, abi, layout, obj.info.nodeflib)
        return self._found[key]

    def _search(
        self, dirs: tuple[str, ...], name: str, abi: tuple[int, bool, int], layout: Layout, nodeflib: bool
    ) -> tuple[str, Resolved] | None:
        for directory in dirs:
            found = self._try(f"{directory.rstrip('/')}/{name}", abi)
            if found:
                return found
        table = self._table(abi)
        if table is not None:
            cached = table.get(name)
            if cached and not (nodeflib and os.path.dirname(cached) in layout.default_dirs):
                found = self._try(cached, abi)
                if found:
                    return found
        if not nodeflib:
            for directory in layout.default_dirs:
                found = self._try(f"{directory.rstrip('/')}/{name}", abi)
                if found:
                    return found
        return None

    def _try(self, candidate: str, abi: tuple[int, bool, int]) -> tuple[str, Resolved] | None:
        resolved = self.fs.resolve(candidate)
        if resolved is None or not resolved.is_file:
            return None
        info = self.elf(resolved.real)
        if info.abi != abi:
            log.debug("%s: skipped, ABI %s is not %s", candidate, info.abi, abi)
            return None
        return (candidate, resolved)

    def _path_dirs(self, obj: _Loaded, kind: str, layout: Layout) -> tuple[str, ...]:
        info = obj.info
        text = info.runpath if kind == "runpath" else (info.rpath if info.runpath is None else None)
        if not text:
            return ()
        return self._expand(text, obj.origin, info.abi, ":")

    def _expand(self, text: str, origin: str | None, abi: tuple[int, bool, int], separators: str) -> tuple[str, ...]:
        key = (text, origin, abi, separators)
        dirs = self._dirs.get(key)
        if dirs is None:
            dirs = self._dirs[key] = self._prune(split_dirs(text, origin, self._layout(abi), separators))
        return dirs

    def _prune(self, dirs: tuple[str, ...]) -> tuple[str, ...]:
        """`dirs` without those that cannot provide a library: missing, or a directory already listed.

        Searching them finds nothing the kept ones do not, but a hostile DT_RUNPATH of thousands of
        entries would cost a lookup per entry and DT_NEEDED name (quadratic in the file size).
        """
        kept: list[str] = []
        seen: set[PurePosixPath] = set()
        for directory in dirs:
            try:
                resolved = self.fs.resolve(directory)
            except ElfError:  # a link loop: let the search report it where ld.so would meet it
                kept.append(directory)
                continue
            if resolved is None or not self.fs.is_dir(directory) or resolved.real in seen:
                continue
            seen.add(resolved.real)
            kept.append(directory)
        return tuple(kept)

    def _layout(self, abi: tuple[int, bool, int]) -> Layout:
        if abi not in self._layouts:
            self._layouts[abi] = detect_layout(self.fs, abi, self._default_dirs)
        return self._layouts[abi]

    def _table(self, abi: tuple[int, bool, int]) -> dict[str, str] | None:
        if self._cache_entries is False:
            self._cache_entries = ldcache.read_cache(self.fs)
        if self._cache_entries is None:
            return None
        if abi not in self._tables:
            self._tables[abi] = ldcache.cache_table(self._cache_entries, ldcache.cache_flags(abi[2], abi[0]))
        return self._tables[abi]

    def _uncached(self, sonames: Iterable[str]) -> dict[str, str]:
        """Missing sonames that a directory of ld.so.conf holds while the root has no ld.so.cache: soname -> directory."""
        if self._cache_entries is False:
            self._cache_entries = ldcache.read_cache(self.fs)
        if self._cache_entries is not None:
            return {}
        found: dict[str, str] = {}
        for soname in sonames:
            where = next((d for d in self._conf() if "/" not in soname and self.fs.resolve(f"{d.rstrip('/')}/{soname}")), None)
            if where is not None:
                found[soname] = where
        return found

    def _conf(self) -> tuple[str, ...]:
        if self._conf_dirs is None:
            self._conf_dirs = ldcache.read_conf(self.fs)
        return self._conf_dirs
