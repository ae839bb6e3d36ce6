"""Where the fields the loader reads are in an ELF file, so that the mutations hit them (best effort)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from tests.elf.fuzz_elf_format import (
    DT_FLAGS_1,
    DT_NEEDED,
    DT_RPATH,
    DT_RUNPATH,
    DT_SONAME,
    DT_STRSZ,
    DT_STRTAB,
    PT_DYNAMIC,
    PT_INTERP,
    PT_LOAD,
    PT_NOTE,
    STRING_TAGS,
)


@dataclass
class Field:
    """A field of the file: where it is, how wide (4 or 8 bytes, or 2), and a label for statistics."""

    offset: int
    size: int
    label: str


@dataclass
class Layout:
    end: str = "<"
    fields: list[Field] = field(default_factory=list)  # header, program header, dynamic, section fields
    strings: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) of referenced strings
    notes: list[tuple[int, int]] = field(default_factory=list)  # (offset, size) of note areas
    section_flags: list[int] = field(default_factory=list)  # offsets of sh_flags
    section_names: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) of section names
    dynamic: tuple[int, int, int] | None = None  # (offset, size, entry size)


def layout(blob: bytes) -> Layout:
    """The offsets of the fields the loader reads (best effort: a mutated file may not parse)."""
    out = Layout()
    try:
        _layout(blob, out)
    except (struct.error, ValueError, IndexError, OverflowError):
        pass
    return out


def _layout(blob: bytes, out: Layout) -> None:
    if blob[:4] != b"\x7fELF":
        return
    is64 = blob[4] == 2
    out.end = ">" if blob[5] == 2 else "<"
    header = _header(blob, out, is64)
    loads = _program_headers(blob, out, is64, header)
    if out.dynamic:
        _dynamic(blob, out, is64, loads)
    _sections(blob, out, is64, header)


@dataclass(frozen=True)
class _Header:
    phoff: int
    shoff: int
    phentsize: int
    phnum: int
    shentsize: int
    shnum: int
    shstrndx: int


def _header(blob: bytes, out: Layout, is64: bool) -> _Header:
    e, w = out.end, 8 if is64 else 4
    word = "Q" if is64 else "I"
    # e_type, e_machine at 16,18; e_entry 24; e_phoff, e_shoff; then e_flags, e_ehsize, e_phentsize ...
    phoff_at, shoff_at = (32, 40) if is64 else (28, 32)
    tail = 52 if is64 else 40  # e_ehsize
    for offset, size, label in [
        (4, 1, "EI_CLASS"),
        (5, 1, "EI_DATA"),
        (16, 2, "e_type"),
        (18, 2, "e_machine"),
        (phoff_at, w, "e_phoff"),
        (shoff_at, w, "e_shoff"),
        (tail + 2, 2, "e_phentsize"),
        (tail + 4, 2, "e_phnum"),
        (tail + 6, 2, "e_shentsize"),
        (tail + 8, 2, "e_shnum"),
        (tail + 10, 2, "e_shstrndx"),
    ]:
        out.fields.append(Field(offset, size, label))
    (phoff,) = struct.unpack_from(e + word, blob, phoff_at)
    (shoff,) = struct.unpack_from(e + word, blob, shoff_at)
    return _Header(phoff, shoff, *struct.unpack_from(e + "HHHHH", blob, tail + 2))


def _program_headers(blob: bytes, out: Layout, is64: bool, header: _Header) -> list[dict[str, int]]:
    """The program headers' fields, and where the dynamic section, notes and interpreter are; the PT_LOADs."""
    w = 8 if is64 else 4
    names = (
        ("type", "flags", "offset", "vaddr", "paddr", "filesz", "memsz", "align")
        if is64
        else ("type", "offset", "vaddr", "paddr", "filesz", "memsz", "flags", "align")
    )
    sizes = (4, 4, 8, 8, 8, 8, 8, 8) if is64 else (4,) * 8
    phdr_fmt = out.end + ("IIQQQQQQ" if is64 else "8I")
    loads = []
    for index in range(min(header.phnum, 64)):
        at = header.phoff + index * header.phentsize
        values = dict(zip(names, struct.unpack_from(phdr_fmt, blob, at), strict=True))
        kind = {PT_LOAD: "LOAD", PT_DYNAMIC: "DYNAMIC", PT_INTERP: "INTERP", PT_NOTE: "NOTE"}.get(values["type"], "X")
        position = at
        for name, size in zip(names, sizes, strict=True):
            if name in ("type", "offset", "filesz", "vaddr", "align", "memsz"):
                out.fields.append(Field(position, size, f"PT_{kind}.p_{name}"))
            position += size
        if values["type"] == PT_LOAD:
            loads.append(values)
        elif values["type"] == PT_DYNAMIC:
            out.dynamic = (values["offset"], values["filesz"], 2 * w)
        elif values["type"] == PT_NOTE:
            out.notes.append((values["offset"], values["filesz"]))
        elif values["type"] == PT_INTERP:
            out.strings.append((values["offset"], values["filesz"]))
    return loads


