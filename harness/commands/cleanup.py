"""`invoke clean`: what this checkout made (recorded by ID in its ledger) and every image tagged under the namespace,
removed (or listed); the cache emptied."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from harness.commands.done import Done
from harness.commands.options import Checkout, namespace
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
    removals = ownership.clean(engine, ledger, with_namespaces(scope, ledger), dry_run=dry_run)
    for removal in removals:
        say(("would " if dry_run else "") + removal.describe())
    verb = "would remove" if dry_run else "removed"
    say(
        f"{verb} {len(removals)} container(s) and image(s): what this checkout made, as recorded in"
        f" {ledger.path.relative_to(checkout.root)}, and what is tagged under the namespace"
    )
    return Done()


def with_namespaces(scope: ownership.Scope, ledger: Ledger) -> ownership.Scope:
    """The scope, with the namespaces whose tags are the project's: the one asked for; else this run's
    (HELLO_LADDER_NAMESPACE, or the default) and every one the ledger knows."""
    if scope.namespace is not None:
        return dataclasses.replace(scope, tagged=frozenset({scope.namespace}))
    known = {entry.namespace for entry in ledger.read().images if entry.namespace is not None}
    return dataclasses.replace(scope, tagged=frozenset({namespace(), *known}))


def empty_cache(dry_run: bool, say: Progress) -> None:
    folder = cache_root()
    if dry_run:
        count = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else None
        say(f"would empty {folder} ({count} files)")
    else:
        say(f"emptied {folder} ({clear(folder)} files)")
