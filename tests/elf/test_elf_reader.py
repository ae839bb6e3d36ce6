"""Parsing: what the loader reads, and clean errors for anything else."""

from __future__ import annotations

from pathlib import PurePosixPath as P

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.elf import ElfError, FileMissing, MalformedELF, NotELF, Resolver, read_elf
from harness.elf.reader import DF_1_NODEFLIB


def test_reads_soname_needed_and_paths(built, abi):
    lib = read_elf(built.libB, P("/libB.so.1"))
    assert (lib.soname, lib.needed, lib.interpreter, lib.elf_class) == ("libB.so.1", ("libC.so.1",), None, 64)
    app = read_elf(built.app_rpath, P("/app"))
    assert app.rpath == "/opt/a/lib:/opt/c" and app.runpath is None
    assert app.interpreter == abi.interpreter
    assert read_elf(built.app_runpath, P("/app")).runpath == "/opt/a/lib:/opt/c"
    assert not app.flags_1 & DF_1_NODEFLIB


def test_reads_hand_made_32_bit_object(built):
    info = read_elf(built.libC32, P("/libC32"))
    assert (info.elf_class, info.machine, info.soname) == (32, 3, "libC.so.1")


def test_non_elf_file(root):
    path = root.put("/usr/bin/script", b"#!/bin/sh\necho hi\n")
    with pytest.raises(NotELF) as caught:
        Resolver(root.path).resolve(path)
    assert str(caught.value).startswith("/usr/bin/script: not an ELF file: ")
    empty = root.put("/usr/bin/empty", b"")
    with pytest.raises(NotELF):
        Resolver(root.path).resolve(empty)


@pytest.mark.parametrize("keep", [5, 20, 60, 200, 700])
def test_truncated_elf(root, built, keep):
    path = root.put("/usr/bin/cut", built.app_rpath.read_bytes()[:keep])
    with pytest.raises(MalformedELF) as caught:
        Resolver(root.path).resolve(path)
    message = str(caught.value)
    assert message.startswith("/usr/bin/cut: malformed ELF: ") and "\n" not in message


def test_missing_requested_file(root):
    with pytest.raises(FileMissing):
        Resolver(root.path).resolve("/usr/bin/nothing")


def test_malformed_candidate_in_search_path_is_an_error(root, built, abi):
    app = root.put("/usr/bin/app", built.app_plain)
    root.put(f"/usr/lib/{abi.triplet}/libC.so.1", b"\x7fELF\x02\x01\x01")
    with pytest.raises(MalformedELF):
        Resolver(root.path).resolve(app)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupted_elf_gives_only_elf_errors(tmp_path, built, data):
    blob = bytearray(built.libB.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, 700))
        blob[at] = data.draw(st.integers(0, 255))
    blob = blob[: data.draw(st.integers(0, len(blob)))]
    target = tmp_path / "fuzz.so"
    target.write_bytes(bytes(blob))
    try:
        read_elf(target, P("/fuzz.so"))
    except ElfError as error:
        assert "\n" not in str(error)
