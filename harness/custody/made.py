"""Where a run records what it makes: `Made`."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.custody.ledger import Ledger
from harness.records import labels
from harness.statusboard import StatusBoard


@dataclass(frozen=True)
class Made:
    """Where a run records what it makes (the checkout's ledger for this Engine, the run's container labels),
    and what it is doing (for a person following it)."""

    ledger: Ledger
    session: str
    namespace: str
    board: StatusBoard = field(default_factory=StatusBoard.silent, compare=False)

    def container_labels(self, **extra: str) -> dict[str, str]:
        return labels.container(self.session, self.namespace, **extra)
