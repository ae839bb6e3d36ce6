"""How a command ended, for the shell to turn into an exit code (only tasks.py does)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Done:
    """Success, or a failure with the line to end on (None: what was said already tells why)."""

    ok: bool = True
    message: str | None = None

    @classmethod
    def failed(cls, message: str | None = None) -> Done:
        return cls(False, message)
