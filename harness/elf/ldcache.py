"""/etc/ld.so.cache and /etc/ld.so.conf, read from inside a root.

The cache is glibc's binary file: the new format ("glibc-ld.so.cache1.1"),
alone or after the old one ("ld.so-1.7.0").  Entry flags carry the ELF type
in the low byte and the architecture in the high byte (glibc's
sysdeps/generic/ldconfig.h); ld.so takes the first entry of a soname whose
flags suit the process.  Entries tied to a hardware capability are skipped:
they depend on the CPU, and the result must not.
"""

from __future__ import annotations

import fnmatch
import logging
import struct
from dataclasses import dataclass
from pathlib import PurePosixPath

from harness.elf.rootfs import RootFS

log = logging.getLogger(__name__)

OLD_MAGIC = b"ld.so-1.7.0"
NEW_MAGIC = b"glibc-ld.so.cache1.1"

FLAG_ELF = 0x0001
FLAG_ELF_LIBC6 = 0x0003
FLAG_TYPE_MASK = 0x00FF
FLAG_REQUIRED_MASK = 0xFF00

EM_386, EM_ARM, EM_X86_64, EM_AARCH64, EM_RISCV, EM_S390, EM_PPC64, EM_SPARCV9, EM_IA64, EM_LOONGARCH = (
    3,
    40,
    62,
    183,
    243,
    22,
    21,
    43,
    50,
    258,
)

# (e_machine, class) -> the architecture byte ldconfig writes (0 means "no requirement").
_REQUIRED = {
    (EM_X86_64, 64): 0x0300,  # FLAG_X8664_LIB64
    (EM_X86_64, 32): 0x0800,  # FLAG_X8664_LIBX32
    (EM_AARCH64, 64): 0x0A00,  # FLAG_AARCH64_LIB64
    (EM_S390, 64): 0x0400,
    (EM_PPC64, 64): 0x0500,
    (EM_SPARCV9, 64): 0x0100,
    (EM_IA64, 64): 0x0200,
    (EM_RISCV, 64): 0x1000,  # double-float ABI, the common one
    (EM_LOONGARCH, 64): 0x1200,
}

# ARM hard-float objects: ldconfig tags them FLAG_ARM_LIBHF.
_ARM_HF = 0x0900
EF_ARM_ABI_FLOAT_HARD = 0x400


def cache_flags(machine: int, elf_class: int) -> int:
    """The flags ld.so accepts for this class and machine (i386: 0x0003, x86-64: 0x0303, aarch64: 0x0a03)."""
    return FLAG_ELF_LIBC6 | _REQUIRED.get((machine, elf_class), 0)


def flags_match(flags: int, wanted: int) -> bool:
    return (flags & FLAG_REQUIRED_MASK) == (wanted & FLAG_REQUIRED_MASK) and (flags & FLAG_TYPE_MASK) in (
        FLAG_ELF,
        FLAG_ELF_LIBC6,
    )


@dataclass(frozen=True)
class CacheEntry:
    flags: int
    soname: str
    path: str
    hwcap: int


def parse_cache(data: bytes, where: PurePosixPath | str = "ld.so.cache") -> tuple[CacheEntry, ...]:
    """Every entry of an ld.so.cache image, in file order; ValueError when it is not one."""
    try:
        if data.startswith(OLD_MAGIC):
            (nlibs,) = struct.unpack_from("<I", data, 12)
            old_end = 16 + nlibs * 12
            new_at = (old_end + 7) & ~7
            if data[new_at : new_at + len(NEW_MAGIC)] == NEW_MAGIC:
                return _parse_new(data[new_at:])
            return _parse_old(data, nlibs, old_end)
        if data.startswith(NEW_MAGIC):
            return _parse_new(data)
    except (struct.error, UnicodeDecodeError) as error:
        raise ValueError(f"{where}: truncated or corrupt: {error}") from error
    raise ValueError(f"{where}: not an ld.so.cache: starts with {data[:20]!r}")


