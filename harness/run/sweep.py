"""`invoke sweep`'s run: the Debian-based stages on each of several Debian releases, one after another."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

from harness.records.engine import Engine
from harness.records.report import RunReport
from harness.records.settings import Progress, Settings
from harness.render.sweep import is_debian_based
from harness.run.pipeline import run_stages


def parse_bases(text: str) -> tuple[str, ...]:
    """`debian:bullseye, debian:bookworm` -> the references, blanks dropped."""
    return tuple(ref.strip() for ref in text.split(",") if ref.strip())


def sweep_bases(engine: Engine, settings: Settings, bases: Sequence[str], progress: Progress) -> tuple[RunReport, ...]:
    """One report per base, of the stages whose every base follows the release (scratch-only stages have none)."""
    reports = []
    for base in bases:
        progress(f"== {base}")
        keep = functools.partial(is_debian_based, base=base)
        # Sizes only: the wire sizes are in RESULTS.md for the default base.
        reports.append(
            run_stages(engine, dataclasses.replace(settings, base=base, wire_size=False), progress=progress, keep=keep)
        )
    return tuple(reports)
