"""What a scanner sees, read from an image's layers: the final view's status files and metadata bytes."""

from __future__ import annotations

from harness.layers.analysis import analyse_layers
from harness.layers.layertar import EntryKind, LayerEntry, LayerTar

STATUS = b"Package: libc6\nStatus: install ok installed\nVersion: 2.36\n\nPackage: gone\nStatus: deinstall ok config-files\n"
LIBC6_STATUS_D = b"Package: libc6\nVersion: 2.36\n"


def layer(name: str, *entries: LayerEntry, captured: tuple[tuple[str, bytes], ...] = ()) -> LayerTar:
    return LayerTar(name, 0, "sha256:" + name, None, entries, captured)


def file(path: str, size: int) -> LayerEntry:
    return LayerEntry(path, EntryKind.FILE, size)


def test_the_final_views_status_files_and_metadata_are_what_a_scanner_sees() -> None:
    base = layer(
        "base",
        file("/var/lib/dpkg/status", len(STATUS)),
        file("/usr/share/doc/libc6/copyright", 1000),
        file("/usr/share/doc/gone/copyright", 500),
        file("/usr/share/doc/libc6/changelog.gz", 9999),  # not metadata: only copyright files are
        file("/usr/bin/env", 40000),
        captured=(("/var/lib/dpkg/status", STATUS),),
    )
    upper = layer(
        "upper",
        LayerEntry("/usr/share/doc/gone/copyright", EntryKind.WHITEOUT),
        file("/var/lib/dpkg/status.d/libc6", len(LIBC6_STATUS_D)),
        file("/var/lib/dpkg/status.d/libc6.md5sums", 300),  # counted as metadata, declares nothing
        file("/var/lib/dpkg/status.d/zlib1g", 30),
        LayerEntry("/usr/share/doc/zlib1g/copyright", EntryKind.SYMLINK, link="../libc6/copyright"),
        captured=(
            ("/var/lib/dpkg/status.d/libc6", LIBC6_STATUS_D),
            ("/var/lib/dpkg/status.d/libc6.md5sums", b"x" * 300),
            ("/var/lib/dpkg/status.d/zlib1g", b"Package: zlib1g\nVersion: 1\n"),
        ),
    )
    declared = analyse_layers([base, upper]).declared
    assert declared is not None
    assert declared.packages == ("libc6", "zlib1g")  # the status file's installed ones, and every status.d one
    links = len("../libc6/copyright")
    assert declared.metadata_bytes == len(STATUS) + 1000 + len(LIBC6_STATUS_D) + 300 + 30 + links


def test_a_status_file_whose_content_was_not_captured_declares_nothing_known() -> None:
    too_large = layer("base", file("/var/lib/dpkg/status", 100 << 20))  # past the capture limit: no content
    assert analyse_layers([too_large]).declared is None


def test_an_image_without_dpkg_declares_nothing_and_has_no_metadata() -> None:
    scratch = layer("scratch", file("/hello", 16000), file("/lib/x86_64-linux-gnu/libc.so.6", 1900000))
    declared = analyse_layers([scratch]).declared
    assert declared is not None and declared.packages == () and declared.metadata_bytes == 0