def _parse_new(data: bytes) -> tuple[CacheEntry, ...]:
    endian = "<"
    # The header byte after len_strings records the byte order (glibc >= 2.32): 2 little, 3 big.
    nlibs, len_strings = struct.unpack_from("<II", data, 20)
    if data[28] == 3:
        endian = ">"
        nlibs, len_strings = struct.unpack_from(">II", data, 20)
    entry = struct.Struct(endian + "iIIIQ")
    if 48 + nlibs * entry.size > len(data):
        raise struct.error(f"{nlibs} entries do not fit in {len(data)} bytes")
    entries = []
    for index in range(nlibs):
        flags, key, value, _osversion, hwcap = entry.unpack_from(data, 48 + index * entry.size)
        entries.append(CacheEntry(flags, _cstr(data, key), _cstr(data, value), hwcap))
    return tuple(entries)


def _parse_old(data: bytes, nlibs: int, strings_at: int) -> tuple[CacheEntry, ...]:
    entry = struct.Struct("<iII")
    entries = []
    for index in range(nlibs):
        flags, key, value = entry.unpack_from(data, 16 + index * entry.size)
        entries.append(CacheEntry(flags, _cstr(data, strings_at + key), _cstr(data, strings_at + value), 0))
    return tuple(entries)


def _cstr(data: bytes, offset: int) -> str:
    stop = data.find(b"\0", offset)
    if offset >= len(data) or stop < 0:
        raise struct.error(f"string offset {offset} beyond {len(data)} bytes")
    return data[offset:stop].decode("utf-8", "surrogateescape")


def cache_table(entries: tuple[CacheEntry, ...], wanted: int) -> dict[str, str]:
    """soname -> path, first suitable entry wins, as in ld.so's lookup."""
    table: dict[str, str] = {}
    for entry in entries:
        if entry.hwcap == 0 and flags_match(entry.flags, wanted) and entry.soname not in table:
            table[entry.soname] = entry.path
    return table


def read_cache(fs: RootFS, path: str = "/etc/ld.so.cache") -> tuple[CacheEntry, ...] | None:
    """The root's cache entries; None when there is no usable cache (ld.so then ignores it too)."""
    resolved = fs.resolve(path)
    if resolved is None or not resolved.is_file:
        return None
    try:
        data = fs.host_path(resolved.real).read_bytes()
        return parse_cache(data, path)
    except (OSError, ValueError) as error:
        log.warning("%s: ignoring unusable ld.so.cache: %s", path, error)
        return None


def read_conf(fs: RootFS, path: str = "/etc/ld.so.conf") -> tuple[str, ...]:
    """Directories of ld.so.conf in order, following `include` globs (relative to the including file)."""
    dirs: list[str] = []
    _read_conf(fs, path, dirs, set())
    return tuple(dict.fromkeys(dirs))  # first occurrence of each, in order


def _read_conf(fs: RootFS, path: str, dirs: list[str], visiting: set[str]) -> None:
    resolved = fs.resolve(path)
    if resolved is None or not resolved.is_file or str(resolved.real) in visiting:
        return
    visiting.add(str(resolved.real))
    try:
        text = fs.host_path(resolved.real).read_text(errors="surrogateescape")
    except OSError as error:
        log.warning("%s: cannot read: %s", path, error)
        return
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "include" and len(words) > 1:
            for pattern in words[1:]:
                if not pattern.startswith("/"):
                    pattern = str(PurePosixPath(path).parent / pattern)
                for included in _glob(fs, pattern):
                    _read_conf(fs, included, dirs, visiting)
        elif words[0].lower() == "hwcap":
            continue
        else:
            directory = line.split("=", 1)[0].rstrip().rstrip("/") or "/"
            dirs.append(directory)
    visiting.discard(str(resolved.real))


def _glob(fs: RootFS, pattern: str) -> list[str]:
    """Glob inside the root, as glob(3) does for ldconfig: sorted, dot files only for a dot pattern."""
    parent = PurePosixPath(pattern).parent
    name = PurePosixPath(pattern).name
    hidden_ok = name.startswith(".")
    return [
        str(parent / entry)
        for entry in fs.listdir(parent)
        if fnmatch.fnmatchcase(entry, name) and (hidden_ok or not entry.startswith("."))
    ]
