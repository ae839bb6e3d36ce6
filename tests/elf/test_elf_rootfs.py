"""Path resolution confined to the root: links, loops, `..`."""

from __future__ import annotations

from pathlib import PurePosixPath as P

import pytest

from harness.elf import Resolver, RootEscape, RootFS, SymlinkLoop


def test_absolute_symlink_chain_is_resolved_inside_the_root(root, built):
    root.put("/srv/store/libC.so.1.0", built.libC)
    root.link("/opt/real", "/srv/store")  # absolute directory link
    root.link("/opt/lib/libC.so.1", "/opt/real/libC.so.1.0")  # absolute file link through it
    app = root.put("/opt/bin/app", built.app_first)
    root.link("/opt/second", "/opt/lib")
    closure = Resolver(root.path).resolve(app)
    [dep] = closure.needed
    assert dep.path == P("/opt/second/libC.so.1") and dep.real == P("/srv/store/libC.so.1.0")
    assert closure.files[-4:] == (P("/opt/second"), P("/opt/lib/libC.so.1"), P("/opt/real"), P("/srv/store/libC.so.1.0"))


def test_dotdot_never_climbs_above_the_root(root):
    root.put("/etc/target", b"x")
    root.link("/opt/up", "../../../../../../etc/target")
    fs = RootFS(root.path)
    assert fs.resolve("/opt/up").real == P("/etc/target")
    assert fs.resolve("/../../../etc/target").real == P("/etc/target")
    assert fs.resolve("/opt/up").links == (P("/opt/up"),)


def test_dotdot_is_physical_after_a_directory_link(root):
    root.put("/a/b/file", b"x")
    root.link("/l", "a/b")
    assert RootFS(root.path).resolve("/l/../b/file").real == P("/a/b/file")


def test_symlink_loop_raises(root, built, abi):
    root.link(f"/usr/lib/{abi.triplet}/libC.so.1", "libD.so")
    root.link(f"/usr/lib/{abi.triplet}/libD.so", f"/lib/{abi.triplet}/libC.so.1")
    app = root.put("/usr/bin/app", built.app_plain)
    with pytest.raises(SymlinkLoop) as caught:
        RootFS(root.path).resolve(f"/usr/lib/{abi.triplet}/libC.so.1")
    assert "symbolic link loop" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(SymlinkLoop):
        Resolver(root.path).resolve(app)


def test_forty_links_are_allowed(root):
    root.put("/f0", b"x")
    for i in range(1, 41):
        root.link(f"/f{i}", f"f{i - 1}")
    assert len(RootFS(root.path).resolve("/f40").links) == 40
    root.link("/f41", "f40")
    with pytest.raises(SymlinkLoop):
        RootFS(root.path).resolve("/f41")


def test_missing_and_not_a_directory(root):
    root.put("/etc/file", b"x")
    fs = RootFS(root.path)
    assert fs.resolve("/nope/x") is None
    assert fs.resolve("/etc/file/x") is None
    assert fs.resolve("/etc/file/..") is None


def test_relative_path_is_a_root_escape(root):
    with pytest.raises(RootEscape):
        RootFS(root.path).resolve("usr/bin/app")
