"""Read what the dynamic loader reads from an ELF file, and nothing more.

The hot path maps the file and decodes the ELF header, the program headers,
PT_INTERP, PT_DYNAMIC (with its string table located through the PT_LOAD
segments) and PT_NOTE with `struct` (pyelftools builds its parsers per file,
about 3 ms each, too slow for thousands of files).  pyelftools is used where
section headers are needed: a DT_STRTAB that no PT_LOAD maps, and
`.note.dlopen` notes outside any PT_NOTE segment.  Every failure surfaces
as NotELF / MalformedELF / UnsupportedELF, never as a parser traceback.
"""

from __future__ import annotations

import json
import logging
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from harness.elf.errors import MalformedELF, NotELF, UnsupportedELF

log = logging.getLogger(__name__)

ELF_MAGIC = b"\x7fELF"
ET_EXEC, ET_DYN = 2, 3
PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE = 1, 2, 3, 4
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29
DT_FLAGS_1 = 0x6FFFFFFB
DF_1_NODEFLIB = 0x800
NT_FDO_DLOPEN_METADATA = 0x407C0C0A
PN_XNUM = 0xFFFF
SHF_COMPRESSED = 0x800

_LAYOUT = {
    # class: (ehdr format, phdr format, phdr field order, dyn format, shdr sh_info offset)
    1: ("HHIIIIIHHHHHH", "IIIIIIII", ("type", "offset", "vaddr", "paddr", "filesz", "memsz", "flags", "align"), "iI", 28),
    2: ("HHIQQQIHHHHHH", "IIQQQQQQ", ("type", "flags", "offset", "vaddr", "paddr", "filesz", "memsz", "align"), "qQ", 44),
}


@dataclass(frozen=True)
class DlopenNote:
    """One entry of a `.note.dlopen` FDO note: alternative sonames for one optional feature."""

    sonames: tuple[str, ...]
    feature: str | None
    description: str | None
    priority: str | None


@dataclass(frozen=True)
class ElfInfo:
    """What the loader needs to know about one ELF file (found at the physical `path` inside the root)."""

    path: PurePosixPath
    elf_class: int  # 32 or 64
    little_endian: bool
    machine: int
    osabi: int
    e_type: int
    interpreter: str | None
    has_dynamic: bool
    needed: tuple[str, ...]
    soname: str | None
    rpath: str | None
    runpath: str | None
    flags_1: int
    dlopen: tuple[DlopenNote, ...]
    has_sections: bool

    @property
    def abi(self) -> tuple[int, bool, int]:
        """(class, little endian, e_machine): objects of one process must agree on it."""
        return (self.elf_class, self.little_endian, self.machine)

    @property
    def nodeflib(self) -> bool:
        return bool(self.flags_1 & DF_1_NODEFLIB)


def read_elf(host_path: Path, path: PurePosixPath) -> ElfInfo:
    """Parse the loader-relevant parts of the file at `host_path` (named `path` in messages)."""
    try:
        with open(host_path, "rb") as handle:
            head = handle.read(64)
            if head[:4] != ELF_MAGIC:
                raise NotELF(path, head)
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _Parser(data, host_path, path).parse()
    except (NotELF, MalformedELF, UnsupportedELF):
        raise
    except (struct.error, ValueError, IndexError, OverflowError, UnicodeDecodeError) as error:
        raise MalformedELF(path, f"{type(error).__name__}: {error}") from error
    except OSError as error:
        raise MalformedELF(path, f"cannot read: {error.strerror or error}") from error


