"""The status board: what a person sees of a run under way, on a terminal and in a log."""

from __future__ import annotations

import io
import logging
import re
import shutil
import threading
from pathlib import Path

import pytest

from harness.records.settings import Settings
from harness.run.pipeline import run_stages
from harness.statusboard import StatusBoard

from .conftest import REPO_ROOT
from .fakes import FakeEngine, _image

ESCAPE = re.compile(r"\x1b\[[0-9]*[A-Za-z]")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def screen(text: str) -> list[str]:
    """What a terminal shows after `text`: the lines, with the block's cursor-up-and-clear applied."""
    lines: list[str] = []
    for piece in re.split(r"(\x1b\[[0-9]*F\x1b\[J)", text):
        if (up := re.fullmatch(r"\x1b\[([0-9]*)F\x1b\[J", piece)) is not None:
            del lines[len(lines) - int(up[1]) :]
        else:
            lines.extend(piece.splitlines())
    return lines


def test_a_live_board_shows_each_stage_under_way_its_step_and_its_time() -> None:
    out, clock = io.StringIO(), Clock()
    board = StatusBoard(out, live=True, clock=clock, width=lambda: 200)
    board.begin("08-scratch-resolver")
    clock.now += 5
    board.begin("21-go-scratch")
    board.doing("08-scratch-resolver", "step 4/9: RUN apt-get install -y gcc")
    clock.now += 70
    board.tick()
    shown = screen(out.getvalue())
    assert shown[0] == "  0 done, 2 under way, 1:15"
    assert shown[1] == "  > 08-scratch-resolver   1:15  step 4/9: RUN apt-get install -y gcc"
    assert shown[2] == "  > 21-go-scratch   1:10  starting"
    assert len(shown) == 3  # every redraw replaced the last one


def test_a_line_said_lands_above_the_block_and_the_block_goes_when_the_stages_end() -> None:
    out, clock = io.StringIO(), Clock()
    board = StatusBoard(out, live=True, clock=clock, width=lambda: 200)
    board.begin("07-scratch-libs")
    board.say("07-scratch-libs: pass | 2,161,278 bytes")
    assert screen(out.getvalue())[0] == "07-scratch-libs: pass | 2,161,278 bytes"
    assert screen(out.getvalue())[-1].startswith("  > 07-scratch-libs")
    board.end("07-scratch-libs")
    board.say("done")
    assert screen(out.getvalue()) == ["07-scratch-libs: pass | 2,161,278 bytes", "done"]


def test_block_lines_are_cut_to_the_terminal_width() -> None:
    board = StatusBoard(io.StringIO(), live=True, width=lambda: 40)
    board.begin("31-rust-static")
    board.doing("31-rust-static", "step 3/6: RUN " + "x" * 100)
    assert all(len(line) <= 39 for line in board.block())


def test_off_a_terminal_a_quiet_run_says_what_is_still_running_and_never_redraws() -> None:
    out, clock = io.StringIO(), Clock()
    board = StatusBoard(out, live=False, heartbeat_s=30, clock=clock)
    board.tick()  # nothing under way: nothing to say
    board.begin("21-go-naive")
    board.doing("21-go-naive", "step 2/5: RUN apt-get install -y golang")
    clock.now += 29
    board.tick()
    assert out.getvalue() == ""  # not quiet for long enough
    clock.now += 1
    board.tick()
    assert out.getvalue() == "still running: 21-go-naive (30 s: step 2/5: RUN apt-get install -y golang)\n"
    board.tick()  # a line was just said: quiet again only 30 s from now
    board.say("21-go-naive: pass")
    clock.now += 29
    board.tick()
    assert out.getvalue().count("still running") == 1
    assert not ESCAPE.search(out.getvalue())


def test_a_silent_board_writes_nothing_and_a_ticker_stops_with_its_block() -> None:
    silent = StatusBoard.silent()
    with silent:
        silent.begin("01-naive")
        silent.say("anything")
    out = io.StringIO()
    before = threading.active_count()
    with StatusBoard(out, live=True) as board:
        board.begin("01-naive")
        assert "01-naive" in out.getvalue()
    assert threading.active_count() == before
    assert screen(out.getvalue()) == []


def test_a_warning_logged_while_the_block_is_drawn_lands_above_it() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    handlers = list(root.handlers)
    with StatusBoard(out, live=True) as board:
        board.begin("01-naive")
        logging.getLogger("harness.layers.cache").warning("a corrupt cache entry, recomputed")
        assert screen(out.getvalue())[0].endswith("a corrupt cache entry, recomputed")
    assert root.handlers == handlers


class RecordingBoard(StatusBoard):
    """A board that remembers what it was told, and how many stages were under way at once."""

    def __init__(self) -> None:
        super().__init__(None)
        self.told: list[tuple[str, str]] = []
        self.under_way: set[str] = set()
        self.most = 0

    def begin(self, stage: str) -> None:
        self.told.append((stage, "begin"))
        self.under_way.add(stage)
        self.most = max(self.most, len(self.under_way))

    def doing(self, stage: str, what: str) -> None:
        self.told.append((stage, what))

    def end(self, stage: str) -> None:
        self.told.append((stage, "end"))
        self.under_way.discard(stage)


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_run_tells_the_board_each_stage_s_steps_from_begin_to_end(tmp_path: Path, jobs: int) -> None:
    shutil.copytree(REPO_ROOT / "hello", tmp_path / "hello")
    shutil.copytree(REPO_ROOT / "stages", tmp_path / "stages")
    board = RecordingBoard()
    engine = FakeEngine(images={"debian:bookworm": _image(1), "debian:bookworm-slim": _image(1)})
    run_stages(engine, Settings(tmp_path, jobs=jobs), progress=lambda line: None, board=board)
    told = [what for stage, what in board.told if stage == "07-scratch-libs"]
    assert told[0] == "begin" and told[-1] == "end"
    assert "providing debian:bookworm" in told
    steps = [what.removeprefix("compile stage, ") for what in told if what.startswith(("step ", "compile stage, step "))]
    assert steps and steps[0].startswith("step 1/") and any("FROM scratch" in step for step in steps)
    assert told.index(f"compile stage, {steps[0]}") < told.index("running /hello") < told.index("reading its layers")
    # While a multi-stage build is in its compile stage, the board says so.
    assert any(what.startswith("compile stage, step 1/") for what in told)
    every = {stage for stage, what in board.told if what == "begin"}
    assert every == {stage for stage, what in board.told if what == "end"} == {p.name for p in (tmp_path / "stages").iterdir()}
    assert 1 <= board.most <= jobs
