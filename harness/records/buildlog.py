"""What a build's output says: which instruction it is at, and whether every step came from the cache.

The one place that reads the builder's text (the API's classic build stream,
or Podman's buildah speaking the same API); the engine feeds `BuildOutput`
each decoded chunk of the stream, and it feeds `BuildSteps` each line.
Another builder's output is another dialect here, tested beside the others
in tests/test_engine_dialects.py, not edits across the engine.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.records.engine import BuildRecord
from harness.records.errors import BuildFailed, BuildTimedOut
from harness.records.redact import redact

LOG_TAIL_LINES = 15


class BuildSteps:
    """Which instruction a build stream is at, and whether every step so far came from the cache.

    Two dialects reach the API.  The Engine's classic builder writes
    `Step 2/5 : RUN make` and, for a step it runs, `---> Running in <id>`.
    Podman's (buildah) writes `STEP 2/5: RUN make`, with `[1/2] ` before it in a
    multi-stage build, and `--> Using cache <id>` after a step it did not run:
    there a step is built unless that line follows it (a FROM is never built).
    """

    def __init__(self) -> None:
        self.instruction = "(before the first instruction)"
        self.started = 0  # how many steps have begun: a step's time limit starts again with each
        self._cached = True
        self._unconfirmed = False  # a buildah step with no `Using cache` line yet

    def feed(self, line: str) -> None:
        text = line.strip()
        step = _BUILDAH_STEP.match(text)
        if step is not None:
            self._settle()
            self.started += 1
            self.instruction = step["instruction"]
            self._unconfirmed = not self.instruction.upper().startswith("FROM ")
        elif text.startswith("--> Using cache"):
            self._unconfirmed = False
        elif line.startswith("Step "):
            self.started += 1
            self.instruction = line.partition(" : ")[2] or line
        elif text.startswith("---> Running in"):
            self._cached = False

    @property
    def fully_cached(self) -> bool:
        self._settle()
        return self._cached

    def _settle(self) -> None:
        if self._unconfirmed:
            self._cached = False
            self._unconfirmed = False


_BUILDAH_STEP = re.compile(r"^(?:\[\d+/\d+\] )?STEP \d+(?:/\d+)?: (?P<instruction>.+)$")
# Either dialect's step line, for a person following the build: `Step 2/5 : RUN make`, `[1/2] STEP 2/5: RUN make`.
_ANY_STEP = re.compile(r"^(?:\[\d+/\d+\] )?(?:Step|STEP) (?P<number>\d+(?:/\d+)?) ?: (?P<instruction>.+)$")


def step_of(line: str) -> str | None:
    """`step 2/5: RUN make` if `line` starts a build step (either dialect), else None."""
    found = _ANY_STEP.match(line.strip())
    return None if found is None else f"step {found['number']}: {found['instruction']}"


# The image a step committed: ` ---> 5555cccc6666` (classic builder), `--> 9dc655b956e` (buildah).
_IMAGE_LINE = re.compile(r"^-{2,3}> (?P<id>[0-9a-f]{11,64})$")
_CACHED_LINE = re.compile(r"^-{2,3}> Using cache\b")
# The classic builder's step container: ` ---> Running in <id>`, then, once the step is committed,
# `Removing intermediate container <id>` (Engine 20.10) or ` ---> Removed intermediate container <id>` (later).
_RUNNING_LINE = re.compile(r"^---> Running in (?P<id>[0-9a-f]{12,64})$")
_REMOVED_LINE = re.compile(r"^(?:---> )?Remov(?:ing|ed) intermediate container (?P<id>[0-9a-f]{12,64})$")


@dataclass
class StageTops:
    """The last image of each stage of a multi-stage build, and whether this build made it, read from its output.

    Each step ends with the image it committed, in both dialects: ` ---> <id>`
    (classic) or `--> <id>` (buildah), after ` ---> Using cache` / `--> Using
    cache <id>` when the step came from the cache.  The image printed right
    after a `FROM` is the base, no stage's own.  A compile stage's last image
    is what a later stage copies from: the run keeps it under a tag of its own,
    so that it and its build cache survive the end-of-run sweep.  Of these, the
    ones whose step ran in this build are this build's; a cache hit is an
    earlier build's (this checkout's, which recorded it then, or another's,
    which must keep it).  A failed or stopped build's last committed image is
    this build's too, and so is the container of the step it was cut off in
    (`step_container`), which an Engine killed mid-build keeps.
    """

    tops: list[str | None] = field(default_factory=list)  # per stage: its last step's image, None while it has none
    ran: list[bool] = field(default_factory=list)  # per stage: whether that step ran in this build
    step_container: str | None = None  # a step's container not yet removed by the builder (classic builder only)
    _after_from: bool = False
    _cached: bool = False

    def read(self, line: str) -> None:
        text = line.strip()
        if (running := _RUNNING_LINE.match(text)) is not None:
            self.step_container = running["id"]
        elif (removed := _REMOVED_LINE.match(text)) is not None and removed["id"] == self.step_container:
            self.step_container = None
        found = _ANY_STEP.match(text)
        if found is not None:
            self._after_from = found["instruction"].upper().startswith("FROM ")
            if self._after_from:
                self.tops.append(None)
                self.ran.append(False)
            self._cached = False
        elif _CACHED_LINE.match(text):
            self._cached = True
        elif (image := _IMAGE_LINE.match(text)) is not None and self.tops and not self._after_from:
            self.tops[-1], self.ran[-1] = image["id"], not self._cached

    def compile_tops(self) -> tuple[str | None, ...]:
        """Each stage's last image but the final stage's (the build's answer), in stage order."""
        return tuple(self.tops[:-1])

    def made(self, finished: bool) -> tuple[str, ...]:
        """The images this build committed that its answer does not name: the compile stages' it ran, and, when it
        did not finish, the last step's."""
        stages = range(len(self.tops) if not finished else len(self.tops) - 1)
        return tuple(dict.fromkeys(top for index in stages if (top := self.tops[index]) is not None and self.ran[index]))


class BuildOutput:
    """A build's decoded stream, chunk by chunk: the image it made, its last lines, and the error that ends it."""

    def __init__(self, stage: str, on_line: Callable[[str], None] | None = None) -> None:
        self.stage = stage
        self.on_line = on_line
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self.steps = BuildSteps()
        self.image_id = ""

    def read(self, chunk: dict[str, Any]) -> None:
        if "error" in chunk:
            reason = redact(str(chunk.get("errorDetail", {}).get("message") or chunk["error"]).strip())
            raise self.failed(reason)
        self.image_id = _aux_id(chunk) or self.image_id
        for line in str(chunk.get("stream", "")).splitlines():
            if not line.strip():
                continue
            self.tail.append(redact(line.rstrip()))
            if self.on_line is not None:
                self.on_line(line.rstrip())
            self.steps.feed(line)

    def failed(self, reason: str) -> BuildFailed:
        return BuildFailed(self.stage, self.steps.instruction, tuple(self.tail), reason)

    def timed_out(self, limit_s: float) -> BuildTimedOut:
        return BuildTimedOut(self.stage, self.steps.instruction, tuple(self.tail), limit_s)

    def record(self, seconds: float) -> BuildRecord:
        """The build's record, once its stream has ended; BuildFailed if it named no image."""
        if not self.image_id:
            raise self.failed("the Engine reported no image id")
        return BuildRecord(image_id=self.image_id, seconds=seconds, fully_cached=self.steps.fully_cached)


def _aux_id(chunk: dict[str, Any]) -> str | None:
    aux = chunk.get("aux")
    return str(aux["ID"]) if isinstance(aux, dict) and "ID" in aux else None
