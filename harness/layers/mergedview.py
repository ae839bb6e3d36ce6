"""The merged view of an image: its layers applied bottom-up, path by path, as the Engine applies them.

Layers are applied bottom-up to a path -> metadata view exactly as the Engine's
`UnpackLayer` applies a layer tar (moby pkg/archive/diff.go), entry by entry in
tar order:

* `.wh.<name>` removes `<name>` and everything below it;
* `.wh..wh..opq` in directory D removes everything below D that this layer has
  not written so far (the Engine writes the marker right after D, so: all of D's
  lower content);
* a directory over a directory merges (metadata replaced, children kept); any
  other entry over an existing path first removes that path and its subtree;
* a hard link refers to the content its target has in the view at that moment.

Content identity: every regular-file member is one "content" of `size` bytes; a
hard link shares its target's content.  A content is *live* while some path of
the view refers to it.

A regular file a layer writes over the same file of the view below (the same
content, mode, owner, time and extended attributes: `LayerEntry.same_file_as`)
is counted `unchanged`: overlay2 stores such a file again when a step only
opened it for writing, or copied it up; the containerd store's differ
compares the snapshots and leaves it out.

While the layers are applied, the view counts per layer the bytes made dead
(`killed`), the bytes stored there that end up dead (`dead_in`), and what each
layer added, changed and deleted (`LayerChanges`); `analysis` defines those
figures and turns them into an image's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.layers.layertar import EntryKind, LayerEntry


class MergedView:
    """path -> [is_dir, layer, content, size]; children index for subtree removal."""

    __slots__ = ("items", "files", "children", "refs", "content_size", "content_layer", "layer", "killed", "dead_in", "gone")

    def __init__(self, layer_count: int) -> None:
        self.items: dict[str, tuple[bool, int, int, int]] = {}
        self.files: dict[str, LayerEntry] = {}  # the entry of every regular file of the view, to compare a rewrite with
        self.children: dict[str, set[str]] = {}
        self.refs: list[int] = []
        self.content_size: list[int] = []
        self.content_layer: list[int] = []
        self.layer = 0
        self.killed = [0] * layer_count
        self.dead_in = [0] * layer_count
        self.gone: dict[str, int] = {}  # non-dirs of the view below removed during this layer -> size

    def _attach(self, path: str) -> None:
        children = self.children
        while path != "/":
            parent = path.rpartition("/")[0] or "/"
            kids = children.get(parent)
            if kids is not None:
                kids.add(path)
                return
            children[parent] = {path}
            path = parent

    def _drop(self, path: str, item: tuple[bool, int, int, int]) -> None:
        is_dir, layer, content, size = item
        if content >= 0:
            self.refs[content] -= 1
            if self.refs[content] == 0:
                csize = self.content_size[content]
                self.killed[self.layer] += csize
                self.dead_in[self.content_layer[content]] += csize
        if not is_dir and layer < self.layer and path not in self.gone:
            self.gone[path] = size

    def remove(self, path: str) -> None:
        """Remove `path` and everything below it (RemoveAll)."""
        if path != "/":
            kids = self.children.get(path.rpartition("/")[0] or "/")
            if kids is not None:
                kids.discard(path)
        items, children = self.items, self.children
        stack = [path]
        while stack:
            current = stack.pop()
            self.files.pop(current, None)
            item = items.pop(current, None)
            if item is not None:
                self._drop(current, item)
            kids = children.pop(current, None)
            if kids:
                stack.extend(kids)

    def opaque(self, directory: str, written: set[str]) -> None:
        stack = list(self.children.get(directory, ()))
        while stack:
            child = stack.pop()
            if child in written:
                stack.extend(self.children.get(child, ()))
            else:
                self.remove(child)

    def put(self, entry: LayerEntry) -> None:
        path = entry.path
        items = self.items
        old = items.get(path)
        is_dir = entry.kind is EntryKind.DIR
        if old is not None or path in self.children:
            existing_dir = old[0] if old is not None else True  # an implicit parent is a directory on disk
            if is_dir and existing_dir:
                if old is not None:
                    self._drop(path, old)
                items[path] = (True, self.layer, -1, 0)
                return
            self.remove(path)
        content = -1
        size = 0
        if entry.kind is EntryKind.FILE:
            self.files[path] = entry
            content = len(self.refs)
            self.refs.append(1)
            self.content_size.append(entry.size)
            self.content_layer.append(self.layer)
            size = entry.size
        elif entry.kind is EntryKind.HARDLINK:
            target = items.get(entry.link)
            if target is not None and target[2] >= 0:
                content = target[2]
                self.refs[content] += 1
        items[path] = (is_dir, self.layer, content, size)
        self._attach(path)


@dataclass
class LayerChanges:
    """What one layer did to the view below it; see `analysis` for the definitions."""

    added: int = 0
    changed: int = 0
    deleted: int = 0
    added_bytes: int = 0
    changed_bytes: int = 0
    deleted_bytes: int = 0
    whiteouts: int = 0
    opaque_dirs: int = 0
    unchanged: int = 0  # of `changed`, regular files written exactly as the view below had them
    unchanged_bytes: int = 0


def apply_layer(view: MergedView, index: int, entries: Sequence[LayerEntry]) -> LayerChanges:
    """Apply layer `index` (its entries in tar order) to the view; what it added, changed and deleted."""
    view.layer = index
    view.gone = {}
    counts = LayerChanges()
    written: set[str] = set()
    for entry in entries:
        kind = entry.kind
        if kind is EntryKind.WHITEOUT:
            counts.whiteouts += 1
            view.remove(entry.path)
        elif kind is EntryKind.OPAQUE:
            counts.opaque_dirs += 1
            view.opaque(entry.path, written)
        elif kind is EntryKind.AUFS:
            continue
        else:
            below = view.files.get(entry.path)
            if below is not None and entry.path not in written and entry.same_file_as(below):
                counts.unchanged += 1
                counts.unchanged_bytes += entry.size
            view.put(entry)
            written.add(entry.path)
    items, gone = view.items, view.gone
    for path in written:
        item = items.get(path)
        if item is None or item[0] or item[1] != index:
            continue
        if path in gone:
            counts.changed += 1
            counts.changed_bytes += item[3]
        else:
            counts.added += 1
            counts.added_bytes += item[3]
    for path, size in gone.items():
        item = items.get(path)
        if item is None or item[0]:
            counts.deleted += 1
            counts.deleted_bytes += size
    return counts