_DT_LABELS = {
    DT_NEEDED: "NEEDED",
    DT_STRTAB: "STRTAB",
    DT_STRSZ: "STRSZ",
    DT_SONAME: "SONAME",
    DT_RPATH: "RPATH",
    DT_RUNPATH: "RUNPATH",
    DT_FLAGS_1: "FLAGS_1",
    0: "NULL",
}


def _dynamic(blob: bytes, out: Layout, is64: bool, loads: list[dict[str, int]]) -> None:
    """The dynamic entries' fields, and the strings DT_NEEDED, DT_SONAME and the search paths point at."""
    assert out.dynamic is not None
    e, w = out.end, 8 if is64 else 4
    offset, size, entsize = out.dynamic
    entries = []
    for at in range(offset, min(offset + size, len(blob)) - entsize + 1, entsize):
        tag, value = struct.unpack_from(e + ("qQ" if is64 else "iI"), blob, at)
        entries.append((tag, value))
        label = _DT_LABELS.get(tag, "other")
        out.fields.append(Field(at, w, f"DT_{label}.d_tag"))
        out.fields.append(Field(at + w, w, f"DT_{label}.d_val"))
        if tag == 0:
            break
    strtab = next((v for t, v in entries if t == DT_STRTAB), None)
    if strtab is None:
        return
    base = next((ld["offset"] + strtab - ld["vaddr"] for ld in loads if ld["vaddr"] <= strtab < ld["vaddr"] + ld["filesz"]), None)
    if base is None:
        return
    for tag, value in entries:
        if tag in STRING_TAGS:
            end = blob.find(b"\0", base + value)
            out.strings.append((base + value, max(0, end - base - value)))


def _sections(blob: bytes, out: Layout, is64: bool, header: _Header) -> None:
    """The section headers' fields, their names, and the note sections."""
    if not header.shoff or header.shentsize not in (40, 64):
        return
    w = 8 if is64 else 4
    sh_fmt = out.end + ("IIQQQQIIQQ" if is64 else "10I")
    headers = []
    for index in range(min(header.shnum, 256)):
        at = header.shoff + index * header.shentsize
        headers.append((at, struct.unpack_from(sh_fmt, blob, at)))
    shstr = headers[header.shstrndx][1][4] if header.shstrndx < len(headers) else None
    for at, (name, kind, _flags, _addr, offset, size, *_rest) in headers:
        flags_at = at + 8
        out.section_flags.append(flags_at)
        out.fields.append(Field(at + 4, 4, "sh_type"))
        out.fields.append(Field(at + (24 if is64 else 16), w, "sh_offset"))
        out.fields.append(Field(at + (32 if is64 else 20), w, "sh_size"))
        out.fields.append(Field(at + (16 if is64 else 12), w, "sh_addr"))
        if shstr is not None:
            end = blob.find(b"\0", shstr + name)
            out.section_names.append((shstr + name, max(0, end - shstr - name)))
        if kind == 7:  # SHT_NOTE
            out.notes.append((offset, size))
