"""One run at a time per checkout.

Two `invoke all` in the same checkout would build the same tags and write
the same results; the second one refuses at once, naming the first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from harness.records.errors import HarnessError


class RunInProgress(HarnessError):
    """Another run holds the checkout's lock."""


@contextlib.contextmanager
def exclusive_run(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` for the duration of a run.

    `flock` locks die with their process, so a crashed or killed run never
    leaves a stale lock behind; the file itself is only a place to lock.
    """
    with open(lock_path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunInProgress(
                f"{lock_path}: another run is in progress in this checkout (pid {holder}); wait for it to finish, or stop it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
