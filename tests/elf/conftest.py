"""Synthetic roots for the ELF resolver tests: objects compiled once per session with gcc."""

from __future__ import annotations

import os
import platform
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from hostneeds import needs


@dataclass(frozen=True)
class HostAbi:
    """The host's own ABI, which gcc builds the synthetic objects for, as Debian's merged /usr lays it out."""

    triplet: str
    platform: str  # $PLATFORM
    interpreter: str  # PT_INTERP of gcc's programs
    real: str  # where the loader physically is
    links: tuple[tuple[str, str], ...]  # the merged-/usr links, /lib -> usr/lib among them
    machine: int
    ldconfig_kind: str  # how `ldconfig -p` names the architecture


HOSTS = {
    "x86_64": HostAbi(
        "x86_64-linux-gnu",
        "x86_64",
        "/lib64/ld-linux-x86-64.so.2",
        "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        (
            ("/lib64", "usr/lib64"),
            ("/usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
            ("/lib", "usr/lib"),
        ),
        62,
        "x86-64",
    ),
    "aarch64": HostAbi(
        "aarch64-linux-gnu",
        "aarch64",
        "/lib/ld-linux-aarch64.so.1",
        "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
        (("/lib", "usr/lib"), ("/usr/lib/ld-linux-aarch64.so.1", "aarch64-linux-gnu/ld-linux-aarch64.so.1")),
        183,
        "AArch64",
    ),
}
HOST = HOSTS.get(platform.machine())
HOST_RTLD = Path(HOST.interpreter) if HOST is not None else None
DLOPEN_JSON = '[{"soname":["libZ.so.9","libC.so.1"],"feature":"cee","priority":"recommended"}]'


