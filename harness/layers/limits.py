"""The CI verdict on an image's layers: `invoke layers --max-dead BYTES --min-efficiency X`.  Pure."""

from __future__ import annotations

from dataclasses import dataclass

from harness.layers.analysis import ImageAnalysis


@dataclass(frozen=True)
class Limits:
    max_dead_bytes: int | None = None  # more dead bytes than this fails
    min_efficiency: float | None = None  # a dive efficiency below this fails (0 to 1)

    @classmethod
    def parse(cls, max_dead: str | None, min_efficiency: str | None) -> Limits:
        """From the command line's text; ValueError if either is not a number."""
        return cls(None if max_dead is None else int(max_dead), None if min_efficiency is None else float(min_efficiency))


def exceeded(analysis: ImageAnalysis, limits: Limits) -> tuple[str, ...]:
    """Every limit the image passes, each as one line of evidence; empty when it keeps them all."""
    failures = []
    if limits.max_dead_bytes is not None and analysis.dead_bytes > limits.max_dead_bytes:
        failures.append(f"{analysis.dead_bytes:,} dead bytes > --max-dead {limits.max_dead_bytes:,}")
    if limits.min_efficiency is not None and analysis.efficiency < limits.min_efficiency:
        failures.append(f"efficiency {analysis.efficiency:.4f} < --min-efficiency {limits.min_efficiency}")
    return tuple(failures)
