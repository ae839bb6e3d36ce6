"""A run's record in the checkout's ledger, made before its first container."""

from __future__ import annotations

from harness.custody.ledger import Ledger
from harness.custody.made import Made
from harness.records.engine import Engine
from harness.records.settings import Settings


def new_session(engine: Engine, settings: Settings) -> Made:
    """This checkout's ledger for this Engine, with a session of its own recorded for the containers to come."""
    ledger = Ledger.open(settings.repo_root, engine.identity())
    ledger.record_session(settings.session, settings.namespace)
    return Made(ledger, settings.session, settings.namespace)
