"""Fuzz harness.elf's resolver with structurally mutated ELF files: nothing may get out.

    .venv/bin/python -m tests.elf.fuzz_elf [--inputs 10000] [--seed N] [--per-input-seconds 2] [--workers 2]

Every input must end in a Closure or one harness.elf.ElfError within the time
bound: another exception is a crash, running out of time a hang, exceeding the
address-space limit (RLIMIT_AS) shows up as a MemoryError crash.  Seeds are
compiled with gcc into a temporary root (a dynamic executable, a shared
library with DT_NEEDED / DT_RUNPATH / DT_SONAME and a .note.dlopen, a static
executable, an executable with its own interpreter) plus the host's /bin/true
and two hand-made ELFCLASS32 objects (little and big endian).  Input i is a
function of (--seed, i) only: rerun with the same seed to reproduce; each
crashing or hanging input is also saved under --save-dir.

Workers run in child processes.  Each input runs under an ITIMER_REAL alarm
(the traceback of a hang shows where it looped) and the parent kills a worker
silent for longer than the bound plus a grace, counting the input as a hang.
Per-input memory is the tracemalloc peak of Python allocations.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import os
import random
import resource
import shutil
import signal
import tempfile
import time
import traceback
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harness.elf import Closure, ElfError, Resolver
from tests.elf.fuzz_mutate import mutate
from tests.elf.fuzz_seeds import INTERP, LIB, MAIN, build_root, build_seeds

ADDRESS_SPACE_LIMIT = 4 << 30  # bytes of virtual memory a worker may map
GRACE_SECONDS = 5.0


class Hang(BaseException):
    """Raised by the per-input alarm; a BaseException so that no `except Exception` swallows it."""


@dataclass(frozen=True)
class Case:
    """Input `index`: which seed, where the mutant goes, what is resolved."""

    index: int
    seed: str
    mode: str
    with_dlopen: bool
    blob: bytes
    mutations: tuple[str, ...]


def make_case(master: int, index: int, seeds: dict[str, bytes]) -> Case:
    rng = random.Random(master * 1_000_003 + index)
    name = rng.choice(sorted(seeds))
    blob, applied = mutate(rng, seeds[name])
    mode = rng.choices(["main", "lib", "both", "interp"], weights=[45, 30, 15, 10])[0]
    return Case(index, name, mode, rng.random() < 0.5, blob, tuple(applied))


def place(root: Path, case: Case, seeds: dict[str, bytes], defaults: dict[str, bytes]) -> str:
    """Write the mutant where `case.mode` says; the other mutable paths get their default contents."""
    where = {"main": (MAIN,), "lib": (LIB,), "both": (MAIN, LIB), "interp": (INTERP,)}[case.mode]
    for inside, default in defaults.items():
        (root / inside.lstrip("/")).write_bytes(case.blob if inside in where else default)
    return {"main": MAIN, "both": MAIN, "lib": "/usr/bin/usesfuzz", "interp": "/usr/bin/ownrtld"}[case.mode]


def run_case(root: Path, target: str, case: Case) -> tuple[str, str, str]:
    """(outcome, class name, traceback): outcome is result, error, crash or hang."""
    try:
        closure = Resolver(root).resolve(target, strict=False, with_dlopen=case.with_dlopen)
        if not isinstance(closure, Closure):
            return ("crash", "NotAClosure", f"resolve returned {type(closure).__name__}")
        return ("result", "Closure", "")
    except ElfError as error:
        message = str(error)
        if "\n" in message:
            return ("crash", "MultiLineElfError", message)
        return ("error", type(error).__name__, "")
    except Hang:
        return ("hang", "Hang", traceback.format_exc())
    except Exception as error:  # noqa: BLE001 - anything else is what the fuzzer looks for
        return ("crash", type(error).__name__, traceback.format_exc())


def _alarm(_signum: int, _frame: object) -> None:
    raise Hang()


def worker(
    conn: multiprocessing.connection.Connection,
    indices: list[int],
    master: int,
    seeds: dict[str, bytes],
    base_root: Path,
    per_input: float,
) -> None:
    """Run inputs `indices` in a private copy of the root, reporting each one over `conn`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = ADDRESS_SPACE_LIMIT if hard == resource.RLIM_INFINITY else min(ADDRESS_SPACE_LIMIT, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    root = Path(tempfile.mkdtemp(prefix="fuzzroot-"))
    build_root(root, seeds)
    defaults = {inside: (base_root / inside.lstrip("/")).read_bytes() for inside in (MAIN, LIB, INTERP)}
    signal.signal(signal.SIGALRM, _alarm)
    logging.disable(logging.CRITICAL)  # malformed notes are logged as warnings: expected, and noisy
    tracemalloc.start()
    try:
        for index in indices:
            case = make_case(master, index, seeds)
            target = place(root, case, seeds, defaults)
            conn.send(("start", index))
            tracemalloc.reset_peak()
            started = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, per_input)
            try:
                outcome = run_case(root, target, case)
            except Hang:  # the alarm fired between the try blocks
                outcome = ("hang", "Hang", traceback.format_exc())
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            elapsed = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
            conn.send(("done", index, *outcome, elapsed, peak))
    finally:
        shutil.rmtree(root, ignore_errors=True)
        conn.send(("rss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
        conn.close()


@dataclass
class Tally:
    outcomes: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    crashes: list[tuple[int, str, str]] = field(default_factory=list)
    hangs: list[tuple[int, str]] = field(default_factory=list)
    max_time: tuple[float, int] = (0.0, -1)
    max_peak: tuple[int, int] = (0, -1)
    max_rss: int = 0


def save(save_dir: Path, master: int, index: int, seeds: dict[str, bytes], what: str, text: str) -> Path:
    case = make_case(master, index, seeds)
    save_dir.mkdir(parents=True, exist_ok=True)
    path = save_dir / f"{what}-seed{master}-input{index}.elf"
    path.write_bytes(case.blob)
    path.with_suffix(".txt").write_text(
        f"seed file {case.seed}, mode {case.mode}, with_dlopen {case.with_dlopen}\nmutations {list(case.mutations)}\n\n{text}\n"
    )
    return path


def fuzz(inputs: int, master: int, per_input: float, workers: int, save_dir: Path) -> Tally:
    with tempfile.TemporaryDirectory(prefix="fuzz-elf-") as scratch:
        work = Path(scratch) / "build"
        work.mkdir()
        seeds = build_seeds(work)
        base_root = Path(scratch) / "root"
        build_root(base_root, seeds)  # the reference copy; each worker builds its own
        pool = _Pool(Run(master, seeds, base_root, per_input, save_dir))
        for shard in (list(range(k, inputs, workers)) for k in range(workers)):
            pool.spawn(shard)
        while pool.live:
            for conn in multiprocessing.connection.wait(list(pool.live), timeout=0.5):
                pool.receive(conn)  # type: ignore[arg-type]
            pool.kill_the_silent()
        return pool.tally


@dataclass(frozen=True)
class Run:
    """What every worker of one fuzzing run is given."""

    master: int
    seeds: dict[str, bytes]
    base_root: Path
    per_input: float
    save_dir: Path


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    remaining: list[int]
    current: int | None = None
    since: float = field(default_factory=time.monotonic)

    def rest(self) -> list[int]:
        """The inputs after the current one."""
        assert self.current is not None
        return self.remaining[self.remaining.index(self.current) + 1 :]


@dataclass
class _Pool:
    """The workers under way, each with its pipe, and the tally of what they reported."""

    run: Run
    tally: Tally = field(default_factory=lambda: Tally())
    live: dict[multiprocessing.connection.Connection, _Worker] = field(default_factory=dict)

    def spawn(self, remaining: list[int]) -> None:
        if not remaining:
            return
        context = multiprocessing.get_context("fork")
        parent, child = context.Pipe(duplex=False)
        run = self.run
        process = context.Process(
            target=worker, args=(child, remaining, run.master, run.seeds, run.base_root, run.per_input), daemon=True
        )
        process.start()
        child.close()
        self.live[parent] = _Worker(process, remaining)

    def receive(self, conn: multiprocessing.connection.Connection) -> None:
        state = self.live[conn]
        try:
            message = conn.recv()
        except EOFError:
            state.process.join()
            del self.live[conn]
            if state.current is not None:  # died mid-input: a crash of the interpreter itself
                code = state.process.exitcode
                self.tally.outcomes["crash"] += 1
                self.tally.crashes.append((state.current, f"WorkerDied(exit {code})", ""))
                self._save(state.current, "crash", f"worker died with exit code {code}")
                self.spawn(state.rest())
            return
        if message[0] == "start":
            state.current, state.since = message[1], time.monotonic()
        elif message[0] == "rss":
            self.tally.max_rss = max(self.tally.max_rss, message[1])
        else:
            state.current = None
            self._count(*message[1:])

    def _count(self, index: int, outcome: str, name: str, text: str, elapsed: float, peak: int) -> None:
        tally = self.tally
        tally.outcomes[outcome] += 1
        if outcome == "error":
            tally.errors[name] += 1
        elif outcome == "crash":
            tally.crashes.append((index, name, text))
            self._save(index, "crash", text)
        elif outcome == "hang":
            tally.hangs.append((index, text))
            self._save(index, "hang", text)
        tally.max_time = max(tally.max_time, (elapsed, index))
        tally.max_peak = max(tally.max_peak, (peak, index))

    def kill_the_silent(self) -> None:
        """A worker silent past the bound and a grace is killed, its input counted a hang, the rest respawned."""
        now = time.monotonic()
        for conn, state in list(self.live.items()):
            current = state.current
            if current is not None and now - state.since > self.run.per_input + GRACE_SECONDS:
                state.process.kill()
                state.process.join()
                self.tally.outcomes["hang"] += 1
                self.tally.hangs.append((current, "killed by the parent: no answer within the bound"))
                self.tally.max_time = max(self.tally.max_time, (now - state.since, current))
                self._save(current, "hang", "killed by the parent")
                del self.live[conn]
                conn.close()
                self.spawn(state.rest())

    def _save(self, index: int, what: str, text: str) -> None:
        save(self.run.save_dir, self.run.master, index, self.run.seeds, what, text)


def report(tally: Tally, inputs: int, master: int, seconds: float, save_dir: Path) -> None:
    rows = [("inputs", inputs), ("results (Closure)", tally.outcomes["result"]), ("clean ElfErrors", tally.outcomes["error"])]
    rows += [(f"  {name}", count) for name, count in tally.errors.most_common()]
    rows += [
        ("crashes (other exceptions)", tally.outcomes["crash"]),
        ("hangs", tally.outcomes["hang"]),
        ("not run (worker failure)", inputs - sum(tally.outcomes.values())),
        ("max time per input", f"{tally.max_time[0] * 1000:.1f} ms (input {tally.max_time[1]})"),
        ("max traced memory per input", f"{tally.max_peak[0] / 1024:.0f} KiB (input {tally.max_peak[1]})"),
        ("max worker RSS", f"{tally.max_rss / 1048576:.0f} MiB (limit {ADDRESS_SPACE_LIMIT >> 30} GiB of address space)"),
        ("wall clock", f"{seconds:.1f} s"),
        ("seed", master),
    ]
    width = max(len(label) for label, _ in rows)
    print(f"{'':-<{width + 30}}")
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print(f"{'':-<{width + 30}}")
    for index, name, text in tally.crashes[:5]:
        print(f"\ncrash on input {index} ({name}):\n{text}")
    for index, text in tally.hangs[:3]:
        print(f"\nhang on input {index}:\n{text}")
    if tally.crashes or tally.hangs:
        print(f"failing inputs saved under {save_dir}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--per-input-seconds", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=max(1, min(os.cpu_count() or 1, 2)))
    parser.add_argument("--save-dir", type=Path, default=Path(tempfile.gettempdir()) / "fuzz_elf_failures")
    args = parser.parse_args()
    started = time.perf_counter()
    tally = fuzz(args.inputs, args.seed, args.per_input_seconds, args.workers, args.save_dir)
    report(tally, args.inputs, args.seed, time.perf_counter() - started, args.save_dir)
    complete = sum(tally.outcomes.values()) == args.inputs
    return 1 if tally.crashes or tally.hangs or not complete else 0


if __name__ == "__main__":
    raise SystemExit(main())
