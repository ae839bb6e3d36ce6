"""The merged view against a naive model of the Engine's UnpackLayer (prefix scans over a flat dict)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.layers import EntryKind, LayerEntry, analyse_layers
from harness.layers.layertar import LayerTar

PATHS = ["/a", "/b", "/a/x", "/a/y", "/a/x/p", "/b/q", "/c/d/e"]


def under(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root + "/")


def naive(layers: list[list[LayerEntry]]):
    """path -> (is_dir, layer, content); contents: id -> (size, layer)."""
    view: dict[str, tuple[bool, int, int]] = {}
    sizes: list[tuple[int, int]] = []
    per_layer = []
    for index, entries in enumerate(layers):
        before = {p: v for p, v in view.items()}
        written: set[str] = set()
        for e in entries:
            if e.kind is EntryKind.WHITEOUT:
                for p in [p for p in view if under(p, e.path)]:
                    del view[p]
            elif e.kind is EntryKind.OPAQUE:
                for p in [p for p in view if p != e.path and under(p, e.path)]:
                    rel = p[len(e.path.rstrip("/")) + 1 :].split("/")
                    prefixes = [e.path.rstrip("/") + "/" + "/".join(rel[: i + 1]) for i in range(len(rel))]
                    if not all(q in written for q in prefixes):
                        del view[p]
            else:
                exists = e.path in view or any(under(p, e.path) for p in view)
                if exists:
                    old_dir = view[e.path][0] if e.path in view else True
                    if not (old_dir and e.kind is EntryKind.DIR):
                        for p in [p for p in view if under(p, e.path)]:
                            del view[p]
                content = -1
                if e.kind is EntryKind.FILE:
                    content = len(sizes)
                    sizes.append((e.size, index))
                elif e.kind is EntryKind.HARDLINK and e.link in view:
                    content = view[e.link][2]
                view[e.path] = (e.kind is EntryKind.DIR, index, content)
                written.add(e.path)
        f_before = {p for p, v in before.items() if not v[0]}
        f_after = {p for p, v in view.items() if not v[0]}
        wrote = {p for p in written if p in view and not view[p][0] and view[p][1] == index}
        per_layer.append((len(wrote - f_before), len(wrote & f_before), len(f_before - f_after)))
    live = {v[2] for v in view.values() if v[2] >= 0}
    dead_in = [0] * len(layers)
    for cid, (size, layer) in enumerate(sizes):
        if cid not in live:
            dead_in[layer] += size
    return view, sum(sizes[c][0] for c in live), dead_in, per_layer


def entry_strategy():
    path = st.sampled_from(PATHS)
    return st.one_of(
        st.builds(lambda p, s: LayerEntry(p, EntryKind.FILE, s), path, st.integers(0, 1000)),
        st.builds(lambda p: LayerEntry(p, EntryKind.DIR), path),
        st.builds(lambda p: LayerEntry(p, EntryKind.WHITEOUT), path),
        st.builds(lambda p: LayerEntry(p, EntryKind.OPAQUE), st.sampled_from(["/", "/a", "/b", "/a/x"])),
        st.builds(lambda p, t: LayerEntry(p, EntryKind.HARDLINK, link=t), path, path),
        st.builds(lambda p: LayerEntry(p, EntryKind.SYMLINK, link="/x"), path),
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(entry_strategy(), max_size=8), min_size=1, max_size=5))
def test_merged_view_matches_the_naive_model(layers):
    tars = [LayerTar(f"l{i}", 0, "", None, tuple(entries)) for i, entries in enumerate(layers)]
    a = analyse_layers(tars)
    view, live, dead_in, per_layer = naive(layers)
    assert a.final_paths == len(view)
    assert a.live_bytes == live
    assert [layer.dead_bytes for layer in a.layers] == dead_in
    assert a.size_bytes == a.live_bytes + a.dead_bytes
    assert sum(layer.killed_bytes for layer in a.layers) == a.dead_bytes
    assert [(layer.added, layer.changed, layer.deleted) for layer in a.layers] == per_layer
