"""The other runtimes on a real Engine: each goes from a naive image to a scratch image that prints hello!,
and each scratch image holds nothing the program does not need.

"Needs" is measured, not listed: the ELF closure of the command's program,
resolved in the scratch image itself; the files the command names; and, for
an interpreter, the files it loads while running the program, as it reports
them itself under `-v` in a locked-down container of the scratch image.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pytest

from harness.custody.made import Made
from harness.elf import Resolver
from harness.engine import DockerEngine
from harness.layers import EntryKind, read_save
from harness.layers.layertar import LayerEntry
from harness.layers.unpack import ChunkStream
from harness.records.engine import RunPolicy
from harness.records.report import DEFAULT_RUNTIME, Outcome, RunReport, StageResult
from harness.run.imagefs import unpacked_image
from harness.slim.pkgmeta import DOC, STATUS_D
from harness.stages.dockerfile import instructions
from harness.stages.stage import Stage, discover, load_stage

from .conftest import REPO_ROOT

pytestmark = pytest.mark.docker

# `python3 -v` names every file it reads code from, and every extension module it loads.
PYTHON_LOADED = re.compile(r"^# (?:code object from|extension module '[^']+' loaded from) '(?P<path>[^']+)'$")


def is_scratch(stage: Stage) -> bool:
    """The stage's image starts from nothing: a resolver-made image, or a Dockerfile whose last FROM is scratch."""
    if stage.slim is not None:
        return True
    froms = [i.arguments.split()[0] for i in instructions(stage.dockerfile.read_text()) if i.keyword == "FROM"]
    return froms[-1] == "scratch"


RUNTIME_STAGES = [stage for stage in map(load_stage, discover(REPO_ROOT / "stages")) if stage.runtime != DEFAULT_RUNTIME]
SCRATCH_STAGES = [stage for stage in RUNTIME_STAGES if is_scratch(stage)]


def measured(ladder: RunReport, name: str) -> StageResult:
    result = ladder.stage(name)
    assert result is not None and result.image is not None and result.size_bytes is not None, name
    return result


RUNTIMES = sorted({stage.runtime for stage in RUNTIME_STAGES})
# How many times smaller than its naive image each scratch image must be: five
# for every runtime (Node.js's closure alone is libnode and ICU's data, 80MB),
# twenty where the runtime's ladder has always done better.
TIMES_SMALLER = {"go": 20, "rust": 20, "python": 20}


def test_every_runtime_of_the_ladder_is_checked() -> None:
    assert set(RUNTIMES) >= {"go", "rust", "python", "cpp", "node", "java", "ruby"}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_each_runtime_goes_from_a_naive_image_to_a_scratch_image_that_prints_hello(ladder: RunReport, runtime: str) -> None:
    stages = [stage for stage in RUNTIME_STAGES if stage.runtime == runtime]
    naive = [stage for stage in stages if not is_scratch(stage)]
    scratch = [stage for stage in stages if is_scratch(stage)]
    assert naive and scratch, f"{runtime}: a naive stage and a scratch stage"
    for stage in stages:
        result = measured(ladder, stage.name)
        assert result.outcome is Outcome.PASS, (stage.name, result.reason)
        assert result.observed is not None and result.observed.stdout == "hello!\n", stage.name
    naive_size = measured(ladder, naive[0].name).size_bytes or 0
    for stage in scratch:
        assert (measured(ladder, stage.name).size_bytes or 0) * TIMES_SMALLER.get(runtime, 5) < naive_size, stage.name


def test_python_in_scratch_is_under_25_mb_and_silent_on_stderr(ladder: RunReport) -> None:
    scratch, installed = measured(ladder, "42-python-scratch"), measured(ladder, "41-python-one-layer")
    assert (scratch.size_bytes or 0) < 25_000_000
    # debian:bookworm with python3: about 160MB; the ratio, not the figure, is what holds across releases.
    assert (installed.size_bytes or 0) > 5 * (scratch.size_bytes or 0)
    assert scratch.observed is not None and scratch.observed.stderr == ""


def saved_entries(engine: DockerEngine, image: str) -> list[LayerEntry]:
    """Every entry of the image's layers, read from the Engine's save stream.

    Not from an exported container, which adds the Engine's own /etc/hosts, /.dockerenv and the like.
    """
    saved = read_save(ChunkStream(engine.save_image(image)), wire=False)
    entries = [entry for layer in saved.layers for entry in layer.entries]
    assert not [entry for entry in entries if entry.kind in (EntryKind.WHITEOUT, EntryKind.OPAQUE)], "built from scratch"
    return entries


def image_entries(engine: DockerEngine, image: str) -> set[PurePosixPath]:
    """Every file and symlink the image's layers hold (folders left out)."""
    return {PurePosixPath(entry.path) for entry in saved_entries(engine, image) if entry.kind is not EntryKind.DIR}


def regular_files(engine: DockerEngine, image: str) -> dict[PurePosixPath, str]:
    """Each regular file of the image's layers, and its content's digest."""
    return {PurePosixPath(e.path): e.digest for e in saved_entries(engine, image) if e.kind is EntryKind.FILE}


def is_metadata(path: PurePosixPath) -> bool:
    """A file a [slim] image carries for SBOM scanners and the licences: dpkg's record, a copyright file."""
    return path.is_relative_to(STATUS_D) or path.is_relative_to(DOC)


