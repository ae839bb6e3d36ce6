"""The locks that keep two checkouts on one Engine from removing what the other is building on."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.custody import ownership
from harness.custody.enginelock import EngineLocks
from harness.custody.ledger import ROLE_STAGE, Ledger
from harness.custody.made import Made
from harness.custody.publish import publish

from .fakes import FakeEngine, _image


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


def test_making_an_image_is_one_at_a_time_per_name(tmp_path: Path) -> None:
    locks = EngineLocks.for_engine("engine-a", tmp_path)
    with locks.making("debian:bookworm"):
        acquired, release = _acquired_in_thread(lambda: locks.making("debian:bookworm"))
        assert not acquired.wait(0.3)
        other, release_other = _acquired_in_thread(lambda: locks.making("debian:trixie"))
        assert other.wait(5)  # another name is made at the same time
        release_other.set()
        with locks.building():  # nor does it hold up builds
            pass
    assert acquired.wait(5)
    release.set()


def test_two_engines_never_share_a_lock(tmp_path: Path) -> None:
    first, second = EngineLocks.for_engine("engine-a", tmp_path), EngineLocks.for_engine("engine-b", tmp_path)
    assert {first.cache_lock, first.tags_lock, first.making_lock("debian:bookworm")}.isdisjoint(
        {second.cache_lock, second.tags_lock, second.making_lock("debian:bookworm")}
    )
    with first.removing():
        with second.removing():
            pass


# --- the harness takes them where the races were ----------------------------------------


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A ledger for an Engine of its own: its locks (in the temporary folder, where every checkout finds them) are this test's."""
    ledger = Ledger.open(tmp_path, f"TEST:{uuid.uuid4()}")
    yield ledger
    locks = EngineLocks.for_engine(ledger.engine_id)
    for path in (locks.cache_lock, locks.tags_lock):
        path.unlink(missing_ok=True)


def _in_thread(work: Callable[[], object]) -> threading.Event:
    done = threading.Event()

    def run() -> None:
        work()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done


def test_moving_a_public_tag_waits_for_the_other_checkout_moving_it(ledger: Ledger) -> None:
    engine = FakeEngine(images={"ns/07:b-mine": dataclasses.replace(_image(10), image_id="sha256:mine")})
    made = Made(ledger, "session", "ns")
    with EngineLocks.for_engine(ledger.engine_id).tagging():
        done = _in_thread(lambda: publish(engine, made, "sha256:mine", "ns/07:b-mine", "ns/07:b", lambda line: None))
        assert not done.wait(0.3)
        assert "ns/07:b" not in engine.images and "ns/07:b-mine" in engine.images
    assert done.wait(5)
    assert engine.images["ns/07:b"].image_id == "sha256:mine" and "ns/07:b-mine" not in engine.images


def test_removing_images_waits_for_the_builds_in_progress(ledger: Ledger) -> None:
    engine = FakeEngine()
    ledger.record_image("sha256:old", ROLE_STAGE, ("ns/07:b",), "ns")
    engine.images["ns/07:b"] = dataclasses.replace(_image(10), image_id="sha256:old")
    with EngineLocks.for_engine(ledger.engine_id).building():
        done = _in_thread(lambda: ownership.clean(engine, ledger, ownership.Scope(namespace="ns")))
        assert not done.wait(0.3)
        assert engine.removed == []
    assert done.wait(5)
    assert engine.removed == ["sha256:old"]


def test_an_interrupted_runs_containers_go_at_once_whatever_builds_are_under_way(ledger: Ledger) -> None:
    removed: list[str] = []
    engine = FakeEngine()
    engine.remove_container = removed.append  # type: ignore[method-assign]
    container = ownership.Removal("container", "c-ours", (), True, "its own session label")
    with EngineLocks.for_engine(ledger.engine_id).building():
        done = _in_thread(lambda: ownership.apply(engine, ledger, (container,)))
        assert done.wait(5)  # no image goes, so it does not wait for the build
    assert removed == ["c-ours"]


def test_a_runs_own_sweep_does_not_wait_for_another_checkouts_build(ledger: Ledger) -> None:
    """The end-of-run sweep leaves its images in the ledger, for the next sweep, rather than wait minutes for a build."""
    engine = FakeEngine()
    ledger.record_image("sha256:old", ROLE_STAGE, ("ns/07:b",), "ns")
    engine.images["ns/07:b"] = dataclasses.replace(_image(10), image_id="sha256:old")
    with EngineLocks.for_engine(ledger.engine_id).building():
        done = _in_thread(lambda: ownership.clean(engine, ledger, ownership.Scope(namespace="ns"), wait=False))
        assert done.wait(5)
        assert engine.removed == [] and ledger.read().image("sha256:old") is not None
    ownership.clean(engine, ledger, ownership.Scope(namespace="ns"), wait=False)  # no build now: it goes
    assert engine.removed == ["sha256:old"] and ledger.read().image("sha256:old") is None


def test_a_removal_that_must_wait_says_so(ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    locks = EngineLocks.for_engine(ledger.engine_id)
    with locks.building():
        acquired, release = _acquired_in_thread(locks.removing)
        assert not acquired.wait(0.3)
    assert acquired.wait(5)
    release.set()
    assert "waiting for the builds in progress on this Engine" in caplog.text
