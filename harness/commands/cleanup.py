"""`invoke clean`: what this checkout made, recorded by ID in its ledger, removed (or listed); the cache emptied."""

from __future__ import annotations

from collections.abc import Callable

from harness.commands.done import Done
from harness.commands.options import Checkout
from harness.custody import ownership
from harness.custody.ledger import Ledger
from harness.layers.cache import cache_root, clear
from harness.records.engine import Engine
from harness.records.settings import Progress


def clean_checkout(
    connect: Callable[[], Engine], checkout: Checkout, scope: ownership.Scope, dry_run: bool, cache: bool, say: Progress
) -> Done:
    """The cache first (it needs no Engine), then the images and containers in the ledger."""
    if cache:
        empty_cache(dry_run, say)
    engine = connect()
    ledger = Ledger.open(checkout.root, engine.identity())
    removals = ownership.clean(engine, ledger, scope, dry_run=dry_run)
    for removal in removals:
        say(("would " if dry_run else "") + removal.describe())
    verb = "would remove" if dry_run else "removed"
    say(
        f"{verb} {len(removals)} container(s) and image(s) this checkout made, as recorded in {ledger.path.relative_to(checkout.root)}"
    )
    return Done()


def empty_cache(dry_run: bool, say: Progress) -> None:
    folder = cache_root()
    if dry_run:
        count = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else None
        say(f"would empty {folder} ({count} files)")
    else:
        say(f"emptied {folder} ({clear(folder)} files)")
