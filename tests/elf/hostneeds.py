"""What the resolver's host-backed tests need (gcc, an x86-64 glibc host, ldd, ldconfig): skipped without it
on a workstation, a failure in CI (`CI=true`), where scripts/setup installs it."""

from __future__ import annotations

import os

import pytest


def needs(present: bool, what: str) -> None:
    if present:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what}: CI must have it (scripts/setup installs it)")
    pytest.skip(what)
