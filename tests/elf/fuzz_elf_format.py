"""The ELF constants the fuzzer aims at (the few it needs; harness.elf reads them with pyelftools)."""

from __future__ import annotations

PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE = 1, 2, 3, 4
DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH, DT_FLAGS_1 = 1, 5, 10, 14, 15, 29, 0x6FFFFFFB
STRING_TAGS = (DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH)
INTERESTING_TAGS = (0, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH, DT_FLAGS_1)
SHF_COMPRESSED = 0x800
