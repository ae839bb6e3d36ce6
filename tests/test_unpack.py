"""Unpacking an image's file system never writes outside its own folder."""

import io
import tarfile
from pathlib import Path

import pytest

from harness.layers.unpack import ChunkStream, UnpackLimits, UnsafeArchive, safe_name, unpack


def member(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", linkname: str = "", size: int | None = None
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if size is None else size
    info.mode = 0o4755 if kind == tarfile.REGTYPE else 0o755
    return info, data


def archive(*members: tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    buffer.seek(0)
    return buffer


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    (tmp_path / "root").mkdir()
    return tmp_path / "root"


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("etc/passwd", "etc/passwd"),
        ("./usr/bin", "usr/bin"),
        ("/etc/shadow", "etc/shadow"),
        ("../x", None),
        ("a/../../x", None),
        ("a/./b/../c", "a/c"),
        (".", None),
    ],
)
def test_names_are_made_relative_and_climbing_is_refused(name: str, safe: str | None) -> None:
    assert safe_name(name) == safe


@pytest.mark.fault(
    "A hostile image tar (.., absolute names, links out, devices)", "refused or neutralised; nothing written outside the folder"
)
def test_hostile_members_are_refused_or_neutralised(dest: Path) -> None:
    outside = dest.parent
    report = unpack(
        archive(
            member("../escaped", data=b"x"),
            member("/etc/absolute", data=b"kept inside"),
            member("lib64", tarfile.SYMTYPE, linkname="/etc"),  # an absolute link, stored as it is
            member("lib64/through-the-link", data=b"x"),  # would write into the link's target
            member("out", tarfile.SYMTYPE, linkname="../../.."),
            member("out/escaped-too", data=b"x"),
            member("hard", tarfile.LNKTYPE, linkname="../../etc/passwd"),
            member("dev/sda", tarfile.BLKTYPE),
            member("fifo", tarfile.FIFOTYPE),
            member("usr/bin/tool", data=b"#!"),
        ),
        dest,
    )
    assert (dest / "etc" / "absolute").read_bytes() == b"kept inside"
    assert (dest / "lib64").is_symlink() and str((dest / "lib64").readlink()) == "/etc"
    assert not (outside / "escaped").exists()
    assert sorted(path.name for path in outside.iterdir()) == ["root"]
    assert not (dest / "dev" / "sda").exists() and not (dest / "fifo").exists() and not (dest / "hard").exists()
    assert (dest / "usr" / "bin" / "tool").stat().st_mode & 0o7777 == 0o755  # setuid dropped
    assert {name for name, _ in report.skipped} == {
        "../escaped",
        "lib64/through-the-link",
        "out/escaped-too",
        "hard",
        "dev/sda",
        "fifo",
    }


def test_a_huge_member_is_refused_before_it_is_written(dest: Path) -> None:
    # A sparse file claims any size for a few bytes of tar; the limit applies to what it claims.
    with pytest.raises(UnsafeArchive, match="over the 1,000-byte limit"):
        unpack(archive(member("big", data=b"x" * 2000)), dest, UnpackLimits(max_member_bytes=1000))
    assert not (dest / "big").exists()


def test_a_corrupt_tar_is_one_clear_error(dest: Path) -> None:
    with pytest.raises(UnsafeArchive, match="not a readable tar"):
        unpack(io.BytesIO(b"\x00garbage" * 100), dest)


def test_the_engines_chunk_stream_reads_like_a_file(dest: Path) -> None:
    data = archive(member("a/b", data=b"hello")).getvalue()
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]
    unpack(ChunkStream(chunks), dest)
    assert (dest / "a" / "b").read_bytes() == b"hello"
