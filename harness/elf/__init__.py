"""ELF dependency closures as glibc's ld.so resolves them, confined to a root file system.

resolver = Resolver(Path("/srv/rootfs"))
closure = resolver.resolve("/usr/bin/ls")
closure.files          # every link and file to copy into a scratch image
render_tree(closure)   # lddtree-like text
closure_dict(closure)  # JSON-able
"""

from harness.elf.closure import Resolver
from harness.elf.errors import (
    ElfError,
    FileMissing,
    MalformedELF,
    MissingLibraries,
    NotELF,
    RootEscape,
    SymlinkLoop,
    UnsupportedELF,
)
from harness.elf.model import Closure, Dependency, DlopenDependency
from harness.elf.reader import DlopenNote, ElfInfo, read_elf
from harness.elf.render import closure_dict, render_tree
from harness.elf.rootfs import Resolved, RootFS

__all__ = [
    "Closure",
    "Dependency",
    "DlopenDependency",
    "DlopenNote",
    "ElfError",
    "ElfInfo",
    "FileMissing",
    "MalformedELF",
    "MissingLibraries",
    "NotELF",
    "Resolved",
    "Resolver",
    "RootEscape",
    "RootFS",
    "SymlinkLoop",
    "UnsupportedELF",
    "closure_dict",
    "read_elf",
    "render_tree",
]
