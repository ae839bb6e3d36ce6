"""A build step past its time limit: the build's connection is shut down, and the stage fails as timed out (no Docker)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from harness.engine import DockerEngine
from harness.engine.build import StepClock
from harness.records.engine import BuildContext
from harness.records.errors import BuildTimedOut, StageConfigError
from harness.records.settings import Settings
from harness.run.pipeline import run_stages
from harness.stages.stage import DEFAULT_BUILD_TIMEOUT_S, load_stage

from .fakes import FakeEngine, _image
from .test_engine_dialects import FakeApi, FakeClient
from .test_stages import VALID, make_stage


@dataclass
class HangingApi(FakeApi):
    """A build whose second step never ends: its stream blocks until the connection is closed, then breaks."""

    closed: threading.Event = field(default_factory=threading.Event)

    def build(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.builds.append(kwargs)
        # What the session's response hook sees: the build's streamed response, closed to cancel it.
        response = SimpleNamespace(request=SimpleNamespace(url=f"http+docker://localhost/v1.41/build?t={kwargs['tag']}"))
        response.close = self.closed.set
        for hook in self.hooks["response"]:
            hook(response)
        yield {"stream": "Step 1/2 : FROM debian:bookworm\n"}
        yield {"stream": "Step 2/2 : RUN sleep 100000\n"}
        yield {"stream": " ---> Running in 1234abcd\n"}
        self.closed.wait(30)
        raise requests.exceptions.ChunkedEncodingError("Connection broken: the socket was shut down")


def test_a_step_past_its_limit_is_cancelled_and_named(tmp_path: Path) -> None:
    api = HangingApi()
    engine = DockerEngine(FakeClient("Engine", api=api))  # type: ignore[arg-type]
    context = BuildContext(tmp_path, "FROM debian:bookworm\nRUN sleep 100000\n")
    started = time.monotonic()
    with pytest.raises(BuildTimedOut) as raised:
        engine.build("99", context, tag="t:1", build_args={}, labels={}, step_timeout_s=0.5)
    assert api.closed.is_set() and time.monotonic() - started < 5
    assert raised.value.instruction == "RUN sleep 100000" and raised.value.limit_s == 0.5
    assert "99: build failed at `RUN sleep 100000`: timed out" in str(raised.value)
    assert "build_timeout" in str(raised.value) and "--build-timeout" in str(raised.value)


def test_the_clock_starts_again_with_each_step() -> None:
    cancelled: list[float] = []
    with StepClock(0.3, lambda: cancelled.append(time.monotonic()), tick_s=0.02) as clock:
        for step in range(1, 8):  # 7 steps of 0.1 s: 0.7 s in all, each well within 0.3
            clock.steps(step)
            time.sleep(0.1)
        assert not clock.expired and cancelled == []
        time.sleep(0.5)  # then one step that does not end
    assert clock.expired and len(cancelled) == 1
    with StepClock(None, lambda: cancelled.append(0.0)) as never:
        time.sleep(0.05)
    assert not never.expired and len(cancelled) == 1


def test_build_timeout_is_read_from_stage_toml_and_checked(tmp_path: Path) -> None:
    assert load_stage(make_stage(tmp_path / "stages", "01-a", VALID)).build_timeout_s == DEFAULT_BUILD_TIMEOUT_S
    assert load_stage(make_stage(tmp_path / "stages", "02-b", "build_timeout = 45\n" + VALID)).build_timeout_s == 45.0
    for bad in ("0", "-1", "true", '"30"', "100000"):
        with pytest.raises(StageConfigError, match="build_timeout"):
            load_stage(make_stage(tmp_path / "bad", f"03-{abs(hash(bad)) % 1000}", f"build_timeout = {bad}\n" + VALID))


def test_the_run_gives_each_stage_its_limit_and_the_option_overrides_them(tmp_path: Path) -> None:
    stages = tmp_path / "stages"
    make_stage(stages, "01-a", VALID)
    make_stage(stages, "02-b", "build_timeout = 45\n" + VALID)
    (tmp_path / "hello").mkdir()
    engine = FakeEngine(images={"debian:bookworm": _image(1)})
    run_stages(engine, Settings(tmp_path), progress=lambda line: None)
    assert [call["step_timeout_s"] for call in engine.build_calls] == [DEFAULT_BUILD_TIMEOUT_S, 45.0]
    engine.build_calls.clear()
    run_stages(engine, Settings(tmp_path, build_timeout_s=30.0), progress=lambda line: None)
    assert [call["step_timeout_s"] for call in engine.build_calls] == [30.0, 30.0]