def _gcc(cwd: Path, *args: str) -> None:
    done = subprocess.run(["gcc", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"gcc {' '.join(args)} failed: {done.stderr}")


def _exe(cwd: Path, out: str, needs: list[str], *flags: str) -> None:
    """A -nostdlib executable needing `needs` (names, linked from cwd), with the host's interpreter."""
    (cwd / "main.c").write_text("void _start(void) { for (;;); }\n")
    _gcc(cwd, "-nostdlib", "-fPIE", "-pie", "-o", out, "main.c", f"-Wl,-rpath-link,{cwd}", "-Wl,--no-as-needed", *flags, *needs)


@dataclass(frozen=True)
class Built:
    """Paths of the objects compiled for the tests."""

    dir: Path
    libC: Path  # soname libC.so.1, no dependencies
    libB: Path  # soname libB.so.1, needs libC.so.1
    libN: Path  # soname libN.so.1, carries a .note.dlopen for libZ.so.9 | libC.so.1
    libX: Path  # no soname
    libC32: Path  # a hand-made ELFCLASS32 i386 object with soname libC.so.1
    app_rpath: Path  # needs libB.so.1, DT_RPATH /opt/a/lib:/opt/c
    app_runpath: Path  # needs libB.so.1, DT_RUNPATH /opt/a/lib:/opt/c
    app_origin: Path  # needs libC.so.1, DT_RUNPATH $ORIGIN/../lib
    app_plain: Path  # needs libC.so.1, no search path
    app_dollar: Path  # DT_NEEDED "$ORIGIN/../lib/libX.so"
    app_first: Path  # needs libC.so.1, DT_RUNPATH /opt/first:/opt/second
    app_dlopen: Path  # needs libN.so.1
    static: Path


def elf32_library(soname: str, machine: int = 3) -> bytes:
    """A minimal little-endian ELFCLASS32 ET_DYN with PT_LOAD + PT_DYNAMIC and a DT_SONAME."""
    strtab = b"\0" + soname.encode() + b"\0"
    ehsize, phsize = 52, 32
    dyn_at = ehsize + 2 * phsize
    dynamic = struct.pack("<6i", 14, 1, 5, 0, 10, len(strtab)) + struct.pack("<2i", 0, 0)
    str_at = dyn_at + len(dynamic)
    dynamic = struct.pack("<6i", 14, 1, 5, str_at, 10, len(strtab)) + struct.pack("<2i", 0, 0)
    size = str_at + len(strtab)
    header = (
        b"\x7fELF"
        + bytes([1, 1, 1, 0])
        + bytes(8)
        + struct.pack("<HHIIIIIHHHHHH", 3, machine, 1, 0, ehsize, 0, 0, ehsize, phsize, 2, 40, 0, 0)
    )
    load = struct.pack("<8I", 1, 0, 0, 0, size, size, 5, 0x1000)
    dyn = struct.pack("<8I", 2, dyn_at, dyn_at, dyn_at, len(dynamic), len(dynamic), 6, 4)
    return header + load + dyn + dynamic + strtab


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    needs(shutil.which("gcc") is not None, "gcc is needed to build the synthetic ELF files")
    d = tmp_path_factory.mktemp("elfbuild")
    (d / "c.c").write_text("int c(void) { return 3; }\n")
    (d / "b.c").write_text("int c(void); int b(void) { return c(); }\n")
    (d / "x.c").write_text("int x(void) { return 5; }\n")
    json = DLOPEN_JSON.replace('"', '\\"')
    (d / "n.c").write_text(
        f'#define J "{json}"\n'
        "struct note { unsigned namesz, descsz, type; char name[4]; char desc[(sizeof(J) + 3) & ~3]; };\n"
        '__attribute__((section(".note.dlopen"), used, aligned(4)))\n'
        'static const struct note n = {4, sizeof(J), 0x407c0c0a, "FDO", J};\n'
        "int nn(void) { return 1; }\n"
    )
    so = ["-nostdlib", "-shared", "-fPIC"]
    _gcc(d, *so, "-Wl,-soname,libC.so.1", "-o", "libC.so.1", "c.c")
    _gcc(d, *so, "-Wl,-soname,libB.so.1", "-o", "libB.so.1", "b.c", "-Wl,--no-as-needed", "./libC.so.1")
    _gcc(d, *so, "-Wl,-soname,libN.so.1", "-o", "libN.so.1", "n.c")
    (d / "$ORIGIN").mkdir()
    (d / "lib").mkdir()
    _gcc(d, *so, "-o", "lib/libX.so", "x.c")
    _exe(d, "app_rpath", ["./libB.so.1"], "-Wl,--disable-new-dtags,-rpath,/opt/a/lib:/opt/c")
    _exe(d, "app_runpath", ["./libB.so.1"], "-Wl,--enable-new-dtags,-rpath,/opt/a/lib:/opt/c")
    _exe(d, "app_origin", ["./libC.so.1"], "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib")
    _exe(d, "app_plain", ["./libC.so.1"])
    _exe(d, "app_dollar", ["$ORIGIN/../lib/libX.so"])
    _exe(d, "app_first", ["./libC.so.1"], "-Wl,--enable-new-dtags,-rpath,/opt/first:/opt/second")
    _exe(d, "app_dlopen", ["./libN.so.1"])
    (d / "static.c").write_text("void _start(void) { for (;;); }\n")
    _gcc(d, "-nostdlib", "-static", "-o", "static", "static.c")
    (d / "libC32.so.1").write_bytes(elf32_library("libC.so.1"))
    return Built(
        d,
        d / "libC.so.1",
        d / "libB.so.1",
        d / "libN.so.1",
        d / "lib/libX.so",
        d / "libC32.so.1",
        d / "app_rpath",
        d / "app_runpath",
        d / "app_origin",
        d / "app_plain",
        d / "app_dollar",
        d / "app_first",
        d / "app_dlopen",
        d / "static",
    )


class Root:
    """A synthetic root under construction: `put` copies files in, `link` makes symlinks."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def host(self, inside: str) -> Path:
        return self.path / inside.lstrip("/")

    def put(self, inside: str, source: Path | bytes) -> str:
        target = self.host(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, bytes):
            target.write_bytes(source)
        else:
            shutil.copyfile(source, target)
            os.chmod(target, 0o755)
        return inside

    def link(self, inside: str, target: str) -> str:
        where = self.host(inside)
        where.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, where)
        return inside

    def merged_usr(self) -> None:
        """Debian bookworm's layout for the host's ABI: /lib -> usr/lib (x86-64: /lib64 -> usr/lib64), ld.so linked."""
        assert HOST is not None and HOST_RTLD is not None
        (self.path / f"usr/lib/{HOST.triplet}").mkdir(parents=True, exist_ok=True)
        self.put(HOST.real, HOST_RTLD.resolve())
        for link, target in HOST.links:
            self.link(link, target)


@pytest.fixture()
def root(tmp_path: Path) -> Root:
    """An empty root with Debian's merged-/usr layout and the host's ld.so in it."""
    needs(HOST_RTLD is not None and HOST_RTLD.exists(), f"needs a glibc host of a known ABI ({', '.join(HOSTS)}) for its ld.so")
    made = Root(tmp_path / "root")
    made.path.mkdir()
    made.merged_usr()
    return made


@pytest.fixture()
def abi() -> HostAbi:
    """The host's ABI: the triplet, loader and names the synthetic objects and roots use."""
    if HOST is None:
        needs(False, f"needs a host of a known ABI ({', '.join(HOSTS)})")
    return HOST
