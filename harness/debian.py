"""Debian image references: which release, and whether its slim variant, a reference names.  Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

_DEBIAN_REF = re.compile(r"^(?:library/)?debian:(?P<suite>[a-z]+)(?P<slim>-slim)?$")


@dataclass(frozen=True)
class DebianBase:
    suite: str
    slim: bool

    @classmethod
    def parse(cls, ref: str) -> DebianBase | None:
        """`debian:bookworm-slim` -> DebianBase("bookworm", slim=True); None for anything else."""
        match = _DEBIAN_REF.match(ref)
        if match is None:
            return None
        return cls(match["suite"], bool(match["slim"]))
