"""Nothing let out: structurally mutated ELF files end in a Closure or one ElfError, quickly.

A short version of tests/elf/fuzz_elf.py (`python -m tests.elf.fuzz_elf`): the same mutator, seeds built by conftest.
"""

from __future__ import annotations

import logging
import platform
import random
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.elf import Closure, ElfError, Resolver
from harness.records.errors import HarnessError
from tests.elf.fuzz_mutate import mutate

# The host's multiarch folder (x86_64-linux-gnu, aarch64-linux-gnu): gcc built the seeds for the host.
LIBDIR = f"/usr/lib/{platform.machine()}-linux-gnu"
PER_INPUT_SECONDS = 2.0


@pytest.fixture()
def fuzz_root(root, built):
    """A merged-/usr root with the test libraries, and the seeds the mutants start from."""
    for lib in (built.libB, built.libC, built.libN):
        root.put(f"{LIBDIR}/{lib.name}", lib)
    root.put("/usr/bin/uses", built.app_plain)  # needs libC.so.1: the mutant goes there in "lib" mode
    root.link(f"{LIBDIR}/libloop.so.1", "libloop.so.1")
    seeds = {
        "app_rpath": built.app_rpath.read_bytes(),
        "app_origin": built.app_origin.read_bytes(),
        "app_dlopen": built.app_dlopen.read_bytes(),
        "libB": built.libB.read_bytes(),
        "libN": built.libN.read_bytes(),
        "static": built.static.read_bytes(),
        "libC32": built.libC32.read_bytes(),
        "true": Path("/bin/true").read_bytes(),
    }
    return root, seeds


@settings(
    max_examples=200,
    deadline=PER_INPUT_SECONDS * 1000,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), as_library=st.booleans(), with_dlopen=st.booleans())
def test_mutants_give_closure_or_elf_error(fuzz_root, seed, as_library, with_dlopen):
    root, seeds = fuzz_root
    rng = random.Random(seed)
    name = rng.choice(sorted(seeds))
    blob, mutations = mutate(rng, seeds[name])
    target = "/usr/bin/uses" if as_library else "/usr/bin/fuzz"
    root.put(f"{LIBDIR}/libC.so.1" if as_library else target, blob)
    logging.disable(logging.CRITICAL)
    started = time.perf_counter()
    try:
        result = Resolver(root.path).resolve(target, strict=False, with_dlopen=with_dlopen)
    except ElfError as error:
        assert isinstance(error, HarnessError)
        assert "\n" not in str(error), (name, mutations)
    else:
        assert isinstance(result, Closure), (name, mutations)
    finally:
        logging.disable(logging.NOTSET)
    assert time.perf_counter() - started < PER_INPUT_SECONDS, (name, mutations)
