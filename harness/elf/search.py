"""Search directories as glibc's ld.so builds them: dynamic string tokens and default directories.

$ORIGIN / ${ORIGIN} is the directory of the object (the path it was opened
by, not resolved), $LIB the last part of the loader's slibdir
("lib/x86_64-linux-gnu" on Debian multiarch, "lib64" or "lib" elsewhere),
$PLATFORM the loader's platform string: the kernel's AT_PLATFORM (x86_64, i686,
aarch64, ...), which glibc before 2.37 replaces on Intel x86-64 CPUs by
"haswell" (AVX2, FMA, BMI1/2, LZCNT, MOVBE, POPCNT) or "xeon_phi" (AVX512ER,
AVX512PF; sysdeps/x86/cpu-features.c).  Which one applies is a property of the
CPU the image will run on, not of the image, so a path with $PLATFORM is
expanded once per name the loader may use, the kernel's first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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
    EM_X86_64: ("x86_64", "haswell", "xeon_phi"),
    EM_386: ("i686",),
    EM_AARCH64: ("aarch64",),
    EM_ARM: ("v7l",),
    EM_RISCV: ("riscv64",),
    EM_PPC64: ("powerpc64",),
    EM_S390: ("s390x",),
    EM_LOONGARCH: ("loongarch64",),
}

# Architectures whose 64-bit libraries live in lib64 outside Debian (glibc's slibdir there).
_LIB64 = {EM_X86_64, EM_PPC64, EM_S390, EM_AARCH64, EM_RISCV, EM_LOONGARCH}

_DST = re.compile(r"\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?![A-Za-z0-9_]))")


@dataclass(frozen=True)
class Layout:
    """The loader's built-in directories and $LIB / $PLATFORM values for one ABI of one root."""

    default_dirs: tuple[str, ...]
    lib: str
    platforms: tuple[str, ...]  # the names $PLATFORM may take, the kernel's first


def detect_layout(fs: RootFS, abi: tuple[int, bool, int], default_dirs: tuple[str, ...] | None = None) -> Layout:
    """Debian multiarch when /lib/<triplet> or /usr/lib/<triplet> exists, else lib64 / lib."""
    elf_class, little, machine = abi
    platforms = PLATFORM.get(machine, ("",))
    triplet = MULTIARCH.get((machine, elf_class, little))
    dirs: tuple[str, ...]
    if triplet and (fs.is_dir(f"/lib/{triplet}") or fs.is_dir(f"/usr/lib/{triplet}")):
        dirs = (f"/lib/{triplet}", f"/usr/lib/{triplet}", "/lib", "/usr/lib")
        lib = f"lib/{triplet}"
    elif elf_class == 64 and machine in _LIB64:
        dirs, lib = ("/lib64", "/usr/lib64"), "lib64"
    else:
        dirs, lib = ("/lib", "/usr/lib"), "lib"
    return Layout(default_dirs if default_dirs is not None else dirs, lib, platforms)


def expand(text: str, origin: str | None, layout: Layout) -> tuple[str, ...]:
    """`text` with its dynamic string tokens replaced, once per name of $PLATFORM it needs; () when $ORIGIN is
    needed but unknown."""
    if "$" not in text:
        return (text,)
    names = {match.group(1) or match.group(2) for match in _DST.finditer(text)}
    if "ORIGIN" in names and origin is None:
        return ()
    values = {"ORIGIN": origin or "", "LIB": layout.lib}
    platforms = layout.platforms if "PLATFORM" in names else layout.platforms[:1]
    found: list[str] = []
    for platform in platforms:
        expanded = _DST.sub(_token_values({**values, "PLATFORM": platform}), text)
        if expanded not in found:
            found.append(expanded)
    return tuple(found)


def _token_values(tokens: dict[str, str]) -> Callable[[re.Match[str]], str]:
    return lambda match: tokens[match.group(1) or match.group(2)]


def split_dirs(text: str, origin: str | None, layout: Layout, separators: str = ":") -> tuple[str, ...]:
    """The directories of a DT_RPATH / DT_RUNPATH / LD_LIBRARY_PATH value, expanded.

    Relative and empty entries are taken relative to "/" (the working directory
    of a process started in the image); entries with an unknown $ORIGIN are dropped,
    as ld.so drops them.  LD_LIBRARY_PATH also splits on ";" (separators=":;").
    """
    dirs: list[str] = []
    for raw in re.split(f"[{re.escape(separators)}]", text):
        for expanded in expand(raw, origin, layout):
            directory = expanded if expanded.startswith("/") else "/" + expanded
            directory = directory.rstrip("/") or "/"
            if directory not in dirs:
                dirs.append(directory)
    return tuple(dirs)
