"""The locks that keep two checkouts on one Engine from removing what the other is building on."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

from harness.enginelock import EngineLocks


def _acquired_in_thread(hold: Callable[[], contextlib.AbstractContextManager[None]]) -> tuple[threading.Event, threading.Event]:
    """Start a thread that takes `hold()`; the first event is set once it holds it, the second releases it."""
    acquired, release = threading.Event(), threading.Event()

    def run() -> None:
        with hold():
            acquired.set()
            release.wait(10)

    threading.Thread(target=run, daemon=True).start()
    return acquired, release


def test_builds_share_the_cache_lock(tmp_path: Path) -> None:
    locks = EngineLocks.for_engine("engine-a", tmp_path)
    with locks.building():
        acquired, release = _acquired_in_thread(locks.building)
        assert acquired.wait(5)
        release.set()


def test_a_removal_waits_for_the_builds_in_progress(tmp_path: Path) -> None:
    locks = EngineLocks.for_engine("engine-a", tmp_path)
    with locks.building():
        acquired, release = _acquired_in_thread(locks.removing)
        assert not acquired.wait(0.3)
    assert acquired.wait(5)
    release.set()


def test_a_build_waits_for_a_removal_in_progress(tmp_path: Path) -> None:
    locks = EngineLocks.for_engine("engine-a", tmp_path)
    with locks.removing():
        acquired, release = _acquired_in_thread(locks.building)
        assert not acquired.wait(0.3)
    assert acquired.wait(5)
    release.set()


def test_moving_a_tag_is_one_at_a_time_and_independent_of_builds(tmp_path: Path) -> None:
    locks = EngineLocks.for_engine("engine-a", tmp_path)
    with locks.tagging():
        acquired, release = _acquired_in_thread(locks.tagging)
        assert not acquired.wait(0.3)
        with locks.removing():  # a different lock: tagging never waits for builds
            pass
    assert acquired.wait(5)
    release.set()


def test_two_engines_never_share_a_lock(tmp_path: Path) -> None:
    first, second = EngineLocks.for_engine("engine-a", tmp_path), EngineLocks.for_engine("engine-b", tmp_path)
    assert {first.cache_lock, first.tags_lock}.isdisjoint({second.cache_lock, second.tags_lock})
    with first.removing():
        with second.removing():
            pass
