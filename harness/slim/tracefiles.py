"""Which files of the source image a traced run needs, and the noise it made, each shown with its reason.

A trace names paths as the container saw them; this reads them against the
unpacked source image: a path that is there is copied (with the links on its
way), a program that ran brings its ELF closure (or, for a script, its
interpreter's), a folder is copied as a folder, never with everything below it.
What is not copied is kept as noise, by kind, so that a report can show it.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from harness.elf import Resolver, RootFS
from harness.elf.errors import ElfError
from harness.elf.reader import ELF_MAGIC
from harness.slim.tracelog import OUTPUT, PREFIX, Access, TracedRun

log = logging.getLogger(__name__)


class Noise(enum.Enum):
    """Why a path the trace saw is not copied."""

    KERNEL = "kernel"  # /proc, /sys, /dev: the kernel's and the Engine's, never an image's
    ENGINE = "engine"  # /etc/hosts, /etc/resolv.conf, /etc/hostname: the Engine mounts its own
    ABSENT = "absent"  # ENOENT: the loader's and interpreters' search for files that are not there
    FAILED = "failed"  # another error (EACCES, ENOTDIR…)
    RUNTIME = "made at run time"  # not in the source image: written by the run (into a tmpfs)


_STRENGTH = (Access.EXECUTED, Access.OPENED, Access.LISTED, Access.PROBED)
KERNEL_TREES = (PurePosixPath("/proc"), PurePosixPath("/sys"), PurePosixPath("/dev"))
ENGINE_FILES = frozenset(PurePosixPath(p) for p in ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname"))


@dataclass(frozen=True)
class TracedFile:
    """A path to copy because a traced run reached it: how, and in which command."""

    path: PurePosixPath
    access: Access
    command: str


@dataclass(frozen=True)
class TracedOutcome:
    """How one traced run ended: a failing or stopped run may have missed what a good one needs."""

    command: str
    exit_code: int | None
    timed_out: bool

    def describe(self) -> str:
        if self.timed_out:
            return f"traced `{self.command}`: stopped at the time limit, what it touched until then is kept"
        return f"traced `{self.command}`: exit code {self.exit_code}"


@dataclass(frozen=True)
class TraceFindings:
    runs: tuple[TracedOutcome, ...]
    files: tuple[TracedFile, ...]  # each path once, with the strongest access (and its first command)
    elves: tuple[PurePosixPath, ...]  # programs that ran, whose ELF closure is copied too
    listed: tuple[PurePosixPath, ...]  # folders whose entries a run read
    noise: tuple[tuple[Noise, PurePosixPath], ...]  # each (kind, path) once

    def paths(self) -> tuple[PurePosixPath, ...]:
        return tuple(item.path for item in self.files)


def trace_findings(root_fs: RootFS, resolver: Resolver, runs: tuple[TracedRun, ...]) -> TraceFindings:
    """The files the runs need from the source image, their programs' closures, and the noise."""
    files: dict[PurePosixPath, TracedFile] = {}
    elves: dict[PurePosixPath, None] = {}
    listed: dict[PurePosixPath, None] = {}
    noise: dict[tuple[Noise, PurePosixPath], None] = {}
    commands: dict[PurePosixPath, str] = {}
    not_folders = _searched_as_folders(runs)

    def add(path: PurePosixPath, access: Access, command: str) -> None:
        known = files.get(path)
        if known is None or _STRENGTH.index(access) < _STRENGTH.index(known.access):
            files[path] = TracedFile(path, access, command)

    for run in runs:
        for event in run.log.events:
            path = event.path
            if path == PurePosixPath("/") or _under(path, (PREFIX, OUTPUT)):
                continue
            if _under(path, KERNEL_TREES):
                noise.setdefault((Noise.KERNEL, path))
                continue
            if path in ENGINE_FILES:
                noise.setdefault((Noise.ENGINE, path))
                continue
            if event.access is None:
                if event.errno is not None:
                    noise.setdefault((Noise.ABSENT if event.errno == "ENOENT" else Noise.FAILED, path))
                continue
            found = root_fs.resolve(path)
            if found is None:
                noise.setdefault((Noise.RUNTIME, path))
                continue
            if event.access is Access.PROBED and found.is_file and path in not_folders:
                noise.setdefault((Noise.FAILED, path))  # looked for as a folder (a search path), and is none
                continue
            for item in found.files:
                add(item, event.access, run.label)
            if event.access is Access.LISTED and not found.is_file:
                listed.setdefault(found.real)
            if event.access is Access.EXECUTED and found.is_file:
                elf, passed = _programs(root_fs, found.real)
                for item in passed:
                    add(item, Access.EXECUTED, run.label)
                if elf is not None:
                    elves.setdefault(elf)
                    commands.setdefault(elf, run.label)
    for program in elves:
        try:
            closure = resolver.resolve(program, strict=False)
        except ElfError as error:
            # It ran, so the kernel and its loader took it; what they loaded the trace saw opened.
            log.warning("%s: its ELF closure cannot be read, the trace alone says what it loaded: %s", program, error)
            continue
        for item in closure.files:
            add(item, Access.EXECUTED, commands[program])
    outcomes = tuple(TracedOutcome(run.label, run.result.exit_code, run.result.timed_out) for run in runs)
    return TraceFindings(outcomes, tuple(files.values()), tuple(elves), tuple(listed), tuple(noise))


