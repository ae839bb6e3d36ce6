"""What a build's output says: which instruction it is at, and whether every step came from the cache.

The one place that reads the builder's text (the API's classic build stream,
or Podman's buildah speaking the same API); the engine feeds it each line.
Another builder's output is another dialect here, tested beside the others
in tests/test_engine_dialects.py, not edits across the engine.
"""

from __future__ import annotations

import re


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
        self._cached = True
        self._unconfirmed = False  # a buildah step with no `Using cache` line yet

    def feed(self, line: str) -> None:
        text = line.strip()
        step = _BUILDAH_STEP.match(text)
        if step is not None:
            self._settle()
            self.instruction = step["instruction"]
            self._unconfirmed = not self.instruction.upper().startswith("FROM ")
        elif text.startswith("--> Using cache"):
            self._unconfirmed = False
        elif line.startswith("Step "):
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
