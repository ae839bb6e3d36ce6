"""The resolver against `ldd` run in the image itself, on every dynamic ELF file under its /usr.

Shared by the builder image of this machine's architecture (test_resolver_vs_ldd)
and the arm64 one, whose `ldd` runs under emulation (test_arm64).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.custody.made import Made
from harness.elf import Resolver, RootFS
from harness.elf.corpus import LddResult, dynamic_elf_files, parse_ldd_output
from harness.engine import DockerEngine
from harness.records.engine import RunPolicy
from harness.run.imagefs import unpacked_image

CHUNK = 150
LDD_LOOP = 'for f in "$@"; do echo "== $f"; ldd "$f" 2>&1; done'


@dataclass(frozen=True)
class LddComparison:
    files: int  # dynamic ELF files found under /usr
    loader: dict[str, LddResult]  # what ldd said of each
    disagreements: list[tuple[str, list[str], list[str]]]  # (file, paths only one side found, sonames only one side missed)


def compare_with_ldd(engine: DockerEngine, image: str, made: Made, timeout_s: float) -> LddComparison:
    """Run `ldd` on the image's dynamic ELF files in locked-down containers of it; resolve each from the unpacked image."""
    with unpacked_image(engine, image, made.container_labels()) as root:
        paths = [str(path) for path in dynamic_elf_files(root)]
        fs = RootFS(root)

        def realpath(path: str) -> str:
            found = fs.resolve(path)
            return str(found.real) if found else path

        loader: dict[str, LddResult] = {}
        for start in range(0, len(paths), CHUNK):
            chunk = paths[start : start + CHUNK]
            result = engine.run(
                image,
                ("/bin/sh", "-c", LDD_LOOP, "sh", *chunk),
                RunPolicy(timeout_s=timeout_s, user="65534:65534", output_cap_bytes=8 * 1024 * 1024),
                made.container_labels(stage="ldd"),
            )
            assert not result.truncated and not result.timed_out and result.error is None
            loader.update(parse_ldd_output(result.stdout, chunk, realpath))

        resolver = Resolver(root)
        disagreements = []
        for path, expected in loader.items():
            closure = resolver.resolve(path, strict=False)
            ours_found = frozenset(realpath(str(real)) for real in closure.real_paths())
            ours_missing = frozenset(soname for soname, _ in closure.missing)
            if (ours_found, ours_missing) != (expected.found, expected.missing):
                disagreements.append((path, sorted(ours_found ^ expected.found), sorted(ours_missing ^ expected.missing)))
    return LddComparison(len(paths), loader, disagreements)
