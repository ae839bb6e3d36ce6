"""Builds: a Dockerfile and its context sent to the Engine's build endpoint, its stream read as it comes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import BinaryIO

import docker.errors

from harness.engine.connection import Connection, converted, shut_down
from harness.engine.context import context_stream
from harness.records.buildlog import BuildOutput
from harness.records.engine import BuildContext, BuildRecord
from harness.records.errors import BuildTimedOut
from harness.stages.context import DOCKERFILE_NAME, labels_in_dockerfile


class Builds(Connection):
    def build(
        self,
        stage: str,
        context: BuildContext,
        *,
        tag: str,
        build_args: dict[str, str],
        labels: dict[str, str],
        no_cache: bool = False,
        on_line: Callable[[str], None] | None = None,
        platform: str | None = None,
        step_timeout_s: float | None = None,
    ) -> BuildRecord:
        """Build; a step that runs past `step_timeout_s` has its build cancelled, as an interrupt does (BuildTimedOut)."""
        output = BuildOutput(stage, on_line)
        started = time.monotonic()
        sent, labels = self._sent(context, labels)
        clock = StepClock(step_timeout_s, lambda: self._cancel_build(tag))
        with sent, converted(f"{stage}: build"), clock:
            try:
                stream = self._client.api.build(
                    fileobj=sent,  # streamed from the file, never read whole
                    custom_context=True,
                    dockerfile=DOCKERFILE_NAME,
                    tag=tag,
                    buildargs=build_args,
                    labels=labels,
                    rm=True,
                    forcerm=True,  # remove intermediate containers even when a step fails
                    nocache=no_cache,
                    pull=False,
                    decode=True,
                    # The Engine then refuses a base of another platform instead of building on it.
                    platform=platform,
                )
                for chunk in stream:
                    output.read(chunk)
                    clock.steps(output.steps.started)
                if clock.expired:
                    raise output.timed_out(clock.limit_s)
            except KeyboardInterrupt:
                # Closing the connection is what tells the Engine to cancel the build
                # (and, with forcerm, to remove the step's container).  Podman 4.3 does not
                # notice: it finishes the running step, then drops the build.
                self._client.api.close()
                raise
            except Exception as error:
                if clock.expired and not isinstance(error, BuildTimedOut):
                    # The connection shut down under the stream's reader: the step's time was up.
                    raise output.timed_out(clock.limit_s) from error
                if isinstance(error, docker.errors.APIError):
                    # The Engine refuses some Dockerfiles outright (a parse error, an unknown instruction).
                    raise output.failed(str(error.explanation or error)) from error
                raise
            finally:
                self._building.pop(tag, None)
        return output.record(time.monotonic() - started)

    def _sent(self, context: BuildContext, labels: dict[str, str]) -> tuple[BinaryIO, dict[str, str]]:
        """The context's stream and the labels the API is given: on Podman they travel in the Dockerfile."""
        sent = context_stream(context)
        if not self._is_podman or not labels:
            return sent, labels
        with sent:  # rewritten into a stream of its own
            return labels_in_dockerfile(sent, DOCKERFILE_NAME, labels), {}

    def _cancel_build(self, tag: str) -> None:
        response = self._building.get(tag)
        if response is not None:
            shut_down(response)


class StepClock:
    """Calls `cancel` once a build step has run for `limit_s` (None: never), from a thread of its own."""

    def __init__(self, limit_s: float | None, cancel: Callable[[], None], *, tick_s: float = 1.0) -> None:
        self.limit_s = limit_s or 0.0
        self.expired = False
        self._cancel = cancel
        self._tick_s = tick_s
        self._step = 0
        self._since = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="build step clock", daemon=True)

    def steps(self, started: int) -> None:
        """The build has begun `started` steps: a new one starts the clock again."""
        if started != self._step:
            self._step, self._since = started, time.monotonic()

    def __enter__(self) -> StepClock:
        if self.limit_s:
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(self._tick_s):
            if time.monotonic() - self._since > self.limit_s:
                self.expired = True
                self._cancel()
                return
