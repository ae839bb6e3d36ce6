"""What a run is doing now, for a person to follow: each stage under way, its current step, and for how long.

A run's lines (a stage's result, a base's bootstrap) go through `StatusBoard.say`.
On a terminal the board keeps a block of status lines under them, one per
stage under way, redrawn as a stage moves on and every second for the clocks;
a line said is written above the block.  Elsewhere (a pipe, a CI log) nothing
is redrawn: when the run has been quiet for `heartbeat_s`, one line says what
is still running, so a long build never looks like a hang.

The board is told what happens (`begin`, `doing`, `end`) from the run's
threads, and it draws from a ticker thread of its own: every method takes its
lock.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

HEARTBEAT_S = 30.0
TICK_S = 1.0


@dataclass
class Activity:
    """One stage under way: when it began, and what it is doing now."""

    stage: str
    began: float
    doing: str = "starting"


class StatusBoard:
    def __init__(
        self,
        out: TextIO | None,
        *,
        live: bool = False,
        heartbeat_s: float = HEARTBEAT_S,
        clock: Callable[[], float] = time.monotonic,
        width: Callable[[], int] = lambda: shutil.get_terminal_size().columns,
    ) -> None:
        self._out = out
        self.live = live
        self._heartbeat_s = heartbeat_s
        self._clock = clock
        self._width = width
        self._lock = threading.RLock()
        self._under_way: dict[str, Activity] = {}
        self._drawn = 0  # lines of the block now on the screen
        self._quiet_since = clock()
        self._finished = 0
        self._began = clock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._handlers: list[logging.Handler] = []

    @classmethod
    def for_terminal(cls, out: TextIO = sys.stdout) -> StatusBoard:
        """Live on a terminal that can redraw; heartbeat lines anywhere else."""
        return cls(out, live=out.isatty() and _can_redraw())

    @classmethod
    def silent(cls) -> StatusBoard:
        """A board that writes nothing: for runs no person watches (tests, library calls)."""
        return cls(None)

    def say(self, line: str) -> None:
        """A line of the run's output, written above the block."""
        with self._lock:
            if self._out is None:
                return
            self._erase()
            self._out.write(line + "\n")
            self._quiet_since = self._clock()
            self._draw()
            self._out.flush()

    def begin(self, stage: str) -> None:
        with self._lock:
            self._under_way[stage] = Activity(stage, self._clock())
            self._draw()

    def doing(self, stage: str, what: str) -> None:
        """What `stage` does now: a build step, running its program, reading its layers."""
        with self._lock:
            activity = self._under_way.get(stage)
            if activity is not None and activity.doing != what:
                activity.doing = what
                self._draw()

    def end(self, stage: str) -> None:
        with self._lock:
            if self._under_way.pop(stage, None) is not None:
                self._finished += 1
            self._draw()

    def tick(self) -> None:
        """Redraw the clocks (live), or say what is still running after a quiet spell (not live)."""
        with self._lock:
            if self._out is None:
                return
            if self.live:
                self._draw()
            elif self._under_way and self._clock() - self._quiet_since >= self._heartbeat_s:
                self.say(self.still_running())

    def still_running(self) -> str:
        with self._lock:
            now = self._clock()
            parts = [f"{a.stage} ({_elapsed(now - a.began)}: {a.doing})" for a in self._sorted()]
            return "still running: " + "; ".join(parts)

    def block(self) -> list[str]:
        """The live block's lines: a head line, then one per stage under way, each cut to the terminal's width."""
        with self._lock:
            now = self._clock()
            width = max(self._width(), 20) - 1
            head = f"  {self._finished} done, {len(self._under_way)} under way, {_elapsed(now - self._began)}"
            lines = [head] + [f"  > {a.stage} {_elapsed(now - a.began):>6}  {a.doing}" for a in self._sorted()]
            return [line[:width] for line in lines]

    def __enter__(self) -> StatusBoard:
        if self._out is not None:
            self._ticker = threading.Thread(target=self._tick_until_stopped, name="status-board", daemon=True)
            self._ticker.start()
        if self.live:
            # A warning written straight to the terminal would land inside the block: while it is drawn,
            # log records are said above it like any other line.
            root = logging.getLogger()
            self._handlers, root.handlers = root.handlers, [_SaidHandler(self, root.handlers)]
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._handlers:
            logging.getLogger().handlers = self._handlers
        with self._lock:
            self._erase()

    def _tick_until_stopped(self) -> None:
        while not self._stop.wait(TICK_S):
            self.tick()

    def _sorted(self) -> list[Activity]:
        return sorted(self._under_way.values(), key=lambda a: a.stage)

    def _draw(self) -> None:
        if self._out is None or not self.live:
            return
        self._erase()
        if self._under_way:
            lines = self.block()
            self._out.write("\n".join(lines) + "\n")
            self._drawn = len(lines)
        self._out.flush()

    def _erase(self) -> None:
        if self._drawn and self._out is not None:
            # Up to the block's first line, then clear to the end of the screen.
            self._out.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0


class _SaidHandler(logging.Handler):
    """Log records said on the board, formatted as the handlers it stands in for would."""

    def __init__(self, board: StatusBoard, replaced: list[logging.Handler]) -> None:
        super().__init__()
        self.board = board
        formatter = next((h.formatter for h in replaced if h.formatter is not None), None)
        self.setFormatter(formatter or logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.setLevel(min((h.level for h in replaced), default=logging.NOTSET))

    def emit(self, record: logging.LogRecord) -> None:
        self.board.say(self.format(record))


def _elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60}:{seconds % 60:02d}"


def _can_redraw() -> bool:
    return os.environ.get("TERM", "dumb") not in ("dumb", "")
