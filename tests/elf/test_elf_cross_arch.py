"""The resolver reads another architecture's closure: aarch64 objects in an arm64 root, on any host.

The objects are written byte by byte (`elf64` below), so these tests
need no compiler and no loader of the host's and run, never skip, on every
host architecture.  The real arm64 root file system is tested against `ldd`
under emulation in tests/test_arm64.py.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from pathlib import PurePosixPath as P

import pytest

from harness.elf import Resolver
from harness.elf.errors import MissingLibraries

ARM_LOADER = "/lib/ld-linux-aarch64.so.1"

EM_X86_64, EM_AARCH64 = 62, 183
ET_EXEC, ET_DYN = 2, 3
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RUNPATH = 0, 1, 5, 10, 14, 29


def elf64(
    machine: int,
    *,
    soname: str | None = None,
    needed: tuple[str, ...] = (),
    runpath: str | None = None,
    interpreter: str | None = None,
    e_type: int = ET_DYN,
) -> bytes:
    """A little-endian ELFCLASS64 object: PT_LOAD of the whole file at address 0, then PT_INTERP and PT_DYNAMIC.

    Addresses equal file offsets, so DT_STRTAB is the string table's offset.
    """
    strings = bytearray(b"\0")

    def add(text: str) -> int:
        at = len(strings)
        strings.extend(text.encode() + b"\0")
        return at

    entries = [(DT_NEEDED, add(name)) for name in needed]
    if soname is not None:
        entries.append((DT_SONAME, add(soname)))
    if runpath is not None:
        entries.append((DT_RUNPATH, add(runpath)))
    interp = interpreter.encode() + b"\0" if interpreter else b""
    phnum = 2 + bool(interp)
    ehsize, phsize, dynsize = 64, 56, 16 * (len(entries) + 3)
    interp_at = ehsize + phnum * phsize
    dyn_at = interp_at + len(interp)
    str_at = dyn_at + dynsize
    size = str_at + len(strings)
    dynamic = b"".join(
        struct.pack("<qQ", tag, value) for tag, value in [*entries, (DT_STRTAB, str_at), (DT_STRSZ, len(strings)), (DT_NULL, 0)]
    )
    header = (
        b"\x7fELF"
        + bytes([2, 1, 1, 0])
        + bytes(8)
        + struct.pack("<HHIQQQIHHHHHH", e_type, machine, 1, 0, ehsize, 0, 0, ehsize, phsize, phnum, 64, 0, 0)
    )
    phdrs = struct.pack("<IIQQQQQQ", PT_LOAD, 5, 0, 0, 0, size, size, 0x1000)
    if interp:
        phdrs += struct.pack("<IIQQQQQQ", PT_INTERP, 4, interp_at, interp_at, interp_at, len(interp), len(interp), 1)
    phdrs += struct.pack("<IIQQQQQQ", PT_DYNAMIC, 6, dyn_at, dyn_at, dyn_at, dynsize, dynsize, 8)
    return header + phdrs + interp + dynamic + bytes(strings)


class Root:
    """A root under construction: `put` writes a file, `link` makes a symlink."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def put(self, inside: str, data: bytes) -> None:
        target = self.path / inside.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o755)

    def link(self, inside: str, to: str) -> None:
        where = self.path / inside.lstrip("/")
        where.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(to, where)


@pytest.fixture()
def arm_root(tmp_path) -> Root:
    """Debian bookworm's arm64 layout: merged /usr, the loader in the triplet folder and linked from /usr/lib."""
    root = Root(tmp_path / "root")
    root.path.mkdir()
    root.link("/lib", "usr/lib")
    root.put("/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1", elf64(EM_AARCH64, soname="ld-linux-aarch64.so.1"))
    root.link("/usr/lib/ld-linux-aarch64.so.1", "aarch64-linux-gnu/ld-linux-aarch64.so.1")
    root.put("/usr/lib/aarch64-linux-gnu/libc.so.6", elf64(EM_AARCH64, soname="libc.so.6", needed=("ld-linux-aarch64.so.1",)))
    root.put("/usr/bin/hello", elf64(EM_AARCH64, needed=("libc.so.6",), interpreter=ARM_LOADER, e_type=ET_EXEC))
    return root