class _Parser:
    def __init__(self, data: mmap.mmap, host_path: Path, path: PurePosixPath) -> None:
        self.data = data
        self.size = len(data)
        self.host_path = host_path
        self.path = path

    def _need(self, offset: int, length: int, what: str) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise MalformedELF(self.path, f"truncated: {what} at offset {offset}+{length} beyond file size {self.size}")

    def parse(self) -> ElfInfo:
        data, path = self.data, self.path
        self._need(0, 16, "e_ident")
        elf_class, encoding, version, osabi = data[4], data[5], data[6], data[7]
        if elf_class not in _LAYOUT:
            raise MalformedELF(path, f"invalid EI_CLASS {elf_class}")
        if encoding not in (1, 2):
            raise MalformedELF(path, f"invalid EI_DATA {encoding}")
        if version != 1:
            raise MalformedELF(path, f"invalid EI_VERSION {version}")
        end = "<" if encoding == 1 else ">"
        self.end = end
        ehdr_fmt, phdr_fmt, phdr_fields, dyn_fmt, sh_info_at = _LAYOUT[elf_class]
        ehdr = struct.Struct(end + ehdr_fmt)
        self._need(16, ehdr.size, "ELF header")
        (e_type, machine, _version, _entry, phoff, shoff, _flags, _ehsize, phentsize, phnum, shentsize, shnum, _shstrndx) = (
            ehdr.unpack_from(data, 16)
        )
        if e_type not in (ET_EXEC, ET_DYN):
            raise UnsupportedELF(path, f"e_type {e_type} is neither ET_EXEC nor ET_DYN")
        phdr = struct.Struct(end + phdr_fmt)
        if phnum == PN_XNUM and shoff:
            self._need(shoff + sh_info_at, 4, "section header 0")
            (phnum,) = struct.unpack_from(end + "I", data, shoff + sh_info_at)
        if phnum and phentsize != phdr.size:
            raise MalformedELF(path, f"e_phentsize {phentsize} is not {phdr.size}")
        self._need(phoff, phnum * phdr.size, f"{phnum} program headers")
        segments = [dict(zip(phdr_fields, phdr.unpack_from(data, phoff + i * phdr.size), strict=True)) for i in range(phnum)]
        self.loads = [s for s in segments if s["type"] == PT_LOAD]
        interpreter, dynamic, notes = self._read_segments(segments)
        needed, soname, rpath, runpath, flags_1 = (
            ((), None, None, None, 0) if dynamic is None else self._dynamic_names(dynamic, struct.Struct(end + dyn_fmt))
        )
        return ElfInfo(
            path=path,
            elf_class=32 if elf_class == 1 else 64,
            little_endian=encoding == 1,
            machine=machine,
            osabi=osabi,
            e_type=e_type,
            interpreter=interpreter,
            has_dynamic=dynamic is not None,
            needed=tuple(needed),
            soname=soname,
            rpath=rpath,
            runpath=runpath,
            flags_1=flags_1,
            dlopen=tuple(notes),
            has_sections=bool(shoff and shnum and shentsize),
        )

    def _read_segments(self, segments: list[dict[str, int]]) -> tuple[str | None, dict[str, int] | None, list[DlopenNote]]:
        """The PT_INTERP path, the first PT_DYNAMIC segment, and the dlopen notes of the PT_NOTE segments."""
        interpreter = None
        dynamic = None
        notes: list[DlopenNote] = []
        for segment in segments:
            kind = segment["type"]
            if kind == PT_INTERP:
                self._need(segment["offset"], segment["filesz"], "PT_INTERP")
                interpreter = self._cstring(segment["offset"], segment["offset"] + segment["filesz"])
            elif kind == PT_DYNAMIC and dynamic is None:
                dynamic = segment
            elif kind == PT_NOTE:
                self._need(segment["offset"], segment["filesz"], "PT_NOTE")
                notes.extend(self._dlopen_notes(segment["offset"], segment["filesz"], segment["align"]))
        return interpreter, dynamic, notes

    def _dynamic_names(
        self, dynamic: dict[str, int], dyn: struct.Struct
    ) -> tuple[tuple[str, ...], str | None, str | None, str | None, int]:
        """(DT_NEEDED names, DT_SONAME, the first DT_RPATH, the first DT_RUNPATH, DT_FLAGS_1) of the dynamic section."""
        needed: list[str] = []
        soname = rpath = runpath = None
        flags_1 = 0
        entries = self._dynamic(dynamic, dyn)
        strtab, strsz = self._strtab(entries)
        for tag, value in entries:
            if tag == DT_FLAGS_1:
                flags_1 = value
            elif tag in (DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH):
                text = self._string(strtab, strsz, value, tag)
                if tag == DT_NEEDED:
                    needed.append(text)
                elif tag == DT_SONAME:
                    soname = text
                elif tag == DT_RPATH:
                    rpath = text if rpath is None else rpath
                else:
                    runpath = text if runpath is None else runpath
        return tuple(needed), soname, rpath, runpath, flags_1

    def _cstring(self, start: int, limit: int) -> str:
        stop = self.data.find(b"\0", start, limit)
        if stop < 0:
            stop = limit
        return self.data[start:stop].decode("utf-8", "surrogateescape")

    def _dynamic(self, segment: dict[str, int], dyn: struct.Struct) -> list[tuple[int, int]]:
        offset, size = segment["offset"], segment["filesz"]
        self._need(offset, size, "PT_DYNAMIC")
        entries = []
        for at in range(offset, offset + size - dyn.size + 1, dyn.size):
            tag, value = dyn.unpack_from(self.data, at)
            if tag == DT_NULL:
                break
            entries.append((tag, value))
        return entries

    def _file_offset(self, address: int) -> int | None:
        for load in self.loads:
            if load["vaddr"] <= address < load["vaddr"] + load["filesz"]:
                return int(address - load["vaddr"] + load["offset"])
        return None

    def _strtab(self, entries: list[tuple[int, int]]) -> tuple[int, int]:
        """(file offset, size) of the dynamic string table."""
        address = next((value for tag, value in entries if tag == DT_STRTAB), None)
        size = next((value for tag, value in entries if tag == DT_STRSZ), None)
        if not any(tag in (DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH) for tag, _ in entries):
            return (0, 0)
        if address is None:
            raise MalformedELF(self.path, "PT_DYNAMIC has string references but no DT_STRTAB")
        offset = self._file_offset(address)
        if offset is None:
            offset, size = self._strtab_from_sections(address)
        if size is None:
            size = self.size - offset
        self._need(offset, size, "dynamic string table")
        return (offset, size)

    def _strtab_from_sections(self, address: int) -> tuple[int, int]:
        log.debug("%s: DT_STRTAB %#x outside PT_LOAD, using section headers", self.path, address)
        try:
            with open(self.host_path, "rb") as handle:
                elf = ELFFile(handle)
                for section in elf.iter_sections():
                    if section["sh_addr"] == address and section["sh_type"] == "SHT_STRTAB":
                        return (section["sh_offset"], section["sh_size"])
        except (ELFError, struct.error, ValueError, OSError) as error:
            raise MalformedELF(self.path, f"DT_STRTAB {address:#x} not mapped and sections unreadable: {error}") from error
        raise MalformedELF(self.path, f"DT_STRTAB {address:#x} is in no PT_LOAD segment nor section")

    def _string(self, strtab: int, strsz: int, index: int, tag: int) -> str:
        if index >= strsz:
            raise MalformedELF(self.path, f"dynamic tag {tag} string index {index} beyond DT_STRSZ {strsz}")
        return self._cstring(strtab + index, strtab + strsz)

    def _dlopen_notes(self, offset: int, size: int, align: int) -> list[DlopenNote]:
        return parse_notes(self.data[offset : offset + size], self.end, 8 if align == 8 else 4, self.path)


