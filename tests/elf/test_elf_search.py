"""Dynamic string tokens: $PLATFORM takes every name the loader may give it, the kernel's first."""

from __future__ import annotations

from harness.elf.search import PLATFORM, Layout, expand, split_dirs

X86_64 = Layout(("/lib/x86_64-linux-gnu",), "lib/x86_64-linux-gnu", PLATFORM[62])


def test_platform_expands_to_the_kernel_name_then_glibc_intel_names():
    assert expand("$ORIGIN/${LIB}/$PLATFORM", "/app", X86_64) == (
        "/app/lib/x86_64-linux-gnu/x86_64",
        "/app/lib/x86_64-linux-gnu/haswell",
        "/app/lib/x86_64-linux-gnu/xeon_phi",
    )


def test_text_without_platform_expands_once():
    assert expand("$ORIGIN/$LIB", "/app", X86_64) == ("/app/lib/x86_64-linux-gnu",)
    assert expand("/opt/lib", None, X86_64) == ("/opt/lib",)


def test_unknown_origin_drops_the_entry():
    assert expand("$ORIGIN/lib", None, X86_64) == ()
    assert split_dirs("$ORIGIN/lib:/opt/$PLATFORM", None, X86_64) == ("/opt/x86_64", "/opt/haswell", "/opt/xeon_phi")
