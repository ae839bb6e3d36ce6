"""The packages a scanner sees: read from dpkg's status file and status.d, recorded per stage, shown in RESULTS.md."""

from __future__ import annotations

import dataclasses

from harness.layers.declared import is_metadata, packages_in
from harness.records.layers import ScannerView
from harness.render.markdown import render_markdown
from harness.render.results import from_dict, to_dict

from .test_report import ladder

STATUS = """\
Package: libc6
Status: install ok installed
Version: 2.36

Package: old-tool
Status: deinstall ok config-files
Version: 1.0
"""


def test_the_status_files_installed_packages_and_every_status_d_package_are_seen() -> None:
    assert packages_in([(False, STATUS)]) == ("libc6",)
    assert packages_in([(True, "Package: zlib1g\nVersion: 1:1.2.13\n"), (False, STATUS)]) == ("libc6", "zlib1g")
    assert packages_in([]) == ()


def test_each_stage_says_which_packages_a_scanner_sees_and_the_json_keeps_them() -> None:
    report = ladder(**{"01": 622_000_000, "07": 2_160_000})
    seen = {"01-naive": ScannerView(tuple(f"p{i}" for i in range(88)), 6_220_000), "07-scratch-libs": ScannerView(())}
    stages = tuple(dataclasses.replace(s, scanner=seen.get(s.name)) for s in report.stages)
    report = dataclasses.replace(
        report, stages=(*stages, dataclasses.replace(stages[-1], name="08-scratch-auto", scanner=ScannerView(("libc6",), 27_213)))
    )
    assert from_dict(to_dict(report, "invoke all")) == report
    text = render_markdown(report)
    section = text.split("## What an SBOM scanner sees", 1)[1].split("\n## ", 1)[0]
    assert "| `01-naive`" in section and "88 packages" in section and "6,220,000 bytes" in section and "1.0%" in section
    assert "| `07-scratch-libs` | none" in section and "| `08-scratch-auto` | libc6" in section
    assert "27,213 bytes" in section and "1.3%" in section


def test_results_written_before_the_metadata_was_measured_still_read() -> None:
    report = ladder(**{"07": 2_160_000})
    data = to_dict(report, "invoke all")
    data["stages"][0].pop("scanner", None)
    data["stages"][0]["scanner_packages"] = ["libc6"]
    assert from_dict(data).stages[0].scanner == ScannerView(("libc6",), None)


def test_metadata_is_dpkgs_database_and_each_packages_copyright_file() -> None:
    for name in (
        "var/lib/dpkg/status",
        "var/lib/dpkg/status.d/libc6",
        "var/lib/dpkg/status.d/libc6.md5sums",
        "var/lib/dpkg/info/libc6.list",
        "usr/share/doc/libc6/copyright",
    ):
        assert is_metadata(name), name
    for name in (
        "usr/share/doc/libc6/changelog.Debian.gz",
        "usr/share/doc/copyright",
        "usr/share/doc/libc6/x/copyright",
        "usr/lib/x86_64-linux-gnu/libc.so.6",
        "hello",
    ):
        assert not is_metadata(name), name
