"""Each runtime's scratch image against its naive image, and the Python size target, from a real run's results.

    .venv/bin/python -m bench.runtimes [--results results]

Reads results.json as `invoke all` wrote it (sizes are the Engine's own) and
prints the runtime tables of RESULTS.md (every stage's size beside the
runtime's naive stage), then the targets beside the reference they come from.  Exit code 1 if a target is
missed, so that it can gate a pipeline.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tabulate import tabulate

from harness.records.report import Outcome, StageResult
from harness.records.units import human_size, parse_size
from harness.render.markdown import runtime_sections
from harness.render.results import read_report

REFERENCE = (
    '"a Python hello in a scratch image: under 25 MB, where debian:bookworm with python3 installed is about '
    '160 MB; report both" (issue 7)'
)
PYTHON_SCRATCH, PYTHON_INSTALLED = "42-python-scratch", "41-python-one-layer"
PYTHON_TARGET, PYTHON_INSTALLED_REFERENCE = parse_size("25MB"), parse_size("160MB")


def _size(stage: StageResult | None) -> str:
    if stage is None or stage.size_bytes is None:
        return "–"
    return f"{human_size(stage.size_bytes)} ({stage.size_bytes:,} B)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent.parent / "results")
    args = parser.parse_args()
    report = read_report(args.results)
    print(f"Base {report.base}, {report.engine.describe()}, from {args.results / 'results.json'}\n")
    print("\n\n".join(runtime_sections(report)))

    scratch, installed = report.stage(PYTHON_SCRATCH), report.stage(PYTHON_INSTALLED)
    met = bool(scratch and scratch.outcome is Outcome.PASS and scratch.size_bytes and scratch.size_bytes < PYTHON_TARGET)
    print(f"\nReference: {REFERENCE}")
    targets = [
        (f"`{PYTHON_SCRATCH}`", _size(scratch), f"< {human_size(PYTHON_TARGET)}", "met" if met else "NOT met"),
        (f"`{PYTHON_INSTALLED}`", _size(installed), f"about {human_size(PYTHON_INSTALLED_REFERENCE)}", "for comparison"),
    ]
    if scratch and installed and scratch.size_bytes and installed.size_bytes:
        ratio, implied = installed.size_bytes / scratch.size_bytes, PYTHON_INSTALLED_REFERENCE / PYTHON_TARGET
        verdict = "met" if ratio > implied else "NOT met"
        targets.append((f"`{PYTHON_INSTALLED}` ÷ `{PYTHON_SCRATCH}`", f"{ratio:.1f}x", f"160MB ÷ 25MB = {implied:.1f}x", verdict))
    print(tabulate(targets, headers=("image", "measured", "reference", "verdict"), tablefmt="github", disable_numparse=True))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