def _searched_as_folders(runs: tuple[TracedRun, ...]) -> set[PurePosixPath]:
    """Paths a run looked into as folders and found none: the parents of every path that failed with ENOTDIR.

    The loader checks each folder of a RUNPATH exists, then opens the library
    in it: node's `$ORIGIN/x86_64` is `/usr/bin/x86_64`, util-linux's link to
    setarch, which the check finds and the open then fails under.
    """
    return {parent for run in runs for event in run.log.events if event.errno == "ENOTDIR" for parent in event.path.parents}


def unexercised(root_fs: RootFS, findings: TraceFindings, copied: Iterable[PurePosixPath]) -> tuple[PurePosixPath, ...]:
    """The entries of every listed folder that the image does not get: the paths a run saw but did not use."""
    have = set(copied)
    found = []
    for folder in findings.listed:
        for name in root_fs.listdir(folder):
            path = folder / name
            if path not in have:
                found.append(path)
    return tuple(sorted(set(found)))


def _programs(fs: RootFS, program: PurePosixPath) -> tuple[PurePosixPath | None, list[PurePosixPath]]:
    """The ELF file an execve of `program` ran (itself, or a script's interpreter through `#!` chains),
    and the paths the kernel opened on its way there: each interpreter with the links to it."""
    passed: list[PurePosixPath] = []
    current = program
    for _ in range(4):  # the kernel follows at most four levels of #!
        try:
            with open(fs.host_path(current), "rb") as handle:
                head = handle.read(256)
        except OSError:
            return None, passed
        if head.startswith(ELF_MAGIC):
            return current, passed
        if not head.startswith(b"#!"):
            return None, passed
        words = head[2:].split(b"\n", 1)[0].split()
        found = fs.resolve(PurePosixPath(words[0].decode("utf-8", "surrogateescape"))) if words else None
        if found is None or not found.is_file:
            return None, passed
        passed += found.files
        current = found.real
    return None, passed


def _under(path: PurePosixPath, trees: Iterable[PurePosixPath]) -> bool:
    return any(path == tree or tree in path.parents for tree in trees)


def render_findings(
    findings: TraceFindings, traced_only: Iterable[PurePosixPath], missed: tuple[PurePosixPath, ...], *, listed: int = 20
) -> list[str]:
    """What only the trace brought (`traced_only`), by command; the noise by kind, with examples;
    and the paths no run used in the folders a run listed (pure)."""
    lines = [run.describe() for run in findings.runs]
    wanted = set(traced_only)
    commands: dict[str, list[TracedFile]] = {}
    for item in findings.files:
        if item.path in wanted:
            commands.setdefault(item.command, []).append(item)
    for command, items in commands.items():
        lines.append(f"traced, not found by the resolver, by `{command}` ({len(items)}):")
        lines += [f"  {item.access.value:<8} {item.path}" for item in items[:listed]]
        if len(items) > listed:
            lines.append(f"  … and {len(items) - listed} more")
    for kind in Noise:
        paths = [path for noise, path in findings.noise if noise is kind]
        if paths:
            shown = ", ".join(map(str, paths[:3])) + (", …" if len(paths) > 3 else "")
            lines.append(f"not copied, {kind.value}: {len(paths)} paths ({shown})")
    if missed:
        lines.append(
            f"listed by a run but never opened, not copied ({len(missed)}; add with --extra if a path "
            "the runs did not exercise needs them):"
        )
        lines += [f"  {path}" for path in missed[:listed]]
        if len(missed) > listed:
            lines.append(f"  … and {len(missed) - listed} more")
    return lines
