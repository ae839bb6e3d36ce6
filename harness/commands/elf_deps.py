"""`invoke deps`: what the dynamic loader would load for ELF files in an image or a root folder, as lddtree prints it."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.commands.done import Done
from harness.commands.options import Checkout, settings
from harness.commands.session import new_session
from harness.elf import Closure, Resolver, closure_dict, render_tree
from harness.records.engine import Engine
from harness.records.errors import UsageError
from harness.records.settings import DEFAULT_BASE, Progress
from harness.run.imagefs import unpacked_image


@dataclass(frozen=True)
class DepsQuery:
    """`invoke deps`'s options, read: ELF files in an image or in a root folder."""

    paths: tuple[str, ...]
    image: str | None
    root: Path | None
    as_json: bool = False
    with_dlopen: bool = False


def deps_query(paths: Sequence[str], image: str | None, root: str | None, as_json: bool, with_dlopen: bool) -> DepsQuery:
    if (image is None) == (root is None) or not paths:
        raise UsageError("give --image IMAGE or --root DIR, and at least one --path")
    return DepsQuery(tuple(paths), image, None if root is None else Path(root), as_json, with_dlopen)


def show_deps(query: DepsQuery, checkout: Checkout, connect: Callable[[], Engine], say: Progress) -> Done:
    """The closures said; an image's file system is exported (the Engine connected only then), never run."""
    if query.root is not None:
        _show(query, query.root, say)
        return Done()
    assert query.image is not None
    engine = connect()
    with unpacked_image(engine, query.image, new_session(engine, settings(checkout, DEFAULT_BASE)).container_labels()) as root:
        _show(query, root, say)
    return Done()


def _show(query: DepsQuery, root: Path, say: Progress) -> None:
    for text in render_closures(Resolver(root).resolve_many(query.paths, with_dlopen=query.with_dlopen), query.as_json):
        say(text)


def render_closures(closures: Sequence[Closure], as_json: bool) -> list[str]:
    """One JSON document of them all, or a tree for each."""
    if as_json:
        return [json.dumps([closure_dict(closure) for closure in closures], indent=2)]
    return [render_tree(closure) for closure in closures]
