"""Errors of the ELF dependency resolver, all HarnessErrors.

Every message is one line shaped `<path>: <what failed>: <evidence>`.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from harness.records.errors import EvidenceError


class ElfError(EvidenceError):
    """Base class of the resolver's errors; `path` is the path inside the root it concerns (the subject)."""

    def __init__(self, path: PurePosixPath | str, what: str, evidence: str) -> None:
        self.path = PurePosixPath(path)
        super().__init__(str(path), what, evidence)


class NotELF(ElfError):
    """The file does not start with the ELF magic."""

    def __init__(self, path: PurePosixPath | str, head: bytes = b"") -> None:
        self.head = head
        super().__init__(path, "not an ELF file", f"first bytes {head[:8]!r}" if head else "file is empty")


class MalformedELF(ElfError):
    """ELF magic present, but the header, program headers or dynamic section cannot be read."""

    def __init__(self, path: PurePosixPath | str, detail: str) -> None:
        self.detail = detail
        super().__init__(path, "malformed ELF", detail)


class UnsupportedELF(ElfError):
    """A well-formed ELF file that no loader would load (relocatable object, core dump, ...)."""

    def __init__(self, path: PurePosixPath | str, detail: str) -> None:
        self.detail = detail
        super().__init__(path, "not a loadable ELF object", detail)


class FileMissing(ElfError):
    """A requested path (or its interpreter) does not exist inside the root."""

    def __init__(self, path: PurePosixPath | str, root: object) -> None:
        self.root = root
        super().__init__(path, "no such file inside the root", f"root {root}")


class RootEscape(ElfError):
    """A path that cannot be located inside the root (relative, or leading outside it on the host)."""

    def __init__(self, path: PurePosixPath | str, evidence: str) -> None:
        super().__init__(path, "path escapes the root", evidence)


class SymlinkLoop(ElfError):
    """Too many symbolic links (more than Linux's 40) while resolving a path: a loop."""

    def __init__(self, path: PurePosixPath | str, links: tuple[PurePosixPath, ...], limit: int) -> None:
        self.links = links
        shown = " -> ".join(str(link) for link in links[:6])
        more = f" ... ({len(links)} links)" if len(links) > 6 else ""
        super().__init__(path, f"symbolic link loop (more than {limit} links)", f"{shown}{more}")


class MissingLibraries(ElfError):
    """Sonames that no search path provided; `missing` pairs each soname with the object that needed it."""

    def __init__(
        self, path: PurePosixPath | str, missing: tuple[tuple[str, PurePosixPath], ...], uncached: dict[str, str] | None = None
    ) -> None:
        """`uncached`: missing sonames that a directory of /etc/ld.so.conf holds, where the root has no ld.so.cache."""
        self.missing = tuple((soname, PurePosixPath(needed_by)) for soname, needed_by in missing)
        self.uncached = dict(uncached or {})
        listing = ", ".join(f"{soname} (needed by {needed_by}{self._hint(soname)})" for soname, needed_by in self.missing)
        count = len(self.missing)
        super().__init__(path, f"{count} missing librar{'y' if count == 1 else 'ies'}", listing)

    def _hint(self, soname: str) -> str:
        where = self.uncached.get(soname)
        if where is None:
            return ""
        return (
            f"; in {where}, which /etc/ld.so.conf names, but ld.so reads only /etc/ld.so.cache and there is none:"
            " run ldconfig in the image"
        )

    @property
    def sonames(self) -> frozenset[str]:
        return frozenset(soname for soname, _ in self.missing)
