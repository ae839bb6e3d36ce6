"""Which package owns each copied file, and the distroless-style metadata written for those packages."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

import pytest

from harness.slim.pkgmeta import package_metadata
from harness.slim.plan import plan_slim
from harness.slim.provenance import DpkgDatabase
from harness.stages.slimspec import SlimSpec

STATUS = """\
Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u14
Description: GNU C Library: Shared libraries
 Contains the standard libraries.

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: gcc-12 (12.2.0-14)
Version: 12.2.0-14

Package: gcc-12-base
Status: install ok installed
Architecture: amd64
Version: 12.2.0-14

Package: old-tool
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
"""

LISTS = {
    # libc6 names its files under /lib, which merged /usr makes a link to usr/lib.
    "libc6:amd64": [
        "/.",
        "/lib",
        "/lib/x86_64-linux-gnu",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "/lib64",
        "/lib64/ld-linux-x86-64.so.2",
        "/usr",
        "/usr/share/doc/libc6",
        "/usr/share/doc/libc6/copyright",
    ],
    # libgcc-s1 names its under /usr/lib, and its doc folder is a link to gcc-12-base's.
    "libgcc-s1:amd64": ["/usr/lib/x86_64-linux-gnu/libgcc_s.so.1", "/usr/share/doc/libgcc-s1"],
    "gcc-12-base:amd64": ["/usr/share/doc/gcc-12-base", "/usr/share/doc/gcc-12-base/copyright"],
}


def write(root: Path, path: str, content: bytes = b"") -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)


def link(root: Path, path: str, to: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(to, target)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A merged-/usr root with glibc, libgcc_s, the user's /hello and dpkg's database."""
    (tmp_path / "usr/lib/x86_64-linux-gnu").mkdir(parents=True)
    (tmp_path / "usr/lib64").mkdir()
    link(tmp_path, "/lib", "usr/lib")
    link(tmp_path, "/lib64", "usr/lib64")
    write(tmp_path, "/usr/lib/x86_64-linux-gnu/libc.so.6", b"libc bytes")
    write(tmp_path, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", b"loader bytes")
    link(tmp_path, "/usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    write(tmp_path, "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1", b"libgcc bytes")
    write(tmp_path, "/usr/share/doc/libc6/copyright", b"glibc licence")
    write(tmp_path, "/usr/share/doc/gcc-12-base/copyright", b"gcc licence")
    link(tmp_path, "/usr/share/doc/libgcc-s1", "gcc-12-base")
    write(tmp_path, "/hello", b"the user's program")
    write(tmp_path, "/var/lib/dpkg/status", STATUS.encode())
    for stem, lines in LISTS.items():
        write(tmp_path, f"/var/lib/dpkg/info/{stem}.list", ("\n".join(lines) + "\n").encode())
    return tmp_path


COPIED = tuple(
    map(
        PurePosixPath,
        [
            "/hello",
            "/lib64",
            "/usr/lib64/ld-linux-x86-64.so.2",
            "/lib",
            "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
        ],
    )
)


def test_each_copied_file_has_its_owner_whichever_way_dpkg_spells_the_path(root: Path) -> None:
    provenance = DpkgDatabase(root).provenance(COPIED)
    owners = {str(path): owner for path, owner in provenance.owners}
    assert owners == {
        "/hello": None,  # the user's own program
        "/lib64": None,  # merged-/usr links: folders to dpkg
        "/lib": None,
        "/usr/lib64/ld-linux-x86-64.so.2": "libc6",  # listed as /lib64/ld-linux-x86-64.so.2
        "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "libc6",  # listed under /lib
        "/usr/lib/x86_64-linux-gnu/libc.so.6": "libc6",
        "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1": "libgcc-s1",  # listed under /usr/lib
    }
    assert [(p.name, p.version, p.source_name) for p in provenance.packages] == [
        ("libc6", "2.36-9+deb12u14", "glibc"),
        ("libgcc-s1", "12.2.0-14", "gcc-12"),
    ]


def test_metadata_is_the_status_paragraph_md5sums_of_the_copied_files_and_the_copyright(root: Path) -> None:
    provenance = DpkgDatabase(root).provenance(COPIED)
    metadata = package_metadata(root, provenance)
    files = {str(item.path): item.content for item in metadata.files}
    assert sorted(files) == [
        "/var/lib/dpkg/status.d/libc6",
        "/var/lib/dpkg/status.d/libc6.md5sums",
        "/var/lib/dpkg/status.d/libgcc-s1",
        "/var/lib/dpkg/status.d/libgcc-s1.md5sums",
    ]
    assert files["/var/lib/dpkg/status.d/libc6"].startswith(b"Package: libc6\nStatus: install ok installed\n")
    assert files["/var/lib/dpkg/status.d/libc6"].endswith(b" Contains the standard libraries.\n")
    md5 = lambda data: hashlib.md5(data).hexdigest()  # noqa: E731
    # Only the files copied, not everything the package lists; links have no checksum.
    assert files["/var/lib/dpkg/status.d/libc6.md5sums"].decode().splitlines() == [
        f"{md5(b'loader bytes')}  usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        f"{md5(b'libc bytes')}  usr/lib/x86_64-linux-gnu/libc.so.6",
    ]
    # libgcc-s1's doc folder is a link to gcc-12-base's: the link is copied with the file.
    assert set(map(str, metadata.copies)) == {
        "/usr/share/doc/libc6/copyright",
        "/usr/share/doc/libgcc-s1",
        "/usr/share/doc/gcc-12-base/copyright",
    }
    assert metadata.copyright_bytes == len(b"glibc licence") + len(b"gcc licence")
    assert metadata.added_bytes == metadata.copyright_bytes + sum(len(content) for content in files.values())


def test_a_package_without_a_copyright_file_is_named(root: Path) -> None:
    (root / "usr/share/doc/libc6/copyright").unlink()
    metadata = package_metadata(root, DpkgDatabase(root).provenance(COPIED))
    assert metadata.missing_copyright == ("libc6",)


def test_a_root_without_dpkg_has_no_packages(tmp_path: Path) -> None:
    write(tmp_path, "/hello", b"x")
    provenance = DpkgDatabase(tmp_path).provenance((PurePosixPath("/hello"),))
    assert provenance.packages == () and provenance.unowned == (PurePosixPath("/hello"),)
    assert package_metadata(tmp_path, provenance).files == ()


@pytest.mark.skipif(not Path("/var/lib/dpkg/info/coreutils.list").is_file(), reason="the host has no dpkg database")
def test_on_the_host_true_comes_from_coreutils_and_its_libraries_from_libc6() -> None:
    plan = plan_slim(Path("/"), SlimSpec(PurePosixPath("/usr/bin/true")))
    assert plan.provenance.owner(plan.closure.real) == "coreutils"  # coreutils lists /bin/true
    assert {p.name for p in plan.provenance.packages} == {"coreutils", "libc6"}
    assert plan.metadata is not None
    assert PurePosixPath("/usr/share/doc/coreutils/copyright") in plan.copies
