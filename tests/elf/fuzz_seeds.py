"""The fuzzer's seeds: valid ELF objects compiled with gcc, two hand-made ELFCLASS32 ones, and the root they live in."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

from tests.elf.fuzz_elf_format import (
    DT_FLAGS_1,
    DT_NEEDED,
    DT_RUNPATH,
    DT_SONAME,
    DT_STRSZ,
    DT_STRTAB,
    PT_DYNAMIC,
    PT_LOAD,
    PT_NOTE,
)

HOST_RTLD = Path("/lib64/ld-linux-x86-64.so.2")
LIBDIR = "/usr/lib/x86_64-linux-gnu"
MAIN = "/usr/bin/fuzz"  # the mutant, as an executable
LIB = f"{LIBDIR}/libfuzz.so.1"  # the mutant, as a library /usr/bin/usesfuzz needs
INTERP = "/lib64/ld-fuzz.so.2"  # the mutant, as the interpreter of /usr/bin/ownrtld

DLOPEN_JSON = '[{"soname":["libfuzz.so.1","libseed.so.1"],"feature":"f","priority":"recommended"}]'


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
