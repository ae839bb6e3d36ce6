"""Debian image references: which release, whether its slim variant, and for which architecture a reference names.  Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.records.platform import Architecture, architecture_of_namespace

# `debian:bookworm`, `library/debian:bookworm`, and another architecture's: `arm64v8/debian:bookworm-slim`.
_DEBIAN_REF = re.compile(r"^(?:(?P<namespace>[a-z0-9]+)/)?debian:(?P<suite>[a-z]+)(?P<slim>-slim)?$")


@dataclass(frozen=True)
class DebianBase:
    suite: str
    slim: bool
    arch: Architecture | None = None  # None: the Engine's own, imported as before

    @classmethod
    def parse(cls, ref: str) -> DebianBase | None:
        """`debian:bookworm-slim` -> DebianBase("bookworm", slim=True); `arm64v8/debian:bookworm` -> arm64's.

        None for anything else.
        """
        match = _DEBIAN_REF.match(ref)
        if match is None:
            return None
        namespace = match["namespace"]
        arch = None if namespace in (None, "library") else architecture_of_namespace(namespace)
        if namespace not in (None, "library") and arch is None:
            return None
        return cls(match["suite"], bool(match["slim"]), arch)
