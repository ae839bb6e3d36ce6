"""Fuzz harness.elf's resolver with structurally mutated ELF files: nothing may get out.

    .venv/bin/python bench/fuzz_elf.py [--inputs 10000] [--seed N] [--per-input-seconds 2] [--workers 2]

Every input must end in a Closure or one harness.elf.ElfError within the time
bound: another exception is a crash, running out of time a hang, exceeding the
address-space limit (RLIMIT_AS) shows up as a MemoryError crash.  Seeds are
compiled with gcc into a temporary root (a dynamic executable, a shared
library with DT_NEEDED / DT_RUNPATH / DT_SONAME and a .note.dlopen, a static
executable, an executable with its own interpreter) plus the host's /bin/true
and two hand-made ELFCLASS32 objects (little and big endian).  Input i is a
function of (--seed, i) only: rerun with the same seed to reproduce; each
crashing or hanging input is also saved under --save-dir.

Workers run in child processes.  Each input runs under an ITIMER_REAL alarm
(the traceback of a hang shows where it looped) and the parent kills a worker
silent for longer than the bound plus a grace, counting the input as a hang.
Per-input memory is the tracemalloc peak of Python allocations.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import multiprocessing.connection
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.elf import Closure, ElfError, Resolver  # noqa: E402

HOST_RTLD = Path("/lib64/ld-linux-x86-64.so.2")
LIBDIR = "/usr/lib/x86_64-linux-gnu"
MAIN = "/usr/bin/fuzz"  # the mutant, as an executable
LIB = f"{LIBDIR}/libfuzz.so.1"  # the mutant, as a library /usr/bin/usesfuzz needs
INTERP = "/lib64/ld-fuzz.so.2"  # the mutant, as the interpreter of /usr/bin/ownrtld
ADDRESS_SPACE_LIMIT = 4 << 30  # bytes of virtual memory a worker may map
GRACE_SECONDS = 5.0

DLOPEN_JSON = '[{"soname":["libfuzz.so.1","libseed.so.1"],"feature":"f","priority":"recommended"}]'

# Names a mutated string may become: other files of the root, itself, tokens, escapes, traps.
NAMES = [
    b"libfuzz.so.1",
    b"libseed.so.1",
    b"libc.so.6",
    b"libloop.so.1",
    b"libdir.so.1",
    b"libfifo.so.1",
    MAIN.encode(),
    LIB.encode(),
    INTERP.encode(),
    b"/dev/fifo",
    b"/",
    b"",
    b".",
    b"..",
    b"../../../../../etc/passwd",
    b"$ORIGIN",
    b"$ORIGIN/libfuzz.so.1",
    b"${ORIGIN}/../lib/x86_64-linux-gnu/libfuzz.so.1",
    b"$LIB/libfuzz.so.1",
    b"$PLATFORM",
    b"${LIB",
    b"$",
    b"$$ORIGIN",
    b"/lib64/../../../lib64/ld-linux-x86-64.so.2",
    b":" * 64,
    b"a:" * 200,
    b"$ORIGIN:" * 50,
    b"/usr/lib/x86_64-linux-gnu/libloop.so.1/x",
    b"\xff\xfe\xc3(",
    b"lib\x00fuzz.so.1",
    b"/" * 300,
    b"a/" * 150,
    b"x" * 5000,
]
NOTE_PAYLOADS = [
    b"[" * 100000,
    b'[{"soname":' * 3000,
    b'[{"soname":["\\u0000"]}]',
    b'[{"soname":["\\ud800"]}]',
    b'[{"soname":["/usr/bin/fuzz"],"feature":{"a":1}}]',
    b'[{"soname":["libfuzz.so.1","libloop.so.1"]}]',
    b'[{"soname":"libfuzz.so.1"}]',
    b'{"soname":[]}',
    b"[1,2,3]",
    b'["x"]',
    b"[" + b"1" * 6000 + b"]",
    b'[{"soname":["$ORIGIN/../../../../x"]}]',
    b'[{"soname":["a\\/b"]}]',
    b"\xff\xfe",
    b"null",
    b"",
    DLOPEN_JSON.encode() * 3,
]

PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE = 1, 2, 3, 4
DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH, DT_FLAGS_1 = 1, 5, 10, 14, 15, 29, 0x6FFFFFFB
STRING_TAGS = (DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH)
INTERESTING_TAGS = (0, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH, DT_FLAGS_1)
SHF_COMPRESSED = 0x800


# --- seeds -------------------------------------------------------------------------------------------


def _gcc(cwd: Path, *args: str) -> None:
    done = subprocess.run(["gcc", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"gcc {' '.join(args)} failed: {done.stderr.strip()}")


def elf32(soname: str, needed: str, runpath: str, big_endian: bool = False, machine: int = 3) -> bytes:
    """A minimal ELFCLASS32 ET_DYN: PT_LOAD + PT_DYNAMIC + PT_NOTE, DT_SONAME / DT_NEEDED / DT_RUNPATH."""
    e = ">" if big_endian else "<"
    strtab = b"\0" + soname.encode() + b"\0" + needed.encode() + b"\0" + runpath.encode() + b"\0"
    at_soname, at_needed, at_runpath = 1, 2 + len(soname), 3 + len(soname) + len(needed)
    ehsize, phsize, phnum = 52, 32, 3
    dyn_at = ehsize + phnum * phsize
    dyn_size = 7 * 8
    str_at = dyn_at + dyn_size
    note_at = (str_at + len(strtab) + 3) & ~3
    payload = DLOPEN_JSON.encode() + b"\0"
    payload += b"\0" * (-len(payload) % 4)
    note = struct.pack(e + "III", 4, len(payload), 0x407C0C0A) + b"FDO\0" + payload
    dynamic = struct.pack(
        e + "14i",
        DT_SONAME,
        at_soname,
        DT_NEEDED,
        at_needed,
        DT_RUNPATH,
        at_runpath,
        DT_STRTAB,
        str_at,
        DT_STRSZ,
        len(strtab),
        DT_FLAGS_1,
        0,
        0,
        0,
    )
    size = note_at + len(note)
    header = (
        b"\x7fELF"
        + bytes([1, 2 if big_endian else 1, 1, 0])
        + bytes(8)
        + struct.pack(e + "HHIIIIIHHHHHH", 3, machine, 1, 0, ehsize, 0, 0, ehsize, phsize, phnum, 40, 0, 0)
    )
    phdrs = (
        struct.pack(e + "8I", PT_LOAD, 0, 0, 0, size, size, 5, 0x1000)
        + struct.pack(e + "8I", PT_DYNAMIC, dyn_at, dyn_at, dyn_at, dyn_size, dyn_size, 6, 4)
        + struct.pack(e + "8I", PT_NOTE, note_at, note_at, note_at, len(note), len(note), 4, 4)
    )
    body = header + phdrs + dynamic + strtab
    return body + b"\0" * (note_at - len(body)) + note


def build_seeds(work: Path) -> dict[str, bytes]:
    """name -> bytes of every seed (the valid objects the mutants start from)."""
    if shutil.which("gcc") is None:
        raise SystemExit("gcc is needed to build the seed ELF files")
    (work / "main.c").write_text("int main(void) { return 0; }\n")
    (work / "seed.c").write_text("int seed(void) { return 1; }\n")
    json = DLOPEN_JSON.replace('"', '\\"')
    (work / "lib.c").write_text(
        f'#define J "{json}"\n'
        "struct note { unsigned namesz, descsz, type; char name[4]; char desc[(sizeof(J) + 3) & ~3]; };\n"
        '__attribute__((section(".note.dlopen"), used, aligned(4)))\n'
        'static const struct note n = {4, sizeof(J), 0x407c0c0a, "FDO", J};\n'
        "int seed(void); int lib(void) { return seed(); }\n"
    )
    _gcc(work, "-shared", "-fPIC", "-Wl,-soname,libseed.so.1", "-o", "libseed.so.1", "seed.c")
    _gcc(
        work,
        "-shared",
        "-fPIC",
        "-Wl,-soname,libfuzz.so.1",
        "-o",
        "libfuzz.so.1",
        "lib.c",
        "-Wl,--no-as-needed",
        "./libseed.so.1",
        "-Wl,--enable-new-dtags,-rpath,$ORIGIN:/opt/lib:$LIB",
    )
    _gcc(
        work,
        "-o",
        "dynamic",
        "main.c",
        "-Wl,--no-as-needed",
        "./libfuzz.so.1",
        f"-Wl,-rpath-link,{work}",
        "-Wl,--disable-new-dtags,-rpath,/opt/rpath",
    )
    _gcc(work, "-o", "ownrtld", "main.c", f"-Wl,--dynamic-linker={INTERP}")
    _gcc(work, "-static", "-o", "static", "main.c")
    seeds = {name: (work / name).read_bytes() for name in ("dynamic", "libfuzz.so.1", "static", "ownrtld")}
    seeds["libseed.so.1"] = (work / "libseed.so.1").read_bytes()
    seeds["true"] = Path("/bin/true").read_bytes()
    seeds["elf32le"] = elf32("libfuzz.so.1", "libseed.so.1", "$ORIGIN/../lib:/opt/x")
    seeds["elf32be"] = elf32("libfuzz.so.1", "libseed.so.1", "/opt/y:$LIB", big_endian=True, machine=8)
    return seeds


def build_root(root: Path, seeds: dict[str, bytes]) -> None:
    """A small Debian-like root: ld.so, libc, the seed libraries, and traps (a link loop, a dir, a FIFO)."""

    def put(inside: str, data: bytes) -> None:
        target = root / inside.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o755)

    rtld = HOST_RTLD.resolve().read_bytes() if HOST_RTLD.exists() else seeds["libseed.so.1"]
    put(f"{LIBDIR}/ld-linux-x86-64.so.2", rtld)
    (root / "lib64").mkdir(parents=True, exist_ok=True)
    os.symlink(f"..{LIBDIR}/ld-linux-x86-64.so.2", root / "lib64/ld-linux-x86-64.so.2")
    libc = Path(f"{LIBDIR}/libc.so.6")
    put(f"{LIBDIR}/libc.so.6", libc.resolve().read_bytes() if libc.exists() else seeds["libseed.so.1"])
    put(f"{LIBDIR}/libseed.so.1", seeds["libseed.so.1"])
    put(LIB, seeds["libfuzz.so.1"])
    put(INTERP, rtld)
    put("/usr/bin/usesfuzz", seeds["dynamic"])
    put("/usr/bin/ownrtld", seeds["ownrtld"])
    put(MAIN, seeds["dynamic"])
    os.symlink("libloop.so.1", root / LIBDIR.lstrip("/") / "libloop.so.1")
    (root / LIBDIR.lstrip("/") / "libdir.so.1").mkdir()
    os.mkfifo(root / LIBDIR.lstrip("/") / "libfifo.so.1")
    (root / "dev").mkdir()
    os.mkfifo(root / "dev/fifo")
    put("/etc/ld.so.conf", b"include /etc/ld.so.conf.d/*.conf\n/opt/lib\n")
    put("/etc/ld.so.conf.d/x.conf", b"/usr/local/lib\n")


# --- structure of an ELF file, to aim the mutations ------------------------------------------------


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
    e = out.end = ">" if blob[5] == 2 else "<"
    w = 8 if is64 else 4
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
    phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(e + "HHHHH", blob, tail + 2)
    names = (
        ("type", "flags", "offset", "vaddr", "paddr", "filesz", "memsz", "align")
        if is64
        else ("type", "offset", "vaddr", "paddr", "filesz", "memsz", "flags", "align")
    )
    sizes = (4, 4, 8, 8, 8, 8, 8, 8) if is64 else (4,) * 8
    phdr_fmt = e + ("IIQQQQQQ" if is64 else "8I")
    loads = []
    for index in range(min(phnum, 64)):
        at = phoff + index * phentsize
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
    if out.dynamic:
        offset, size, entsize = out.dynamic
        entries = []
        for at in range(offset, min(offset + size, len(blob)) - entsize + 1, entsize):
            tag, value = struct.unpack_from(e + ("qQ" if is64 else "iI"), blob, at)
            entries.append((tag, value))
            label = {
                DT_NEEDED: "NEEDED",
                DT_STRTAB: "STRTAB",
                DT_STRSZ: "STRSZ",
                DT_SONAME: "SONAME",
                DT_RPATH: "RPATH",
                DT_RUNPATH: "RUNPATH",
                DT_FLAGS_1: "FLAGS_1",
                0: "NULL",
            }.get(tag, "other")
            out.fields.append(Field(at, w, f"DT_{label}.d_tag"))
            out.fields.append(Field(at + w, w, f"DT_{label}.d_val"))
            if tag == 0:
                break
        strtab = next((v for t, v in entries if t == DT_STRTAB), None)
        if strtab is not None:
            base = next(
                (ld["offset"] + strtab - ld["vaddr"] for ld in loads if ld["vaddr"] <= strtab < ld["vaddr"] + ld["filesz"]), None
            )
            if base is not None:
                for tag, value in entries:
                    if tag in STRING_TAGS:
                        end = blob.find(b"\0", base + value)
                        out.strings.append((base + value, max(0, end - base - value)))
    if shoff and shentsize in (40, 64):
        sh_fmt = e + ("IIQQQQIIQQ" if is64 else "10I")
        headers = []
        for index in range(min(shnum, 256)):
            at = shoff + index * shentsize
            headers.append((at, struct.unpack_from(sh_fmt, blob, at)))
        shstr = headers[shstrndx][1][4] if shstrndx < len(headers) else None
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


# --- mutations ---------------------------------------------------------------------------------------


def interesting(rng: random.Random, old: int, size: int, file_size: int) -> int:
    bits = 8 * size
    choices = [
        0,
        1,
        2,
        3,
        4,
        7,
        8,
        0x7F,
        0x80,
        0xFF,
        0x100,
        0x7FFF,
        0xFFFF,
        0x10000,
        0x7FFFFFFF,
        0x80000000,
        0xFFFFFFFF,
        1 << 32,
        (1 << 63) - 1,
        1 << 63,
        (1 << 64) - 1,
        file_size,
        file_size - 1,
        file_size + 1,
        file_size // 2,
        old + 1,
        old - 1,
        old * 2,
        old + 0x1000,
        old - 0x1000,
        old ^ (1 << rng.randrange(bits)),
        rng.getrandbits(bits),
        rng.randrange(max(1, file_size)),
    ]
    return rng.choice(choices) & ((1 << bits) - 1)


def _write_int(blob: bytearray, at: int, size: int, value: int, end: str) -> None:
    if 0 <= at and at + size <= len(blob):
        blob[at : at + size] = (value & ((1 << 8 * size) - 1)).to_bytes(size, "little" if end == "<" else "big")


def _read_int(blob: bytearray, at: int, size: int, end: str) -> int:
    return int.from_bytes(blob[at : at + size], "little" if end == "<" else "big")


def _overwrite(blob: bytearray, at: int, data: bytes) -> None:
    if 0 <= at < len(blob):
        blob[at : at + len(data)] = data[: max(0, len(blob) - at)]


def mutate(rng: random.Random, seed: bytes) -> tuple[bytes, list[str]]:
    """One mutant of `seed` (1 to 4 stacked mutations) and the labels of the mutations applied."""
    blob = bytearray(seed)
    applied: list[str] = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        shape = layout(bytes(blob))
        kind = rng.choices(
            ["field", "field_dyn", "dyn_retag", "string", "note", "section", "truncate", "flip", "extend"],
            weights=[25, 20, 8, 14, 8, 8, 6, 8, 3],
        )[0]
        if kind == "field" and shape.fields:
            f = rng.choice(shape.fields)
            _write_int(
                blob,
                f.offset,
                f.size,
                interesting(rng, _read_int(blob, f.offset, f.size, shape.end), f.size, len(blob)),
                shape.end,
            )
            applied.append(f.label)
        elif kind == "field_dyn" and any(f.label.startswith("DT_") for f in shape.fields):
            f = rng.choice([f for f in shape.fields if f.label.startswith("DT_")])
            old = _read_int(blob, f.offset, f.size, shape.end)
            value = rng.choice(INTERESTING_TAGS) if f.label.endswith("d_tag") else interesting(rng, old, f.size, len(blob))
            _write_int(blob, f.offset, f.size, value, shape.end)
            applied.append(f"{f.label}={value:#x}")
        elif kind == "dyn_retag" and shape.dynamic:
            # turn many entries into DT_NEEDED / DT_RUNPATH with values spread over the string table
            offset, size, entsize = shape.dynamic
            w = entsize // 2
            for at in range(offset, min(offset + size, len(blob)) - entsize + 1, entsize):
                if rng.random() < 0.5:
                    _write_int(blob, at, w, rng.choice(STRING_TAGS), shape.end)
                    _write_int(blob, at + w, w, rng.randrange(0, 4096), shape.end)
            applied.append("dyn_retag")
        elif kind == "string" and (shape.strings or shape.section_names):
            at, length = rng.choice(shape.strings or shape.section_names)
            if shape.section_names and rng.random() < 0.2:
                at, length = rng.choice(shape.section_names)
                _overwrite(blob, at, b".note.dlopen\0")
                applied.append("section_name=.note.dlopen")
                continue
            name = rng.choice(NAMES)
            if rng.random() < 0.5:
                name = name[:length]  # keep the layout of the string table
            _overwrite(blob, at, name + (b"\0" if rng.random() < 0.8 else b""))
            applied.append(f"string={name[:24]!r}")
        elif kind == "note" and shape.notes:
            at, size = rng.choice(shape.notes)
            choice = rng.randrange(4)
            notes = [f for f in shape.fields if f.label in ("PT_NOTE.p_offset", "PT_NOTE.p_filesz")]
            if choice == 3 and len(notes) >= 2:  # a new note at the end of the file, PT_NOTE pointed at it
                payload = rng.choice(NOTE_PAYLOADS) + b"\0"
                name = b"FDO\0" if rng.random() < 0.9 else b"\xff" * 4
                namesz = 4 if rng.random() < 0.9 else rng.choice((1, 0, 0xFFFFFFFF))
                note = struct.pack(shape.end + "III", namesz, len(payload), 0x407C0C0A) + name + payload
                blob.extend(b"\0" * (-len(blob) % 4))
                start = len(blob)
                blob.extend(note)
                at_offset = next(f for f in notes if f.label.endswith("offset"))
                at_size = next(f for f in notes if f.label.endswith("filesz") and f.offset > at_offset.offset)
                _write_int(blob, at_offset.offset, at_offset.size, start, shape.end)
                _write_int(blob, at_size.offset, at_size.size, len(note), shape.end)
                applied.append(f"note.relocated={payload[:16]!r}")
            elif choice == 0:  # header fields
                slot = rng.randrange(3)
                _write_int(
                    blob,
                    at + 4 * slot,
                    4,
                    interesting(rng, _read_int(blob, at + 4 * slot, 4, shape.end), 4, len(blob)),
                    shape.end,
                )
                applied.append(f"note.header[{slot}]")
            elif choice == 1:  # payload
                payload = rng.choice(NOTE_PAYLOADS) + b"\0"
                header = struct.pack(shape.end + "III", 4, len(payload), 0x407C0C0A) + b"FDO\0"
                if rng.random() < 0.5:
                    payload = payload[: max(0, size - 16)]
                    header = struct.pack(shape.end + "III", 4, len(payload), 0x407C0C0A) + b"FDO\0"
                _overwrite(blob, at, header + payload)
                applied.append(f"note.payload={payload[:16]!r}")
            else:
                for _ in range(rng.randint(1, 8)):
                    if size > 0:
                        _overwrite(blob, at + rng.randrange(size), bytes([rng.randrange(256)]))
                applied.append("note.bytes")
        elif kind == "section" and shape.section_flags:
            at = rng.choice(shape.section_flags)
            if rng.random() < 0.5:
                _write_int(blob, at, 4, _read_int(blob, at, 4, shape.end) | SHF_COMPRESSED, shape.end)
                applied.append("sh_flags|=SHF_COMPRESSED")
            else:
                f = rng.choice([f for f in shape.fields if f.label.startswith("sh_")] or [Field(at, 4, "sh_flags")])
                _write_int(
                    blob,
                    f.offset,
                    f.size,
                    interesting(rng, _read_int(blob, f.offset, f.size, shape.end), f.size, len(blob)),
                    shape.end,
                )
                applied.append(f.label)
        elif kind == "truncate" and len(blob) > 1:
            cut = rng.choice([rng.randrange(len(blob)), rng.randrange(min(len(blob), 4096))])
            del blob[cut:]
            applied.append(f"truncate@{cut}")
        elif kind == "extend":
            blob.extend(rng.randbytes(rng.randrange(1, 4096)))
            applied.append("extend")
        else:
            for _ in range(rng.randint(1, 16)):
                if blob:
                    blob[rng.randrange(min(len(blob), rng.choice((256, 4096, len(blob)))))] = rng.randrange(256)
            applied.append("flip")
    return bytes(blob), applied


# --- running inputs ----------------------------------------------------------------------------------


class Hang(BaseException):
    """Raised by the per-input alarm; a BaseException so that no `except Exception` swallows it."""


@dataclass(frozen=True)
class Case:
    """Input `index`: which seed, where the mutant goes, what is resolved."""

    index: int
    seed: str
    mode: str
    with_dlopen: bool
    blob: bytes
    mutations: tuple[str, ...]


def make_case(master: int, index: int, seeds: dict[str, bytes]) -> Case:
    rng = random.Random(master * 1_000_003 + index)
    name = rng.choice(sorted(seeds))
    blob, applied = mutate(rng, seeds[name])
    mode = rng.choices(["main", "lib", "both", "interp"], weights=[45, 30, 15, 10])[0]
    return Case(index, name, mode, rng.random() < 0.5, blob, tuple(applied))


def place(root: Path, case: Case, seeds: dict[str, bytes], defaults: dict[str, bytes]) -> str:
    """Write the mutant where `case.mode` says; the other mutable paths get their default contents."""
    where = {"main": (MAIN,), "lib": (LIB,), "both": (MAIN, LIB), "interp": (INTERP,)}[case.mode]
    for inside, default in defaults.items():
        (root / inside.lstrip("/")).write_bytes(case.blob if inside in where else default)
    return {"main": MAIN, "both": MAIN, "lib": "/usr/bin/usesfuzz", "interp": "/usr/bin/ownrtld"}[case.mode]


def run_case(root: Path, target: str, case: Case) -> tuple[str, str, str]:
    """(outcome, class name, traceback): outcome is result, error, crash or hang."""
    try:
        closure = Resolver(root).resolve(target, strict=False, with_dlopen=case.with_dlopen)
        if not isinstance(closure, Closure):
            return ("crash", "NotAClosure", f"resolve returned {type(closure).__name__}")
        return ("result", "Closure", "")
    except ElfError as error:
        message = str(error)
        if "\n" in message:
            return ("crash", "MultiLineElfError", message)
        return ("error", type(error).__name__, "")
    except Hang:
        return ("hang", "Hang", traceback.format_exc())
    except Exception as error:  # noqa: BLE001 - anything else is what the fuzzer looks for
        return ("crash", type(error).__name__, traceback.format_exc())


def _alarm(_signum: int, _frame: object) -> None:
    raise Hang()


def worker(
    conn: multiprocessing.connection.Connection,
    indices: list[int],
    master: int,
    seeds: dict[str, bytes],
    base_root: Path,
    per_input: float,
) -> None:
    """Run inputs `indices` in a private copy of the root, reporting each one over `conn`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = ADDRESS_SPACE_LIMIT if hard == resource.RLIM_INFINITY else min(ADDRESS_SPACE_LIMIT, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    root = Path(tempfile.mkdtemp(prefix="fuzzroot-"))
    build_root(root, seeds)
    defaults = {inside: (base_root / inside.lstrip("/")).read_bytes() for inside in (MAIN, LIB, INTERP)}
    signal.signal(signal.SIGALRM, _alarm)
    logging.disable(logging.CRITICAL)  # malformed notes are logged as warnings: expected, and noisy
    tracemalloc.start()
    try:
        for index in indices:
            case = make_case(master, index, seeds)
            target = place(root, case, seeds, defaults)
            conn.send(("start", index))
            tracemalloc.reset_peak()
            started = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, per_input)
            try:
                outcome = run_case(root, target, case)
            except Hang:  # the alarm fired between the try blocks
                outcome = ("hang", "Hang", traceback.format_exc())
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            elapsed = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
            conn.send(("done", index, *outcome, elapsed, peak))
    finally:
        shutil.rmtree(root, ignore_errors=True)
        conn.send(("rss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
        conn.close()


@dataclass
class Tally:
    outcomes: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    crashes: list[tuple[int, str, str]] = field(default_factory=list)
    hangs: list[tuple[int, str]] = field(default_factory=list)
    max_time: tuple[float, int] = (0.0, -1)
    max_peak: tuple[int, int] = (0, -1)
    max_rss: int = 0


def save(save_dir: Path, master: int, index: int, seeds: dict[str, bytes], what: str, text: str) -> Path:
    case = make_case(master, index, seeds)
    save_dir.mkdir(parents=True, exist_ok=True)
    path = save_dir / f"{what}-seed{master}-input{index}.elf"
    path.write_bytes(case.blob)
    path.with_suffix(".txt").write_text(
        f"seed file {case.seed}, mode {case.mode}, with_dlopen {case.with_dlopen}\nmutations {list(case.mutations)}\n\n{text}\n"
    )
    return path


def fuzz(inputs: int, master: int, per_input: float, workers: int, save_dir: Path) -> Tally:
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="fuzz-elf-") as scratch:
        work = Path(scratch) / "build"
        work.mkdir()
        seeds = build_seeds(work)
        base_root = Path(scratch) / "root"
        build_root(base_root, seeds)  # the reference copy; each worker builds its own
        context = multiprocessing.get_context("fork")
        shards = [list(range(k, inputs, workers)) for k in range(workers)]
        live: dict[multiprocessing.connection.Connection, dict] = {}

        def spawn(remaining: list[int]) -> None:
            if not remaining:
                return
            parent, child = context.Pipe(duplex=False)
            process = context.Process(target=worker, args=(child, remaining, master, seeds, base_root, per_input), daemon=True)
            process.start()
            child.close()
            live[parent] = {"process": process, "remaining": remaining, "current": None, "since": time.monotonic()}

        for shard in shards:
            spawn(shard)
        while live:
            ready = multiprocessing.connection.wait(list(live), timeout=0.5)
            for conn in ready:
                state = live[conn]
                try:
                    message = conn.recv()
                except EOFError:
                    state["process"].join()
                    current = state["current"]
                    if current is not None:  # died mid-input: a crash of the interpreter itself
                        code = state["process"].exitcode
                        tally.outcomes["crash"] += 1
                        tally.crashes.append((current, f"WorkerDied(exit {code})", ""))
                        save(save_dir, master, current, seeds, "crash", f"worker died with exit code {code}")
                        rest = state["remaining"][state["remaining"].index(current) + 1 :]
                        del live[conn]
                        spawn(rest)
                    else:
                        del live[conn]
                    continue
                if message[0] == "start":
                    state["current"], state["since"] = message[1], time.monotonic()
                elif message[0] == "rss":
                    tally.max_rss = max(tally.max_rss, message[1])
                else:
                    _, index, outcome, name, text, elapsed, peak = message
                    state["current"] = None
                    tally.outcomes[outcome] += 1
                    if outcome == "error":
                        tally.errors[name] += 1
                    elif outcome == "crash":
                        tally.crashes.append((index, name, text))
                        save(save_dir, master, index, seeds, "crash", text)
                    elif outcome == "hang":
                        tally.hangs.append((index, text))
                        save(save_dir, master, index, seeds, "hang", text)
                    tally.max_time = max(tally.max_time, (elapsed, index))
                    tally.max_peak = max(tally.max_peak, (peak, index))
            now = time.monotonic()
            for conn, state in list(live.items()):
                current = state["current"]
                if current is not None and now - state["since"] > per_input + GRACE_SECONDS:
                    state["process"].kill()
                    state["process"].join()
                    tally.outcomes["hang"] += 1
                    tally.hangs.append((current, "killed by the parent: no answer within the bound"))
                    tally.max_time = max(tally.max_time, (now - state["since"], current))
                    save(save_dir, master, current, seeds, "hang", "killed by the parent")
                    rest = state["remaining"][state["remaining"].index(current) + 1 :]
                    del live[conn]
                    conn.close()
                    spawn(rest)
    return tally


def report(tally: Tally, inputs: int, master: int, seconds: float, save_dir: Path) -> None:
    rows = [("inputs", inputs), ("results (Closure)", tally.outcomes["result"]), ("clean ElfErrors", tally.outcomes["error"])]
    rows += [(f"  {name}", count) for name, count in tally.errors.most_common()]
    rows += [
        ("crashes (other exceptions)", tally.outcomes["crash"]),
        ("hangs", tally.outcomes["hang"]),
        ("not run (worker failure)", inputs - sum(tally.outcomes.values())),
        ("max time per input", f"{tally.max_time[0] * 1000:.1f} ms (input {tally.max_time[1]})"),
        ("max traced memory per input", f"{tally.max_peak[0] / 1024:.0f} KiB (input {tally.max_peak[1]})"),
        ("max worker RSS", f"{tally.max_rss / 1048576:.0f} MiB (limit {ADDRESS_SPACE_LIMIT >> 30} GiB of address space)"),
        ("wall clock", f"{seconds:.1f} s"),
        ("seed", master),
    ]
    width = max(len(label) for label, _ in rows)
    print(f"{'':-<{width + 30}}")
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print(f"{'':-<{width + 30}}")
    for index, name, text in tally.crashes[:5]:
        print(f"\ncrash on input {index} ({name}):\n{text}")
    for index, text in tally.hangs[:3]:
        print(f"\nhang on input {index}:\n{text}")
    if tally.crashes or tally.hangs:
        print(f"failing inputs saved under {save_dir}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--per-input-seconds", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=max(1, min(os.cpu_count() or 1, 2)))
    parser.add_argument("--save-dir", type=Path, default=Path(tempfile.gettempdir()) / "fuzz_elf_failures")
    args = parser.parse_args()
    started = time.perf_counter()
    tally = fuzz(args.inputs, args.seed, args.per_input_seconds, args.workers, args.save_dir)
    report(tally, args.inputs, args.seed, time.perf_counter() - started, args.save_dir)
    complete = sum(tally.outcomes.values()) == args.inputs
    return 1 if tally.crashes or tally.hangs or not complete else 0


if __name__ == "__main__":
    raise SystemExit(main())
