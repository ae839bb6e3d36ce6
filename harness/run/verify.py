"""Judging a run against what its stage expects.  Pure: no Engine here."""

from __future__ import annotations

from harness.records.engine import RunResult
from harness.records.report import Outcome
from harness.stages.stage import Expectation


def judge(expect: Expectation, observed: RunResult) -> tuple[Outcome, str | None]:
    """PASS when the run did what `expect` says, else FAIL with the reason in one line."""
    if observed.timed_out:
        return Outcome.FAIL, observed.error or "timed out"
    if expect.stdout is not None:
        if observed.error is not None:
            return Outcome.FAIL, f"expected {expect.stdout!r} but the container did not start: {observed.error}"
        if observed.exit_code != 0:
            return Outcome.FAIL, f"expected {expect.stdout!r} but it exited with code {observed.exit_code}"
        if observed.stdout != expect.stdout:
            return Outcome.FAIL, f"expected stdout {expect.stdout!r}, got {observed.stdout[:200]!r}"
        return Outcome.PASS, None
    failed = observed.error is not None or observed.exit_code != 0
    if not failed:
        return Outcome.FAIL, f"expected a failure with {expect.failure!r}, but it exited 0"
    # Case aside: the same ENOENT is "no such file or directory" from runc and, under emulation, "Could not
    # open '/lib/ld-linux-aarch64.so.1': No such file or directory" from qemu-user, which did start.
    if str(expect.failure).casefold() not in observed.failure_text().casefold():
        return Outcome.FAIL, f"failed, but without {expect.failure!r}: {observed.failure_text()[:300]!r}"
    return Outcome.PASS, None
