"""dive's figures of an image (efficiency, wasted bytes, inefficient paths), computed as dive computes them.

`dive_figures` mirrors dive's filetree/efficiency.go and image/image.go on the
layers' `LayerEntry`s; its docstring gives the definitions.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from harness.layers.layertar import EntryKind, LayerEntry

# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class DivePath:
    """dive's EfficiencyData for one path."""

    path: str
    cumulative_bytes: int
    min_bytes: int
    occurrences: int


@dataclass(frozen=True)
class DiveFigures:
    """dive's image efficiency figures (see `dive_figures`)."""

    efficiency: float
    wasted_bytes: int
    user_wasted_percent: float | None  # a fraction, as dive's WastedUserPercent (0.1 is 10 %)
    size_bytes: int  # dive's SizeBytes: header sizes of all members of all layers
    user_size_bytes: int  # the same without the first layer
    inefficient_paths: int  # paths seen in more than one layer
    inefficiencies: tuple[DivePath, ...]  # the largest of those, by cumulative size, largest first


# --------------------------------------------------------------------------- dive


class _DNode:
    __slots__ = ("info", "children")

    def __init__(self, info: tuple[int, bool] | None = None) -> None:
        self.info = info  # (size, is_dir); None for a node dive creates without a payload
        self.children: dict[str, _DNode] | None = None

    def copy(self) -> _DNode:
        new = _DNode(self.info)
        if self.children:
            new.children = {name: child.copy() for name, child in self.children.items()}
        return new

    def subtree_size(self) -> int:
        total = 0
        stack = [self]
        while stack:
            node = stack.pop()
            if node.info is not None:
                total += node.info[0]
            if node.children:
                stack.extend(node.children.values())
        return total


def _dive_components(entry: LayerEntry) -> list[str]:
    parts = [p for p in entry.path.split("/") if p]
    if entry.kind is EntryKind.WHITEOUT:
        parts[-1] = ".wh." + parts[-1]
    elif entry.kind is EntryKind.OPAQUE:
        parts.append(".wh..wh..opq")
    return parts


def _dive_add(root: _DNode, parts: Sequence[str], info: tuple[int, bool] | None) -> None:
    """dive's FileTree.AddPath."""
    node = root
    last = len(parts) - 1
    for i, name in enumerate(parts):
        children = node.children
        child = children.get(name) if children else None
        if child is None:
            if name.startswith(".wh..wh."):
                return
            if children is None:
                children = node.children = {}
            child = children[name] = _DNode()
        node = child
        if i == last:
            node.info = info


def _dive_tree(entries: Sequence[LayerEntry]) -> _DNode:
    root = _DNode()
    for entry in entries:
        _dive_add(root, _dive_components(entry), (entry.size, entry.kind is EntryKind.DIR))
    return root


def _dive_get(root: _DNode, parts: Sequence[str]) -> _DNode | None:
    node: _DNode | None = root
    for name in parts:
        if node is None or not node.children:
            return None
        node = node.children.get(name)
    return node


def _dive_walk(root: _DNode) -> Iterator[tuple[tuple[str, ...], _DNode]]:
    """dive's VisitDepthChildFirst: every node below `root`, children (sorted by name) before their parent."""
    if not root.children:
        return
    stack: list[tuple[_DNode, tuple[str, ...], Iterator[str]]] = [(root, (), iter(sorted(root.children)))]
    while stack:
        node, parts, names = stack[-1]
        for name in names:
            assert node.children is not None  # a node is stacked only with children
            child = node.children[name]
            child_parts = (*parts, name)
            if child.children:
                stack.append((child, child_parts, iter(sorted(child.children))))
                break
            yield child_parts, child
        else:
            stack.pop()
            if parts:
                yield parts, node


def _trim(parts: Sequence[str]) -> tuple[str, ...]:
    return (*parts[:-1], parts[-1][4:]) if parts[-1].startswith(".wh.") else tuple(parts)


def _dive_stack(lower: _DNode, upper: _DNode) -> None:
    """dive's FileTree.Stack: whiteouts remove, every other node (payload-less ones too) is re-added."""
    for parts, node in _dive_walk(upper):
        if parts[-1].startswith(".wh."):
            trimmed = _trim(parts)
            parent = _dive_get(lower, trimmed[:-1])
            if parent is not None and parent.children:
                parent.children.pop(trimmed[-1], None)
        else:
            _dive_add(lower, parts, node.info)


