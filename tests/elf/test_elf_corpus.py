"""harness.elf.corpus: finding dynamic ELF files in a tree, and reading ldd's output."""

from __future__ import annotations

import os
from pathlib import PurePosixPath as P

from harness.elf.corpus import LddResult, dynamic_elf_files, parse_ldd_output

MULTI = """\
/usr/bin/app:
\tlinux-vdso.so.1 (0x00007ffd5a1e2000)
\tlibB.so.1 => /usr/lib/libB.so.1 (0x00007f1c2a000000)
\tlibgone.so.3 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007f1c2a200000)
/usr/bin/script:
\tnot a dynamic executable
/usr/lib/libB.so.1:
\tlibC.so.1 => /usr/lib/libC.so.1 (0x00007f1c2a100000)
/usr/bin/static-pie:
\tstatically linked
"""

LOOP = """\
== /usr/bin/app
\tlinux-vdso.so.1 (0x00007ffd5a1e2000)
\tlibB.so.1 => /usr/lib/libB.so.1 (0x00007f1c2a000000)
\tlibgone.so.3 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007f1c2a200000)
== /usr/bin/script
\tnot a dynamic executable
== /usr/bin/quiet
== /usr/lib/libB.so.1
\tlibC.so.1 => /usr/lib/libC.so.1 (0x00007f1c2a100000)
== /usr/bin/static-pie
\tstatically linked
"""

PATHS = ["/usr/bin/app", "/usr/bin/script", "/usr/bin/quiet", "/usr/lib/libB.so.1", "/usr/bin/static-pie"]


def fake_realpath(path: str) -> str:
    """Resolve against a pretend exported root where /lib64 is a link to /usr/lib."""
    return "/export" + path.replace("/lib64/", "/usr/lib/")


EXPECTED = {
    "/usr/bin/app": LddResult(
        frozenset({"/export/usr/lib/libB.so.1", "/export/usr/lib/ld-linux-x86-64.so.2"}), frozenset({"libgone.so.3"})
    ),
    "/usr/lib/libB.so.1": LddResult(frozenset({"/export/usr/lib/libC.so.1"}), frozenset()),
    "/usr/bin/static-pie": LddResult(frozenset(), frozenset()),
}


def test_multi_file_form():
    assert parse_ldd_output(MULTI, PATHS, fake_realpath) == EXPECTED


def test_shell_loop_form():
    assert parse_ldd_output(LOOP, PATHS, fake_realpath) == EXPECTED


def test_refused_and_silent_files_are_absent():
    parsed = parse_ldd_output(LOOP, iter(PATHS), fake_realpath)
    assert "/usr/bin/script" not in parsed and "/usr/bin/quiet" not in parsed


def test_vdso_lines_are_ignored():
    text = "== /a\n\tlinux-vdso.so.1 (0x00007ffd5a1e2000)\n\tlinux-vdso.so.1 =>  (0x00007ffd5a1e2000)\n"
    assert parse_ldd_output(text, ["/a"], fake_realpath) == {"/a": LddResult(frozenset(), frozenset())}


def test_not_found_only():
    text = "/a:\n\tlibx.so.1 => not found\n\tliby.so.2 => not found\n"
    assert parse_ldd_output(text, ["/a"], fake_realpath) == {"/a": LddResult(frozenset(), frozenset({"libx.so.1", "liby.so.2"}))}


def test_headers_of_other_paths_are_not_blocks():
    text = "== /other\n\tlibx.so.1 => /lib/libx.so.1 (0x1)\n== /a\n\tliby.so.1 => /lib/liby.so.1 (0x2)\n"
    assert parse_ldd_output(text, ["/a"], fake_realpath) == {"/a": LddResult(frozenset({"/export/lib/liby.so.1"}), frozenset())}


def test_realpath_is_applied(tmp_path):
    (tmp_path / "real.so").write_bytes(b"")
    os.symlink("real.so", tmp_path / "link.so")
    text = f"== /a\n\tlink.so => {tmp_path}/link.so (0x1)\n"
    parsed = parse_ldd_output(text, ["/a"], os.path.realpath)
    assert parsed["/a"].found == frozenset({os.path.realpath(tmp_path / "real.so")})


def test_dynamic_elf_files(tmp_path, built):
    root = tmp_path / "root"
    (root / "usr/bin/sub").mkdir(parents=True)
    (root / "usr/lib").mkdir(parents=True)
    (root / "opt").mkdir()
    for inside, source in [
        ("usr/bin/app", built.app_plain),
        ("usr/bin/sub/deep", built.app_rpath),
        ("usr/lib/libB.so.1", built.libB),
        ("usr/lib/libC.so.1", built.libC),
        ("usr/bin/static", built.static),
        ("opt/app", built.app_plain),
    ]:
        (root / inside).write_bytes(source.read_bytes())
    (root / "usr/bin/script").write_bytes(b"#!/bin/sh\n")
    (root / "usr/bin/broken").write_bytes(built.app_plain.read_bytes()[:100])
    (root / "usr/bin/empty").write_bytes(b"")
    os.symlink("app", root / "usr/bin/alias")
    os.symlink("sub", root / "usr/bin/linkdir")
    unreadable = root / "usr/bin/unreadable"
    unreadable.write_bytes(built.app_plain.read_bytes())
    unreadable.chmod(0)

    found = dynamic_elf_files(root)
    expected = (P("/usr/bin/app"), P("/usr/bin/sub/deep"), P("/usr/lib/libB.so.1"))
    if os.access(unreadable, os.R_OK):  # running as root
        expected = (P("/usr/bin/app"), P("/usr/bin/sub/deep"), P("/usr/bin/unreadable"), P("/usr/lib/libB.so.1"))
    assert found == expected
    assert found == tuple(sorted(found))
    assert dynamic_elf_files(root, limit=2) == expected[:2]
    assert dynamic_elf_files(root, under="/opt") == (P("/opt/app"),)
    assert dynamic_elf_files(root, under="/nothing") == ()
