"""Run a program in its source image under strace, brought in from outside, and read what it touched.

Why strace under ptrace, not fanotify as slimtoolkit also does: fanotify watches
a mount from the host, which needs CAP_SYS_ADMIN there and an Engine on this
machine; ptrace of a process's own children needs no capability at all under
the Engine's default seccomp profile (ptrace is allowed from kernel 4.8 on), so
the traced container keeps every lock of a stage run: no network, read-only
root, every capability dropped, no-new-privileges, memory, pids and time limits.

Why brought in: the tracer must not depend on what the source image holds.
The host's own `strace` and its ELF closure, found by the project's resolver,
go into a read-only volume under a private prefix, flat (each library under its
soname) and run through their own loader with `--library-path`: nothing of the
source image is loaded into the tracer, and nothing of the tracer's into the
program (`--library-path` is the loader's option, not an environment variable).
"""

from __future__ import annotations

import io
import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harness.elf import Resolver
from harness.elf.reader import read_elf
from harness.records.engine import OUTPUT_FOLDER, Engine, Instrumentation, RunPolicy
from harness.records.errors import HarnessError
from harness.slim.tracelog import OUTPUT, PREFIX, TracedRun, parse

log = logging.getLogger(__name__)

HOST_STRACE = PurePosixPath("/usr/bin/strace")
# -f follows every child; -ff gives each process its own file, so no line is split
# by another's `<unfinished ...>`; -y prints the path behind each file descriptor
# (the working folder too), so every path is absolute from its line alone;
# -qq drops attach and exit notes; -I2 lets SIGTERM at the time limit stop the
# tracer cleanly (with -o, strace would otherwise block it) so its files are complete.
STRACE_OPTIONS = ("-f", "-ff", "-y", "-qq", "-I2", "-e", "trace=%file,getdents,getdents64", "-e", "signal=none")


class TraceError(HarnessError):
    """A tracer that cannot be brought in, or a traced run that gives nothing to read."""


class TracerOfAnotherArchitecture(TraceError):
    """The image is of another architecture than this machine's tracer, and no emulator here runs its programs."""


@dataclass(frozen=True)
class TracerBundle:
    """The tracer's files, flat, as they go into the traced container under PREFIX."""

    files: tuple[tuple[str, Path], ...]  # name under PREFIX, file on this machine
    loader: str  # its name under PREFIX
    program: str
    machine: str  # e_machine: an image of another architecture is traced through its emulator, or not at all

    def archive(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, host in self.files:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = host.stat().st_size, 0o755, 0
                with open(host, "rb") as handle:
                    tar.addfile(info, handle)
        return buffer.getvalue()

    def command(self, program: tuple[str, ...]) -> tuple[str, ...]:
        """The traced run's command line: the tracer through its own loader, then the program."""
        return (
            str(PREFIX / self.loader),
            "--library-path",
            str(PREFIX / "lib"),
            str(PREFIX / self.program),
            *STRACE_OPTIONS,
            "-o",
            f"{OUTPUT}/{OUTPUT_FOLDER}/trace",
            "--",
            *program,
        )


def host_tracer(root: Path = Path("/"), program: PurePosixPath = HOST_STRACE) -> TracerBundle:
    """strace and its closure as the resolver finds them on this machine (`root`)."""
    resolver = Resolver(root)
    if not (root / str(program).lstrip("/")).exists():
        raise TraceError(f"{program}: no tracer on this machine (install Debian's strace)")
    closure = resolver.resolve(program)
    if closure.interpreter_real is None:
        raise TraceError(f"{program}: a static tracer has no loader to run it through; use a dynamic strace")
    files = [(f"lib/{dep.soname}", root / str(dep.real).lstrip("/")) for dep in closure.needed]
    files += [("ld.so", root / str(closure.interpreter_real).lstrip("/")), ("strace", root / str(closure.real).lstrip("/"))]
    machine = read_elf(root / str(closure.real).lstrip("/"), closure.real).machine
    return TracerBundle(tuple(files), "ld.so", "strace", str(machine))


def trace_run(
    engine: Engine, image: str, bundle: TracerBundle, command: tuple[str, ...], policy: RunPolicy, labels: dict[str, str]
) -> TracedRun:
    """Run `command` in `image` under the tracer, locked down as `policy` says.

    A run that fails or hits its time limit still gives what it touched until
    then: a probe that never exits is stopped at the limit and kept.
    """
    tools = Instrumentation(bundle.archive(), str(PREFIX), str(OUTPUT))
    run = engine.run_instrumented(image, bundle.command(command), policy, labels, tools)
    texts = {name: data.decode("utf-8", "surrogateescape") for name, data in run.outputs}
    if not texts:
        evidence = run.result.error or run.result.stderr.strip()[-500:] or f"exit code {run.result.exit_code}"
        raise TraceError(f"{image}: tracing {' '.join(command)}: the tracer wrote nothing: {evidence}")
    return TracedRun(command, run.result, parse(texts))


# ELF e_machine values as the Engine names the architecture of an image.
ELF_MACHINES = {"62": "amd64", "183": "arm64", "3": "386", "40": "arm", "21": "ppc64le", "22": "s390x", "243": "riscv64"}

# A traced run is a stage run with a tmpfs at /tmp (programs write there: `git init`) and
# more memory (strace keeps a table of every process).  30 s as `invoke slim`'s own run:
# a probe that never exits is stopped there, and what it touched until then is kept.
TRACE_MEMORY_BYTES = 256 * 1024 * 1024
TRACE_TIMEOUT_S = 30.0


def trace_commands(
    engine: Engine,
    image: str,
    commands: tuple[tuple[str, ...], ...],
    user: str,
    labels: dict[str, str],
    bundle: TracerBundle | None = None,
    timeout_s: float = TRACE_TIMEOUT_S,
    architecture: str | None = None,
    emulation: str | None = None,
) -> tuple[TracedRun, ...]:
    """Each command run in `image` under the tracer, one locked-down container each.

    `architecture`: the image's, as the Engine names it.  Of another than the tracer's, the image's
    programs run under emulation, and `emulation` says why they cannot here (None: they can).
    """
    bundle = bundle or host_tracer()
    machine = ELF_MACHINES.get(bundle.machine, f"e_machine {bundle.machine}")
    if architecture is not None and architecture != machine:
        if emulation is not None:
            raise TracerOfAnotherArchitecture(f"{image}: an {architecture} image, and the tracer here is {machine}: {emulation}")
        # The kernel starts the image's programs through a qemu of this machine's architecture (binfmt_misc):
        # the tracer follows qemu, whose system calls are the program's, on the same paths.
        log.info("%s: an %s image, traced through its emulator", image, architecture)
    policy = RunPolicy(timeout_s=timeout_s, user=user, memory_bytes=TRACE_MEMORY_BYTES, tmpfs=("/tmp",))
    runs = []
    for command in commands:
        run = trace_run(engine, image, bundle, command, policy, labels)
        how = "stopped at the time limit" if run.result.timed_out else f"exit code {run.result.exit_code}"
        log.info("%s: traced %s: %s, %d path events", image, run.label, how, len(run.log.events))
        runs.append(run)
    return tuple(runs)
