"""Inputs tests/elf/fuzz_elf.py found that escaped the resolver as something other than an ElfError."""

from __future__ import annotations

import platform
import struct
from pathlib import PurePosixPath as P

from elftools.elf.elffile import ELFFile

from harness.elf import Closure, Resolver, read_elf
from harness.elf.reader import read_dlopen_sections

PT_NOTE = 4
# The host's multiarch folder: gcc built the objects for the host.
LIBDIR = f"/usr/lib/{platform.machine()}-linux-gnu"


def _hide_pt_notes(blob: bytearray) -> None:
    """Turn every PT_NOTE of a 64-bit little-endian file into an unknown segment type."""
    (phoff,) = struct.unpack_from("<Q", blob, 32)
    phentsize, phnum = struct.unpack_from("<HH", blob, 54)
    for index in range(phnum):
        at = phoff + index * phentsize
        if struct.unpack_from("<I", blob, at)[0] == PT_NOTE:
            struct.pack_into("<I", blob, at, 0x6FFFFFF0)


def test_deeply_nested_dlopen_note_is_ignored(root, built):
    """json.loads raised RecursionError (fuzz seed 2, input 921): a note of 100000 '[' in a PT_NOTE."""
    blob = bytearray(built.app_plain.read_bytes())
    payload = b"[" * 100000 + b"\0"
    note = struct.pack("<III", 4, len(payload), 0x407C0C0A) + b"FDO\0" + payload
    blob.extend(b"\0" * (-len(blob) % 4))
    start = len(blob)
    blob.extend(note)
    (phoff,) = struct.unpack_from("<Q", blob, 32)
    phentsize, phnum = struct.unpack_from("<HH", blob, 54)
    at = next(phoff + i * phentsize for i in range(phnum) if struct.unpack_from("<I", blob, phoff + i * phentsize)[0] == PT_NOTE)
    struct.pack_into("<QQQQQQ", blob, at + 8, start, 0, 0, len(note), len(note), 4)
    root.put(f"{LIBDIR}/libC.so.1", built.libC)
    path = root.put("/usr/bin/app", bytes(blob))

    assert read_elf(root.host(path), P(path)).dlopen == ()
    closure = Resolver(root.path).resolve(path, with_dlopen=True)
    assert isinstance(closure, Closure) and closure.dlopen == ()


def test_compressed_dlopen_section_is_ignored(root, built):
    """zlib.error from pyelftools: a .note.dlopen section flagged SHF_COMPRESSED (ELFCOMPRESS_ZLIB, garbage data).

    Allocated sections are never compressed; inflating one would also let a small file claim gigabytes.
    """
    blob = bytearray(built.libN.read_bytes())
    _hide_pt_notes(blob)
    with open(built.libN, "rb") as handle:
        elf = ELFFile(handle)
        index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == ".note.dlopen")
        shoff, shentsize, offset = elf["e_shoff"], elf["e_shentsize"], elf.get_section(index)["sh_offset"]
    flags_at = shoff + index * shentsize + 8
    struct.pack_into("<Q", blob, flags_at, struct.unpack_from("<Q", blob, flags_at)[0] | 0x800)
    struct.pack_into("<IIQQ", blob, offset, 1, 0, 1 << 40, 1)  # Elf64_Chdr: zlib, 1 TiB claimed
    lib = root.put(f"{LIBDIR}/libN.so.1", bytes(blob))
    app = root.put("/usr/bin/app", built.app_dlopen)

    assert read_dlopen_sections(root.host(lib), P(lib)) == ()
    closure = Resolver(root.path).resolve(app, with_dlopen=True)
    assert closure.dlopen == ()


def _many_needed(n_needed: int, runpath: bytes) -> bytes:
    """An ELFCLASS32 i386 ET_DYN with DT_RUNPATH `runpath` and DT_NEEDED n0 ... n<n_needed - 1>."""
    strtab = b"\0" + runpath + b"\0"
    offsets = []
    for index in range(n_needed):
        offsets.append(len(strtab))
        strtab += f"n{index}".encode() + b"\0"
    ehsize, phsize, phnum = 52, 32, 2
    dyn_at = ehsize + phnum * phsize
    count = 1 + n_needed + 3
    str_at = dyn_at + 8 * count
    entries = [(29, 1), *((1, offset) for offset in offsets), (5, str_at), (10, len(strtab)), (0, 0)]
    dynamic = b"".join(struct.pack("<iI", tag, value) for tag, value in entries)
    size = str_at + len(strtab)
    header = (
        b"\x7fELF"
        + bytes([1, 1, 1, 0])
        + bytes(8)
        + struct.pack("<HHIIIIIHHHHHH", 3, 3, 1, 0, ehsize, 0, 0, ehsize, phsize, phnum, 40, 0, 0)
    )
    phdrs = struct.pack("<8I", 1, 0, 0, 0, size, size, 5, 0x1000) + struct.pack(
        "<8I", 2, dyn_at, dyn_at, dyn_at, len(dynamic), len(dynamic), 6, 4
    )
    return header + phdrs + dynamic + strtab


def test_long_runpath_times_many_needed_is_not_quadratic(tmp_path):
    """1000 DT_NEEDED x 1000 DT_RUNPATH entries (an 18 KB file) took 18 s and 90 MiB: a lookup per pair."""
    import time

    root = tmp_path / "root"
    (root / "usr/lib/real").mkdir(parents=True)
    (root / "usr/lib/alias").symlink_to("real")
    runpath = b":".join([f"/d{i}".encode() for i in range(1000)] + [b"/usr/lib/alias", b"/usr/lib/./real", b"/usr/lib/real"])
    (root / "usr/lib/x.so").write_bytes(_many_needed(1000, runpath))
    (root / "usr/lib/real/n999").write_bytes(_many_needed(0, b"/nowhere"))
    started = time.perf_counter()
    closure = Resolver(root).resolve("/usr/lib/x.so", strict=False)
    assert time.perf_counter() - started < 2.0
    assert len(closure.missing) == 999
    # the first listed directory that has it wins, as in ld.so, even when a later one is the same directory
    assert [(dep.soname, str(dep.path)) for dep in closure.needed] == [("n999", "/usr/lib/alias/n999")]


def test_pruned_search_keeps_order_and_link_paths(root, built):
    """Pruning missing and repeated directories changes nothing ld.so would find."""
    root.put("/opt/second/libC.so.1", built.libC)
    root.link("/opt/first", "second")
    app = root.put("/usr/bin/app", built.app_first)  # DT_RUNPATH /opt/first:/opt/second
    closure = Resolver(root.path).resolve(app)
    assert [str(dep.path) for dep in closure.needed] == ["/opt/first/libC.so.1"]
    assert P("/opt/first") in closure.files
