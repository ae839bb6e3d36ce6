"""ld.so.cache parsing: the host's cache against `ldconfig -p`, a cache made by ldconfig -r, a hand-made one."""

from __future__ import annotations

import platform
import re
import shutil
import struct
import subprocess
from pathlib import Path
from pathlib import PurePosixPath as P

import pytest
from hostneeds import needs

from harness.elf import Resolver
from harness.elf.ldcache import cache_flags, cache_table, parse_cache

HOST_CACHE = Path("/etc/ld.so.cache")


def test_host_cache_matches_ldconfig_p():
    needs(
        HOST_CACHE.exists() and shutil.which("ldconfig") is not None and platform.machine() in ("x86_64", "aarch64"),
        "needs an x86-64 or aarch64 glibc host",
    )
    entries = parse_cache(HOST_CACHE.read_bytes())
    listed = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    pairs = re.findall(r"^\s+(\S+) \(([^)]*)\) => (\S+)$", listed, re.MULTILINE)
    assert len(pairs) == len(entries)
    assert [(soname, path) for soname, _, path in pairs] == [(e.soname, e.path) for e in entries]
    machine, kind_name = {"x86_64": (62, "x86-64"), "aarch64": (183, "AArch64")}[platform.machine()]
    native = [(soname, path) for soname, kind, path in pairs if kind_name in kind and "hwcap" not in kind]
    table = cache_table(entries, cache_flags(machine, 64))
    assert all(table[soname] for soname, _ in native)
    first: dict[str, str] = {}
    for soname, path in native:
        first.setdefault(soname, path)
    assert table == first


def test_flags_per_architecture():
    assert cache_flags(62, 64) == 0x0303  # x86-64
    assert cache_flags(3, 32) == 0x0003  # i386: no architecture byte
    assert cache_flags(62, 32) == 0x0803  # x32
    assert cache_flags(183, 64) == 0x0A03  # aarch64


def _new_format(entries: list[tuple[int, str, str]]) -> bytes:
    strings = b""
    offsets = []
    header_size = 48 + 24 * len(entries)
    for _, key, value in entries:
        offsets.append((header_size + len(strings), header_size + len(strings) + len(key) + 1))
        strings += key.encode() + b"\0" + value.encode() + b"\0"
    head = b"glibc-ld.so.cache" + b"1.1" + struct.pack("<IIB3xI12x", len(entries), len(strings), 2, 0)
    body = b"".join(struct.pack("<iIIIQ", flags, k, v, 0, 0) for (flags, _, _), (k, v) in zip(entries, offsets, strict=True))
    return head + body + strings


def test_old_format_followed_by_new_format():
    new = _new_format([(0x0003, "libC.so.1", "/lib32/libC.so.1"), (0x0303, "libC.so.1", "/lib64/libC.so.1")])
    old = b"ld.so-1.7.0\0" + struct.pack("<I", 1) + struct.pack("<iII", 0x0303, 0, 10) + b"\0" * 4
    entries = parse_cache(old + new)
    assert [(e.flags, e.soname, e.path) for e in entries] == [
        (0x0003, "libC.so.1", "/lib32/libC.so.1"),
        (0x0303, "libC.so.1", "/lib64/libC.so.1"),
    ]
    assert cache_table(entries, 0x0303) == {"libC.so.1": "/lib64/libC.so.1"}
    assert cache_table(entries, 0x0003) == {"libC.so.1": "/lib32/libC.so.1"}


def test_garbage_cache_is_rejected():
    with pytest.raises(ValueError):
        parse_cache(b"not a cache at all")
    with pytest.raises(ValueError):
        parse_cache(_new_format([(0x0303, "libC.so.1", "/x")])[:60])


def test_cache_made_by_ldconfig_in_the_root(root, built):
    needs(shutil.which("ldconfig") is not None, "needs ldconfig")
    app = root.put("/usr/bin/app", built.app_plain)
    root.put("/opt/cached/libC.so.1", built.libC)
    root.put("/etc/ld.so.conf", b"/opt/cached\n")
    done = subprocess.run(["ldconfig", "-r", str(root.path)], capture_output=True, text=True, check=False)
    if done.returncode != 0 or not root.host("/etc/ld.so.cache").exists():
        pytest.skip(f"ldconfig -r did not make a cache: {done.stderr.strip()}")
    root.host("/etc/ld.so.conf").unlink()  # only the cache knows /opt/cached now
    closure = Resolver(root.path).resolve(app)
    assert closure.needed[0].path == P("/opt/cached/libC.so.1")
