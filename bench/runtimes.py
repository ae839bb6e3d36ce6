"""Each runtime's scratch image against its naive image, and the runtimes' size targets, from a real run's results.

    .venv/bin/python -m bench.runtimes [--results results]

Reads results.json as `invoke all` wrote it (sizes are the Engine's own) and
prints the runtime tables of RESULTS.md (every stage's size beside the
runtime's naive stage) and the anchors beside them, then each target beside
the reference it comes from.  Exit code 1 if a target is missed, so that it
can gate a pipeline.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from harness.records.report import Outcome, RunReport, StageResult
from harness.records.units import human_size, parse_size
from harness.render.markdown import anchors_section, runtime_sections
from harness.render.results import read_report

PYTHON_REFERENCE = (
    '"a Python hello in a scratch image: under 25 MB, where debian:bookworm with python3 installed is about '
    '160 MB; report both" (issue 7)'
)
RUNTIMES_REFERENCE = (
    "\"Java's scratch image < 50MB, each scratch image >= 5x smaller than its naive image; C++ within 1% of the "
    'hand-picked image" (issue 24)'
)
PYTHON_SCRATCH, PYTHON_INSTALLED = "42-python-scratch", "41-python-one-layer"
PYTHON_TARGET, PYTHON_INSTALLED_REFERENCE = parse_size("25MB"), parse_size("160MB")
JAVA_SCRATCH, JAVA_TARGET = "72-java-jlink-scratch", parse_size("50MB")
# (naive, scratch) of each runtime issue 24 added.
NAIVE_AND_SCRATCH = (
    ("50-cpp-naive", "52-cpp-scratch"),
    ("60-node-naive", "62-node-scratch"),
    ("70-java-naive", "72-java-jlink-scratch"),
    ("80-ruby-naive", "81-ruby-scratch"),
)
TIMES_SMALLER = 5
CPP_HAND_PICKED, CPP_RESOLVED, CPP_TOLERANCE = "51-cpp-hand-picked", "52-cpp-scratch", 0.01


@dataclass(frozen=True)
class Target:
    image: str
    measured: str
    reference: str
    met: bool | None  # None: shown for comparison, not a target


def _size(stage: StageResult | None) -> str:
    if stage is None or stage.size_bytes is None:
        return "–"
    return f"{human_size(stage.size_bytes)} ({stage.size_bytes:,} B)"


def _passed(stage: StageResult | None) -> int | None:
    """The stage's headline size if it passed, else None: a failed image meets no target."""
    return stage.size_bytes if stage and stage.outcome is Outcome.PASS and stage.size_bytes else None


def python_targets(report: RunReport) -> list[Target]:
    scratch, installed = report.stage(PYTHON_SCRATCH), report.stage(PYTHON_INSTALLED)
    size, installed_size = _passed(scratch), _passed(installed)
    targets = [
        Target(f"`{PYTHON_SCRATCH}`", _size(scratch), f"< {human_size(PYTHON_TARGET)}", bool(size and size < PYTHON_TARGET)),
        Target(f"`{PYTHON_INSTALLED}`", _size(installed), f"about {human_size(PYTHON_INSTALLED_REFERENCE)}", None),
    ]
    if size and installed_size:
        implied = PYTHON_INSTALLED_REFERENCE / PYTHON_TARGET
        ratio = installed_size / size
        targets.append(
            Target(
                f"`{PYTHON_INSTALLED}` ÷ `{PYTHON_SCRATCH}`", f"{ratio:.1f}x", f"160MB ÷ 25MB = {implied:.1f}x", ratio > implied
            )
        )
    return targets


def runtime_targets(report: RunReport) -> list[Target]:
    java = report.stage(JAVA_SCRATCH)
    java_size = _passed(java)
    targets = [
        Target(f"`{JAVA_SCRATCH}`", _size(java), f"< {human_size(JAVA_TARGET)}", bool(java_size and java_size < JAVA_TARGET))
    ]
    for naive_name, scratch_name in NAIVE_AND_SCRATCH:
        naive, scratch = _passed(report.stage(naive_name)), _passed(report.stage(scratch_name))
        ratio = naive / scratch if naive and scratch else None
        measured = "–" if ratio is None else f"{ratio:.1f}x"
        targets.append(
            Target(f"`{naive_name}` ÷ `{scratch_name}`", measured, f">= {TIMES_SMALLER}x", bool(ratio and ratio >= TIMES_SMALLER))
        )
    return targets + cpp_targets(report)


def cpp_targets(report: RunReport) -> list[Target]:
    """The resolver's C++ image against the hand-picked one: its program files, then the whole image.

    The whole image also holds the packages' dpkg metadata and copyright files
    (for SBOM scanners and the licences), which the hand-picked image leaves
    out; the files the program runs with are the comparison the target makes.
    """
    hand, resolved = report.stage(CPP_HAND_PICKED), report.stage(CPP_RESOLVED)
    hand_size, resolved_size = _passed(hand), _passed(resolved)
    metadata = resolved.scanner.metadata_bytes if resolved and resolved.scanner else None
    if not (hand_size and resolved_size and metadata is not None):
        return [Target(f"`{CPP_RESOLVED}` ÷ `{CPP_HAND_PICKED}`", "–", f"within {CPP_TOLERANCE:.0%}", False)]
    program = (resolved_size - metadata) / hand_size
    whole = resolved_size / hand_size
    return [
        Target(
            f"`{CPP_RESOLVED}` less its metadata ÷ `{CPP_HAND_PICKED}`",
            f"{program:.4f}",
            f"within {CPP_TOLERANCE:.0%}",
            abs(program - 1) <= CPP_TOLERANCE,
        ),
        Target(
            f"`{CPP_RESOLVED}` ÷ `{CPP_HAND_PICKED}`, with {metadata:,} B of metadata", f"{whole:.4f}", "for comparison", None
        ),
    ]


def _verdict(met: bool | None) -> str:
    return "for comparison" if met is None else "met" if met else "NOT met"


def _print_targets(reference: str, targets: list[Target]) -> None:
    print(f"\nReference: {reference}")
    rows = [(t.image, t.measured, t.reference, _verdict(t.met)) for t in targets]
    print(tabulate(rows, headers=("image", "measured", "reference", "verdict"), tablefmt="github", disable_numparse=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent.parent / "results")
    args = parser.parse_args()
    report = read_report(args.results)
    print(f"Base {report.base}, {report.engine.describe()}, from {args.results / 'results.json'}\n")
    print("\n\n".join([*runtime_sections(report), *anchors_section(report)]))
    python, runtimes = python_targets(report), runtime_targets(report)
    _print_targets(PYTHON_REFERENCE, python)
    _print_targets(RUNTIMES_REFERENCE, runtimes)
    return 0 if all(t.met is not False for t in python + runtimes) else 1


if __name__ == "__main__":
    sys.exit(main())