def parse_notes(blob: bytes, end: str, align: int, path: PurePosixPath) -> list[DlopenNote]:
    """The FDO dlopen notes among the ELF notes in `blob` (malformed notes are logged and skipped)."""
    found: list[DlopenNote] = []
    at = 0
    header = struct.Struct(end + "III")
    while at + header.size <= len(blob):
        namesz, descsz, kind = header.unpack_from(blob, at)
        name_at = at + header.size
        desc_at = name_at + _round(namesz, align)
        at = desc_at + _round(descsz, align)
        if desc_at + descsz > len(blob):
            break
        if kind != NT_FDO_DLOPEN_METADATA or blob[name_at : name_at + namesz].rstrip(b"\0") != b"FDO":
            continue
        found.extend(_decode_dlopen(blob[desc_at : desc_at + descsz], path))
    return found


def _round(value: int, align: int) -> int:
    return (value + align - 1) & ~(align - 1)


def _decode_dlopen(payload: bytes, path: PurePosixPath) -> list[DlopenNote]:
    try:
        items = json.loads(payload.rstrip(b"\0").decode("utf-8"))
        if not isinstance(items, list):
            raise ValueError("payload is not a JSON array")
        notes = []
        for item in items:
            sonames = item["soname"]
            if not isinstance(sonames, list) or not all(isinstance(s, str) for s in sonames):
                raise ValueError(f"soname is not a list of strings: {sonames!r}")
            notes.append(DlopenNote(tuple(sonames), item.get("feature"), item.get("description"), item.get("priority")))
        return notes
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        log.warning("%s: ignoring malformed .note.dlopen payload: %s", path, error)
        return []


def read_dlopen_sections(host_path: Path, path: PurePosixPath) -> tuple[DlopenNote, ...]:
    """dlopen notes from a `.note.dlopen` section (for files whose notes are in no PT_NOTE segment)."""
    try:
        with open(host_path, "rb") as handle:
            elf = ELFFile(handle)
            section = elf.get_section_by_name(".note.dlopen")
            if section is None or section["sh_type"] == "SHT_NOBITS":
                return ()
            if section["sh_flags"] & SHF_COMPRESSED:  # never on an allocated section; would inflate untrusted data
                log.warning("%s: ignoring compressed .note.dlopen section", path)
                return ()
            end = "<" if elf.little_endian else ">"
            return tuple(parse_notes(section.data(), end, max(4, min(8, section["sh_addralign"] or 4)), path))
    except (ELFError, struct.error, ValueError, OSError) as error:
        log.warning("%s: cannot read section headers for .note.dlopen: %s", path, error)
        return ()
