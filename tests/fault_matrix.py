"""Run every test marked `fault` and print the fault matrix: fault, expected, observed, held.

    .venv/bin/python -m tests.fault_matrix      (or: .venv/bin/invoke faults)

Each fault test carries `@pytest.mark.fault("what goes wrong", "what the user must see")`;
the observed column is the test's own verdict, so the table cannot say more than the tests prove.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from tabulate import tabulate


@dataclass(frozen=True)
class Row:
    fault: str
    expected: str
    observed: str
    held: bool


class FaultCollector:
    """A pytest plugin that records each fault test's marker and outcome."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self._markers: dict[str, tuple[str, str]] = {}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            marker = item.get_closest_marker("fault")
            if marker is not None:
                variant = f" ({item.callspec.id})" if hasattr(item, "callspec") else ""
                self._markers[item.nodeid] = (str(marker.args[0]) + variant, str(marker.args[1]))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid not in self._markers or (report.when != "call" and report.passed):
            return
        fault, expected = self._markers.pop(report.nodeid)
        if report.passed:
            observed = "as expected"
        elif report.skipped:
            observed = f"skipped: {_first_line(report.longrepr)}"
        else:
            observed = f"{report.when} failed: {_first_line(report.longreprtext)}"
        self.rows.append(Row(fault, expected, observed, report.passed))


def _first_line(text: object) -> str:
    if isinstance(text, tuple):  # skip reports: (file, line, reason)
        text = text[-1]
    lines = [line.strip() for line in str(text).splitlines() if line.strip().startswith("E ")]
    return (lines[0][2:].strip() if lines else str(text).strip().splitlines()[-1])[:120]


def main() -> int:
    collector = FaultCollector()
    root = Path(__file__).resolve().parent
    code = pytest.main(["-q", "-p", "no:cacheprovider", "-m", "fault", str(root)], plugins=[collector])
    print()
    print(
        tabulate(
            [(row.fault, row.expected, row.observed, "yes" if row.held else "NO") for row in collector.rows],
            headers=("fault", "expected", "observed", "held"),
            tablefmt="github",
        )
    )
    held = sum(row.held for row in collector.rows)
    print(f"\n{held} of {len(collector.rows)} faults handled as expected")
    return 0 if code == 0 and held == len(collector.rows) and collector.rows else 1


if __name__ == "__main__":
    sys.exit(main())