def test_an_aarch64_program_resolves_to_the_arm64_loader_and_libc(arm_root: Root) -> None:
    closure = Resolver(arm_root.path).resolve("/usr/bin/hello")
    assert closure.interpreter == P(ARM_LOADER)
    assert closure.interpreter_real == P("/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1")
    # libc.so.6 needs the loader by its soname, as the real one does: the loader already mapped.
    libc, rtld = closure.needed
    assert (libc.path, libc.real) == (P("/lib/aarch64-linux-gnu/libc.so.6"), P("/usr/lib/aarch64-linux-gnu/libc.so.6"))
    assert (rtld.soname, rtld.real) == ("ld-linux-aarch64.so.1", P("/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1"))
    # What a scratch image needs: the links on the way (/lib, the loader's link) and the files.
    assert closure.files == (
        P("/usr/bin/hello"),
        P("/lib"),
        P("/usr/lib/ld-linux-aarch64.so.1"),
        P("/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1"),
        P("/usr/lib/aarch64-linux-gnu/libc.so.6"),
    )


def test_another_machines_library_earlier_in_the_path_is_passed_over(arm_root: Root) -> None:
    arm_root.put("/opt/first/libgreet.so.1", elf64(EM_X86_64, soname="libgreet.so.1"))
    arm_root.put("/usr/lib/aarch64-linux-gnu/libgreet.so.1", elf64(EM_AARCH64, soname="libgreet.so.1"))
    arm_root.put(
        "/usr/bin/greet",
        elf64(EM_AARCH64, needed=("libgreet.so.1", "libc.so.6"), runpath="/opt/first", interpreter=ARM_LOADER, e_type=ET_EXEC),
    )
    closure = Resolver(arm_root.path).resolve("/usr/bin/greet")
    assert [dep.real for dep in closure.needed][:2] == [
        P("/usr/lib/aarch64-linux-gnu/libgreet.so.1"),
        P("/usr/lib/aarch64-linux-gnu/libc.so.6"),
    ]


def test_a_root_with_both_architectures_gives_each_program_its_own(arm_root: Root) -> None:
    """Multiarch: amd64's libraries beside arm64's; each program's closure stays in its own triplet."""
    arm_root.put("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", elf64(EM_X86_64, soname="ld-linux-x86-64.so.2"))
    arm_root.link("/lib64", "usr/lib64")
    arm_root.link("/usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    arm_root.put("/usr/lib/x86_64-linux-gnu/libc.so.6", elf64(EM_X86_64, soname="libc.so.6"))
    arm_root.put(
        "/usr/bin/hello-amd64", elf64(EM_X86_64, needed=("libc.so.6",), interpreter="/lib64/ld-linux-x86-64.so.2", e_type=ET_EXEC)
    )
    resolver = Resolver(arm_root.path)
    arm, amd = resolver.resolve("/usr/bin/hello"), resolver.resolve("/usr/bin/hello-amd64")
    assert arm.real_paths() == {P("/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1"), P("/usr/lib/aarch64-linux-gnu/libc.so.6")}
    assert amd.real_paths() == {P("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"), P("/usr/lib/x86_64-linux-gnu/libc.so.6")}


def test_an_aarch64_library_found_only_for_another_machine_is_missing(arm_root: Root) -> None:
    arm_root.put("/usr/lib/aarch64-linux-gnu/libonly86.so.1", elf64(EM_X86_64, soname="libonly86.so.1"))
    arm_root.put("/usr/bin/needs86", elf64(EM_AARCH64, needed=("libonly86.so.1",), interpreter=ARM_LOADER, e_type=ET_EXEC))
    with pytest.raises(MissingLibraries, match="libonly86.so.1"):
        Resolver(arm_root.path).resolve("/usr/bin/needs86")