def test_the_resolver_copies_the_cpp_files_picked_by_hand_and_their_packages_record(
    ladder: RunReport, engine: DockerEngine
) -> None:
    hand, resolved = measured(ladder, "51-cpp-hand-picked"), measured(ladder, "52-cpp-scratch")
    assert hand.image is not None and resolved.image is not None
    picked, found = regular_files(engine, hand.image), regular_files(engine, resolved.image)
    metadata = {path for path in found if is_metadata(path)}
    # The same bytes (libstdc++, libm, libgcc_s, libc, the loader, the program), under /usr/lib where Debian keeps them.
    assert sorted(picked.values()) == sorted(digest for path, digest in found.items() if path not in metadata)
    assert resolved.scanner is not None and resolved.scanner.packages == ("libc6", "libgcc-s1", "libstdc++6")
    # What the two images' sizes differ by is that record (and /lib's and /lib64's symlinks): within 1% without it.
    program = (resolved.size_bytes or 0) - (resolved.scanner.metadata_bytes or 0)
    assert abs(program / (hand.size_bytes or 1) - 1) <= 0.01


def python_loaded_files(engine: DockerEngine, image: str, stage: Stage, made: Made) -> set[PurePosixPath]:
    """The files the interpreter reads code from while running the stage's command, as `-v` reports them."""
    interpreter, *arguments = stage.command
    result = engine.run(
        image,
        (interpreter, "-v", *arguments),
        RunPolicy(timeout_s=stage.timeout_s, user=stage.user),
        made.container_labels(),
    )
    assert result.exit_code == 0 and result.stdout == "hello!\n" and not result.truncated, result
    return {PurePosixPath(m["path"]) for line in result.stderr.splitlines() if (m := PYTHON_LOADED.match(line))}


def files_under(root: Path, extra: PurePosixPath) -> set[PurePosixPath]:
    """An extra as the image holds it: the file, or every file and symlink under the folder."""
    host = root / extra.relative_to("/")
    if not host.is_dir() or host.is_symlink():
        return {extra}
    return {PurePosixPath("/", path.relative_to(root)) for path in host.rglob("*") if path.is_symlink() or not path.is_dir()}


def is_elf(root: Path, path: PurePosixPath) -> bool:
    host = root / path.relative_to("/")
    if host.is_symlink() or not host.is_file():
        return False
    with host.open("rb") as file:
        return file.read(4) == b"\x7fELF"


# A traced image also holds what its run opened, which no ELF header names
# (test_trace_docker checks the tracer itself); the test below is for the others.
TRACED_STAGES = [stage for stage in SCRATCH_STAGES if stage.slim is not None and stage.slim.trace]
CLOSURE_STAGES = [stage for stage in SCRATCH_STAGES if stage not in TRACED_STAGES]


@pytest.mark.parametrize("stage", TRACED_STAGES, ids=lambda stage: stage.name)
def test_a_traced_scratch_image_runs_as_quietly_as_its_source(ladder: RunReport, stage: Stage) -> None:
    # An interpreter missing a file it opens as it starts (RubyGems, an encoding) warns on stderr, and goes on.
    result = measured(ladder, stage.name)
    assert result.observed is not None and result.observed.stdout == "hello!\n" and result.observed.stderr == ""


@pytest.mark.parametrize("stage", CLOSURE_STAGES, ids=lambda stage: stage.name)
def test_the_scratch_image_holds_no_file_the_program_does_not_need(
    ladder: RunReport, engine: DockerEngine, stage: Stage, made: Made
) -> None:
    image = measured(ladder, stage.name).image
    assert image is not None
    loaded = python_loaded_files(engine, image, stage, made) if stage.runtime == "python" else set()
    # The loader of the image follows its LD_LIBRARY_PATH (Java's names the folder of libjvm.so), so the resolver does.
    env = dict(engine.image_origin(image).env)
    with unpacked_image(engine, image, made.container_labels()) as root:
        resolver = Resolver(root, env.get("LD_LIBRARY_PATH", "").split(":") if env.get("LD_LIBRARY_PATH") else ())
        needed = set(resolver.resolve(stage.command[0]).files)
        # The files the command names: a script, or each file of a folder (Java's class path).
        for argument in stage.command[1:]:
            if argument.startswith("/"):
                needed |= files_under(root, PurePosixPath(argument))
        for path in loaded:
            needed.add(path)
            if path.suffix == ".so":  # an extension module loads its own libraries
                needed |= set(resolver.resolve(path).files)
        # What the stage names besides (a runtime's folder): each file, and each ELF file's closure.
        for extra in stage.slim.extras if stage.slim else ():
            for path in files_under(root, extra):
                needed.add(path)
                if is_elf(root, path):
                    needed |= set(resolver.resolve(path).files)
    entries = image_entries(engine, image)
    # Besides what the program needs, a [slim] image carries its packages' metadata, for SBOM scanners.
    metadata = {path for path in entries if is_metadata(path)}
    assert all(path.parent in (STATUS_D, DOC) or path.name == "copyright" for path in metadata), metadata
    assert bool(metadata) == (stage.slim is not None and stage.slim.metadata)
    assert entries - metadata == needed
    if stage.runtime == "python":
        # The modules came from the interpreter, not from a list: hello.py imports nothing,
        # so what it loads is the start-up's encodings and site's customisation.
        assert {path.name for path in loaded} >= {"__init__.pyc", "aliases.pyc", "utf_8.pyc"}
        assert all(path.suffix in (".pyc", ".so") for path in loaded)