def dive_figures(layers: Sequence[Sequence[LayerEntry]], *, keep: int = 50) -> DiveFigures:
    """dive's efficiency figures, mirroring dive's filetree/efficiency.go and image/image.go.

    Each layer is a tree built like dive's `AddPath` (intermediate directories
    without their own tar entry get an empty payload; `.wh..wh.*` names are not
    added; a whiteout `.wh.x` is a node of its own).  For every *leaf* node of
    every layer tree (directories with children in that layer are not visited;
    empty directories are, with their header size, i.e. 0):

    * the node's path (with the `.wh.` prefix trimmed) gets `size` added to its
      cumulative size and is counted once more; its minimum is the smallest
      single `size` seen;
    * `size` is the tar header size, except for a whiteout: if the path is a
      directory in the stack of the lower layers (dive stacks 0..i-1; for layer 0,
      layer 0's own tree), the sum of the sizes of that directory and everything
      below it; otherwise 0.  NB: dive's code gives a whiteout of a *file* size 0
      (only directories are sized), and so do we.  A whiteout of a path absent
      below makes dive's visitor fail: the path is entered with cumulative 0
      and minimum -1 (dive's "not yet seen", summed as it is), and the rest of
      that layer's walk is skipped, as dive's error stops it.  Opaque markers
      are ignored, as dive ignores them.

    efficiency = sum(min over paths) / sum(cumulative over paths), 1.0 if the
    latter is 0; wasted_bytes = sum of the cumulative sizes of the paths seen in
    more than one layer (the kept copy included); user_wasted_percent =
    wasted_bytes / (sum of header sizes of all members of all layers but the
    first), a fraction as in dive (None if that is 0, where dive divides by 0).
    """
    data: dict[str, list[int]] = {}  # path -> [cumulative, min, occurrences]
    sizes = [sum(e.size for e in entries) for entries in layers]
    stacked: _DNode | None = None
    first: _DNode | None = None  # the bottom layer's tree, stacked on when the second layer comes
    for index, entries in enumerate(layers):
        tree = _dive_tree(entries)
        if index == 0:
            lookup = tree
        else:
            if stacked is None:
                assert first is not None
                stacked = first.copy()
                _dive_stack(stacked, first)
                first = None
            lookup = stacked
        for parts, node in _dive_walk(tree):
            if node.children:
                continue
            path, size = _leaf(parts, node, lookup)
            if size is None:
                data.setdefault(path, [0, -1, 0])
                break  # dive's GetNode error: its walk of this layer ends here
            _count(data, path, size)
        if index == 0:
            first = tree
        else:
            assert stacked is not None  # stacked on the first tree when the second layer came
            _dive_stack(stacked, tree)
    return _figures(data, sizes, keep)


def _leaf(parts: tuple[str, ...], node: _DNode, lookup: _DNode) -> tuple[str, int | None]:
    """A leaf's path and size as dive counts it: a whiteout is sized by the directory it removes below, else 0;
    None for a whiteout of a path absent below (dive's lookup fails)."""
    if parts[-1].startswith(".wh."):
        trimmed = _trim(parts)
        below = _dive_get(lookup, trimmed)
        if below is None:
            return "/" + "/".join(trimmed), None
        return "/" + "/".join(trimmed), below.subtree_size() if below.info and below.info[1] else 0
    return "/" + "/".join(parts), node.info[0] if node.info else 0


def _count(data: dict[str, list[int]], path: str, size: int) -> None:
    record = data.get(path)
    if record is None:
        data[path] = [size, size, 1]
    else:
        record[0] += size
        if record[1] < 0 or size < record[1]:  # -1: entered by a failed whiteout, never sized (dive's "not yet")
            record[1] = size
        record[2] += 1


def _figures(data: dict[str, list[int]], sizes: list[int], keep: int) -> DiveFigures:
    minimum = sum(r[1] for r in data.values())
    discovered = sum(r[0] for r in data.values())
    efficiency = 1.0 if discovered == 0 else minimum / discovered
    repeated = [(p, r) for p, r in data.items() if r[2] > 1]
    wasted = sum(r[0] for _, r in repeated)
    user = sum(sizes[1:])
    top = heapq.nlargest(keep, repeated, key=lambda pr: (pr[1][0], pr[0]))
    return DiveFigures(
        efficiency=efficiency,
        wasted_bytes=wasted,
        user_wasted_percent=wasted / user if user else None,
        size_bytes=sum(sizes),
        user_size_bytes=user,
        inefficient_paths=len(repeated),
        inefficiencies=tuple(DivePath(p, r[0], r[1], r[2]) for p, r in top),
    )
