"""Search directories as glibc's ld.so builds them: dynamic string tokens and default directories.

$ORIGIN / ${ORIGIN} is the directory of the object (the path it was opened
by, not resolved), $LIB the last part of the loader's slibdir
("lib/x86_64-linux-gnu" on Debian multiarch, "lib64" or "lib" elsewhere),
$PLATFORM the AT_PLATFORM string (x86_64, i686, aarch64, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.elf.ldcache import EM_386, EM_AARCH64, EM_ARM, EM_LOONGARCH, EM_PPC64, EM_RISCV, EM_S390, EM_X86_64
from harness.elf.rootfs import RootFS

# (e_machine, class, little endian) -> Debian multiarch triplet.
MULTIARCH = {
    (EM_X86_64, 64, True): "x86_64-linux-gnu",
    (EM_X86_64, 32, True): "x86_64-linux-gnux32",
    (EM_386, 32, True): "i386-linux-gnu",
    (EM_AARCH64, 64, True): "aarch64-linux-gnu",
    (EM_ARM, 32, True): "arm-linux-gnueabihf",
    (EM_RISCV, 64, True): "riscv64-linux-gnu",
    (EM_PPC64, 64, True): "powerpc64le-linux-gnu",
    (EM_PPC64, 64, False): "powerpc64-linux-gnu",
    (EM_S390, 64, False): "s390x-linux-gnu",
    (EM_LOONGARCH, 64, True): "loongarch64-linux-gnu",
}

PLATFORM = {
    EM_X86_64: "x86_64",
    EM_386: "i686",
    EM_AARCH64: "aarch64",
    EM_ARM: "v7l",
    EM_RISCV: "riscv64",
    EM_PPC64: "powerpc64",
    EM_S390: "s390x",
    EM_LOONGARCH: "loongarch64",
}

# Architectures whose 64-bit libraries live in lib64 outside Debian (glibc's slibdir there).
_LIB64 = {EM_X86_64, EM_PPC64, EM_S390, EM_AARCH64, EM_RISCV, EM_LOONGARCH}

_DST = re.compile(r"\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?![A-Za-z0-9_]))")


@dataclass(frozen=True)
class Layout:
    """The loader's built-in directories and $LIB / $PLATFORM values for one ABI of one root."""

    default_dirs: tuple[str, ...]
    lib: str
    platform: str


def detect_layout(fs: RootFS, abi: tuple[int, bool, int], default_dirs: tuple[str, ...] | None = None) -> Layout:
    """Debian multiarch when /lib/<triplet> or /usr/lib/<triplet> exists, else lib64 / lib."""
    elf_class, little, machine = abi
    platform = PLATFORM.get(machine, "")
    triplet = MULTIARCH.get((machine, elf_class, little))
    dirs: tuple[str, ...]
    if triplet and (fs.is_dir(f"/lib/{triplet}") or fs.is_dir(f"/usr/lib/{triplet}")):
        dirs = (f"/lib/{triplet}", f"/usr/lib/{triplet}", "/lib", "/usr/lib")
        lib = f"lib/{triplet}"
    elif elf_class == 64 and machine in _LIB64:
        dirs, lib = ("/lib64", "/usr/lib64"), "lib64"
    else:
        dirs, lib = ("/lib", "/usr/lib"), "lib"
    return Layout(default_dirs if default_dirs is not None else dirs, lib, platform)


def expand(text: str, origin: str | None, layout: Layout) -> str | None:
    """`text` with its dynamic string tokens replaced; None when $ORIGIN is needed but unknown."""
    if "$" not in text:
        return text
    unknown = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal unknown
        name = match.group(1) or match.group(2)
        if name == "ORIGIN":
            if origin is None:
                unknown = True
                return ""
            return origin
        return layout.lib if name == "LIB" else layout.platform

    result = _DST.sub(substitute, text)
    return None if unknown else result


def split_dirs(text: str, origin: str | None, layout: Layout, separators: str = ":") -> tuple[str, ...]:
    """The directories of a DT_RPATH / DT_RUNPATH / LD_LIBRARY_PATH value, expanded.

    Relative and empty entries are taken relative to "/" (the working directory
    of a process started in the image); entries with an unknown $ORIGIN are dropped,
    as ld.so drops them.  LD_LIBRARY_PATH also splits on ";" (separators=":;").
    """
    dirs: list[str] = []
    for raw in re.split(f"[{re.escape(separators)}]", text):
        expanded = expand(raw, origin, layout)
        if expanded is None:
            continue
        if not expanded.startswith("/"):
            expanded = "/" + expanded
        expanded = expanded.rstrip("/") or "/"
        if expanded not in dirs:
            dirs.append(expanded)
    return tuple(dirs)
