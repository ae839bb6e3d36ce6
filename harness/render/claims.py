"""The tutorial's claims, checked against a run's measurements.  Pure."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

from harness.records.report import Outcome, RunReport, StageResult
from harness.records.units import human_size

SCRATCH_DYNAMIC_LIMIT = 100_000
SCRATCH_LIBS_LIMIT = 5_000_000
SHRINK_FACTOR = 100
MISSING_LOADER = "no such file or directory"


@dataclass(frozen=True)
class Claim:
    text: str
    holds: bool | None  # None: a stage it needs was not measured
    evidence: str

    @property
    def verdict(self) -> str:
        return {True: "holds", False: "does not hold", None: "not checked"}[self.holds]


def _find(report: RunReport, number: str) -> StageResult | None:
    """The stage whose name starts with `number-`, e.g. `07` finds `07-scratch-libs`."""
    return next((stage for stage in report.stages if stage.name.startswith(f"{number}-")), None)


def _size(stage: StageResult) -> str:
    return human_size(stage.size_bytes or 0)


def _need(report: RunReport, *numbers: str) -> tuple[StageResult, ...] | str:
    """The measured stages, or the reason the claim cannot be checked."""
    found = []
    for number in numbers:
        stage = _find(report, number)
        if stage is None:
            return f"no stage {number} in this run"
        if stage.size_bytes is None:
            return f"{stage.name} was not measured ({stage.outcome.value})"
        found.append(stage)
    return tuple(found)


def _check(report: RunReport, text: str, numbers: tuple[str, ...], test: Callable[..., tuple[bool, str]]) -> Claim:
    stages = _need(report, *numbers)
    if isinstance(stages, str):
        return Claim(text, None, stages)
    holds, evidence = test(*stages)
    return Claim(text, holds, evidence)


def _larger(purged: StageResult, naive: StageResult) -> tuple[bool, str]:
    grown = (purged.size_bytes or 0) - (naive.size_bytes or 0)
    return grown > 0, f"{_size(purged)} vs {_size(naive)} ({grown:+,} bytes)"


def _smaller(single: StageResult, naive: StageResult) -> tuple[bool, str]:
    saved = (naive.size_bytes or 0) - (single.size_bytes or 0)
    return saved > 0, f"{_size(single)} vs {_size(naive)} ({saved:,} bytes saved)"


def _fails_small(dynamic: StageResult) -> tuple[bool, str]:
    observed = dynamic.observed
    message = observed.failure_text().strip() if observed else "(not run)"
    failed = observed is not None and (observed.error is not None or observed.exit_code != 0)
    # Whatever its case, as verify.judge reads it: qemu-user says "No such file or directory" under emulation.
    failed = failed and MISSING_LOADER in message.casefold()
    small = (dynamic.size_bytes or 0) < SCRATCH_DYNAMIC_LIMIT
    return failed and small, f"{_size(dynamic)}; run: {message!r}"


def _runs_small(libs: StageResult) -> tuple[bool, str]:
    printed = libs.observed.stdout if libs.observed else ""
    ok = libs.outcome is Outcome.PASS and printed.strip() == "hello!"
    return ok and (libs.size_bytes or 0) < SCRATCH_LIBS_LIMIT, f"{_size(libs)}; printed {printed!r}"


def _shrunk(libs: StageResult, naive: StageResult) -> tuple[bool, str]:
    factor = (naive.size_bytes or 0) / max(libs.size_bytes or 1, 1)
    return factor > SHRINK_FACTOR, f"{_size(naive)} / {_size(libs)} = {factor:,.0f} times smaller"


def evaluate(report: RunReport) -> tuple[Claim, ...]:
    """Every claim the tutorial makes about its images, with the figures that decide it."""
    return (
        _check(report, "02 (purge in separate layers) is larger than 01", ("02", "01"), _larger),
        _check(report, "03 (one layer) is smaller than 01", ("03", "01"), _smaller),
        _check(
            report,
            f'06 fails with "{MISSING_LOADER}" and is under {human_size(SCRATCH_DYNAMIC_LIMIT)}',
            ("06",),
            _fails_small,
        ),
        _check(report, f"07 prints hello! and is under {human_size(SCRATCH_LIBS_LIMIT)}", ("07",), _runs_small),
        _check(report, f"07 is over {SHRINK_FACTOR} times smaller than 01", ("07", "01"), _shrunk),
    )


# Each report's claims, computed on first use and kept while the report lives: every renderer of one run
# (results.json, RESULTS.md, SWEEP.md) shows the same verdicts without checking them again.
_computed: dict[int, tuple[weakref.ref[RunReport], tuple[Claim, ...]]] = {}


def claims_of(report: RunReport) -> tuple[Claim, ...]:
    """`evaluate(report)`, once per report.  A report read back from results.json is a new report: the file's
    copy of the claims is never trusted."""
    known = _computed.get(id(report))
    if known is not None and known[0]() is report:
        return known[1]
    key = id(report)
    claims = evaluate(report)
    _computed[key] = (weakref.ref(report, lambda _: _computed.pop(key, None)), claims)
    return claims
