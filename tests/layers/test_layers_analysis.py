"""Per-layer figures, dead bytes and dive's figures on synthetic docker-save streams."""

from __future__ import annotations

import io
import json

import pytest
from test_layers_build import D, F, H, O, S, W, layer_tar, save_stream

from harness.layers import (
    EntryKind,
    LayerEntry,
    analyse_layers,
    analyse_save_stream,
    dive_figures,
    installed_packages,
    layer_table,
    read_layer_tar,
    short_instruction,
    to_json,
)

MB = 1000 * 1000


def analyse(*layers: bytes, **kwargs):
    saved = save_stream(layers, **kwargs)
    return analyse_save_stream(io.BytesIO(saved.stream))


def check_invariants(a) -> None:
    assert a.size_bytes == a.live_bytes + a.dead_bytes
    assert sum(layer.dead_bytes for layer in a.layers) == a.dead_bytes
    assert sum(layer.killed_bytes for layer in a.layers) == a.dead_bytes
    assert sum(layer.file_bytes for layer in a.layers) == a.size_bytes


def test_file_added_then_removed_is_dead_to_the_byte():
    a = analyse(layer_tar(D("opt"), F("opt/big", 10 * MB), F("keep", b"k" * 7)), layer_tar(D("opt"), W("opt/big")))
    check_invariants(a)
    assert a.dead_bytes == 10 * MB
    assert a.live_bytes == 7
    assert a.layers[0].dead_bytes == 10 * MB and a.layers[0].killed_bytes == 0
    assert a.layers[1].killed_bytes == 10 * MB and a.layers[1].dead_bytes == 0
    assert (a.layers[1].added, a.layers[1].changed, a.layers[1].deleted) == (0, 0, 1)
    assert a.layers[1].deleted_bytes == 10 * MB and a.layers[1].whiteouts == 1
    assert a.layers[0].largest[0].path == "/opt/big" and a.layers[0].largest[0].size == 10 * MB


def test_file_replaced_by_smaller_one():
    a = analyse(layer_tar(F("data.bin", 5 * MB)), layer_tar(F("data.bin", 1 * MB)))
    check_invariants(a)
    assert a.dead_bytes == 5 * MB
    assert a.live_bytes == 1 * MB
    assert (a.layers[1].added, a.layers[1].changed, a.layers[1].deleted) == (0, 1, 0)
    assert a.layers[1].changed_bytes == 1 * MB


def test_mode_only_change_copies_the_whole_file_up():
    content = bytes(range(256)) * 4000
    a = analyse(layer_tar(F("app", content, mode=0o644)), layer_tar(F("app", content, mode=0o755)))
    check_invariants(a)
    assert a.dead_bytes == len(content)
    assert a.layers[1].changed == 1 and a.layers[1].added == 0


def test_a_file_stored_again_as_it_was_is_unchanged_and_still_counted_in_the_layer():
    """overlay2 stores a file a step only opened for writing (debconf's templates.dat in 02's purges); it is unchanged."""
    templates = b"Template: debconf/frontend\n" * 1000
    a = analyse(
        layer_tar(F("var/cache/debconf/templates.dat", templates), F("etc/other", b"x" * 10)),
        layer_tar(F("var/cache/debconf/templates.dat", templates), F("etc/other", b"y" * 10)),
    )
    check_invariants(a)
    top = a.layers[1]
    assert (top.changed, top.unchanged, top.unchanged_bytes) == (2, 1, len(templates))
    assert a.unchanged_bytes == len(templates) and a.content_bytes == 2 * (len(templates) + 10)
    assert a.layers[0].unchanged == 0


@pytest.mark.parametrize(
    "rewrite",
    [
        F("f", b"other content", mtime=1_600_000_000),  # same size, other bytes
        F("f", b"same content!", mtime=1_600_000_001),  # rewritten later
        F("f", b"same content!", mtime=1_600_000_000.5),  # the same second, not the same nanosecond
        F("f", b"same content!", mode=0o600),
        F("f", b"same content!", uid=1000),
        F("f", b"same content!", xattrs=(("security.capability", "AQAAAgAgAAAAAAAAAAAAAAAAAAA="),)),
    ],
    ids=["content", "mtime", "mtime-ns", "mode", "owner", "xattr"],
)
def test_a_file_that_differs_in_anything_is_not_unchanged(rewrite):
    a = analyse(layer_tar(F("f", b"same content!", mtime=1_600_000_000)), layer_tar(rewrite))
    assert a.layers[1].changed == 1 and a.layers[1].unchanged == 0 and a.unchanged_bytes == 0


def test_unchanged_compares_with_the_view_below_not_with_any_lower_layer():
    # Deleted, then written again as it first was: the layer adds it (nothing below), it is not unchanged.
    a = analyse(layer_tar(F("f", b"abc")), layer_tar(W("f")), layer_tar(F("f", b"abc")))
    assert (a.layers[2].added, a.layers[2].unchanged) == (1, 0)
    # Written in two layers the same, the third's copy is unchanged against the second's.
    b = analyse(layer_tar(F("f", b"abc")), layer_tar(F("f", b"abd")), layer_tar(F("f", b"abd")))
    assert [layer.unchanged for layer in b.layers] == [0, 0, 1]


def test_removed_folder_kills_everything_below_it():
    files = [F(f"cache/d{i}/f{j}", 1000 * (i + 1) + j) for i in range(3) for j in range(4)]
    total = sum(len(m.data) for m in files)
    base = layer_tar(D("cache"), D("cache/d0"), D("cache/d1"), D("cache/d2"), *files, F("other", 5))
    a = analyse(base, layer_tar(W("cache")))
    check_invariants(a)
    assert a.dead_bytes == total
    assert a.layers[1].deleted == 12 and a.layers[1].deleted_bytes == total
    assert a.final_paths == 1  # /other


def test_opaque_folder_hides_the_lower_content_only():
    lower = layer_tar(D("srv"), F("srv/a", 300), F("srv/b", 400), D("srv/sub"), F("srv/sub/c", 500), F("top", 1))
    upper = layer_tar(D("srv"), O("srv"), F("srv/a", 30), F("srv/new", 60))
    a = analyse(lower, upper)
    check_invariants(a)
    assert a.dead_bytes == 300 + 400 + 500
    assert a.live_bytes == 1 + 30 + 60
    upper_layer = a.layers[1]
    assert (upper_layer.added, upper_layer.changed, upper_layer.deleted) == (1, 1, 2)
    assert upper_layer.opaque_dirs == 1


def test_opaque_marker_after_children_keeps_what_the_layer_wrote():
    """The Engine only removes what the layer has not written so far (tar order matters)."""
    lower = layer_tar(D("srv"), F("srv/a", 300), F("srv/b", 400))
    upper = layer_tar(D("srv"), F("srv/a", 30), O("srv"))
    a = analyse(lower, upper)
    assert a.live_bytes == 30 and a.dead_bytes == 700


def test_hardlink_keeps_content_alive_after_its_first_name_goes():
    a = analyse(layer_tar(F("a", 1234), H("b", "a")), layer_tar(W("a")))
    check_invariants(a)
    assert a.dead_bytes == 0 and a.live_bytes == 1234
    b = analyse(layer_tar(F("a", 1234), H("b", "a")), layer_tar(W("a"), W("b")))
    assert b.dead_bytes == 1234


def test_directory_replacing_a_file_and_symlinks():
    a = analyse(layer_tar(F("x", 10), S("lnk", "/x")), layer_tar(D("x"), F("x/inner", 3), S("lnk", "/y")))
    check_invariants(a)
    assert a.dead_bytes == 10
    top = a.layers[1]
    assert (top.added, top.changed, top.deleted) == (1, 1, 1)


def test_duplicate_member_inside_one_layer_is_dead():
    a = analyse(layer_tar(F("dup", 100), F("dup", 40)))
    assert a.dead_bytes == 100 and a.layers[0].killed_bytes == 100 and a.layers[0].dead_bytes == 100


def test_layer_without_directory_entries_and_implicit_parent_whiteout():
    a = analyse(layer_tar(F("usr/share/doc/x", 50), F("usr/share/doc/y", 60)), layer_tar(W("usr/share")))
    assert a.dead_bytes == 110 and a.final_paths == 0


def test_instructions_follow_non_empty_history_entries():
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
        {"created_by": '/bin/sh -c #(nop)  CMD ["bash"]', "empty_layer": True},
        {"created_by": "RUN /bin/sh -c apt-get update && apt-get install -y curl # buildkit"},
        {"created_by": "ENV X=1", "empty_layer": True},
    ]
    a = analyse(layer_tar(F("a", 1)), layer_tar(F("b", 2)), layer_tar(F("c", 3)), history=history)
    assert [layer.instruction for layer in a.layers] == [history[0]["created_by"], history[2]["created_by"], None]
    assert short_instruction(history[0]["created_by"]) == "ADD file:abc in /"
    assert short_instruction(history[2]["created_by"], 20) == "RUN apt-get update …"
    assert short_instruction(None) == "(missing)"


def test_table_and_json():
    a = analyse(layer_tar(F("big", 2 * MB)), layer_tar(W("big")))
    headers, rows = layer_table(a)
    assert headers == (
        "layer",
        "instruction",
        "bytes",
        "added",
        "changed",
        "deleted",
        "unchanged bytes",
        "dead bytes",
        "killed bytes",
        "wire bytes",
    )
    assert rows[0][:8] == (0, "RUN step 0", 2 * MB, 1, 0, 0, 0, 2 * MB)
    assert rows[1][5:9] == (1, 0, 0, 2 * MB)
    assert isinstance(rows, tuple) and all(isinstance(r, tuple) for r in rows)
    _, human_rows = layer_table(a, human=True)
    assert human_rows[0][2] == "2MB"
    doc = to_json(a)
    json.dumps(doc, allow_nan=False)
    assert doc["dead_bytes"] == 2 * MB and doc["size_bytes"] == 2 * MB
    assert doc["wire_bytes"] == a.wire_bytes == sum(layer.wire_bytes for layer in a.layers)
    assert doc["efficiency"] == a.efficiency
    assert len(doc["layers"]) == 2 and doc["layers"][1]["killed_bytes"] == 2 * MB


# --------------------------------------------------------------------------- dive


def E(path: str, size: int = 0, kind: EntryKind = EntryKind.FILE) -> LayerEntry:
    return LayerEntry(path, kind, size)


def test_dive_own_unit_test_example():
    """dive's filetree/efficiency_test.go TestEfficency: no directory entries, so the whiteout sizes 0."""
    trees = [
        [E("/etc/nginx/nginx.conf", 2000), E("/etc/nginx/public", 3000)],
        [E("/etc/nginx/nginx.conf", 5000), E("/etc/athing", 10000)],
        [E("/etc/nginx", 0, EntryKind.WHITEOUT)],
    ]
    d = dive_figures(trees)
    assert d.efficiency == 0.75
    assert d.wasted_bytes == 7000
    assert [(p.path, p.cumulative_bytes, p.occurrences) for p in d.inefficiencies] == [("/etc/nginx/nginx.conf", 7000, 2)]
    assert d.user_size_bytes == 15000 and d.user_wasted_percent == 7000 / 15000


def test_dive_scratch_image_scores_one():
    assert dive_figures([[E("/nothing", 0)], [], []]).efficiency == 1.0


def test_dive_hand_computed_with_directory_entries():
    """Real layer tars carry directory entries, so a directory whiteout sums the directory below.

    leaves: L0 nginx.conf 2000, public 3000; L1 nginx.conf 5000, athing 10000; L2 whiteout /etc/nginx
    (a directory below: 0 + 5000 + 3000 = 8000).  min sum = 2000+3000+10000+8000 = 23000,
    cumulative sum = 7000+3000+10000+8000 = 28000.
    """
    DIR = EntryKind.DIR
    trees = [
        [E("/etc", 0, DIR), E("/etc/nginx", 0, DIR), E("/etc/nginx/nginx.conf", 2000), E("/etc/nginx/public", 3000)],
        [E("/etc", 0, DIR), E("/etc/nginx", 0, DIR), E("/etc/nginx/nginx.conf", 5000), E("/etc/athing", 10000)],
        [E("/etc", 0, DIR), E("/etc/nginx", 0, EntryKind.WHITEOUT)],
    ]
    d = dive_figures(trees)
    assert d.efficiency == 23000 / 28000
    assert d.wasted_bytes == 7000
    assert d.user_wasted_percent == 7000 / 15000


def test_dive_file_whiteout_counts_zero_and_empty_dirs_count():
    """dive sizes only directory whiteouts; a removed file's path gets 0 (min 0, cumulative unchanged)."""
    a = analyse(layer_tar(D("tmp"), F("tmp/big", 10 * MB)), layer_tar(D("tmp"), W("tmp/big")))
    # /tmp is a leaf in layer 1 only (its child there is the whiteout node: not a leaf in either layer)
    assert a.wasted_bytes == 10 * MB
    assert a.efficiency == 0.0
    assert a.user_wasted_percent is None  # layer 1 has no bytes: dive would divide by zero


def test_dive_through_the_stream_matches_direct_computation():
    layers = [layer_tar(D("a"), F("a/x", 100), F("a/y", 50)), layer_tar(D("a"), F("a/x", 70), F("b", 5)), layer_tar(W("a"))]
    a = analyse(*layers)
    entries = [read_layer_tar(io.BytesIO(t)).entries for t in layers]
    d = dive_figures(entries)
    assert (a.efficiency, a.wasted_bytes) == (d.efficiency, d.wasted_bytes)
    # /a/x: 100+70 (min 70), /a/y 50, /b 5, whiteout /a: dir below = 70 + 50 = 120
    assert a.wasted_bytes == 170
    assert a.efficiency == (70 + 50 + 5 + 120) / (170 + 50 + 5 + 120)
    assert a.dive.user_size_bytes == 75


def test_dive_stops_a_layers_walk_at_a_whiteout_of_a_path_absent_below():
    """dive's visitor fails on it (GetNode of the stacked tree below): the path is entered at cumulative 0 and
    minimum -1, and the leaves after it in that layer's walk (sorted by name, children first) are not counted."""
    trees = [
        [E("/a", 1000)],
        # Walked as .wh.missing, b, z (by name): the whiteout fails first, so /b and /z of this layer are never seen.
        [E("/b", 300), E("/missing", 0, EntryKind.WHITEOUT), E("/z", 50)],
        [E("/a", 400), E("/missing", 20)],  # a later layer counts again: /missing's -1 becomes its first size
    ]
    d = dive_figures(trees)
    # min: /a 400 + /missing 20; cumulative: /a 1400 + /missing 20 (the failed whiteout added 0)
    assert d.efficiency == (400 + 20) / (1400 + 20)
    assert d.wasted_bytes == 1400 and [p.path for p in d.inefficiencies] == ["/a"]
    # Never seen again: its -1 is summed into the minimum, as dive sums it.
    alone = dive_figures([[E("/a", 1000)], [E("/gone", 0, EntryKind.WHITEOUT), E("/b", 10)]])
    assert alone.efficiency == (1000 - 1) / 1000 and alone.inefficient_paths == 0


# --------------------------------------------------------------------------- dpkg

STATUS = """Package: libc6
Status: install ok installed
Priority: optional
Installed-Size: 12000
Architecture: amd64
Version: 2.31-13
Description: GNU C Library
 continuation line

Package: oldpkg
Status: deinstall ok config-files
Version: 1.0
Installed-Size: 10

Package: curl
Status: install ok installed
Version: 7.74.0-1.3
Installed-Size: 415
"""


def test_installed_packages_parses_dpkg_status():
    packages = installed_packages(STATUS)
    assert [(p.name, p.version, p.installed_size_bytes) for p in packages] == [
        ("libc6", "2.31-13", 12000 * 1024),
        ("curl", "7.74.0-1.3", 415 * 1024),
    ]
    assert packages[0].status == "install ok installed"


def test_dpkg_status_of_the_topmost_layer_is_used():
    old = "Package: a\nStatus: install ok installed\nVersion: 1\nInstalled-Size: 1\n"
    a = analyse(
        layer_tar(D("var"), D("var/lib"), D("var/lib/dpkg"), F("var/lib/dpkg/status", old.encode())),
        layer_tar(F("var/lib/dpkg/status", STATUS.encode())),
        layer_tar(F("unrelated", 3)),
    )
    assert [p.name for p in a.packages] == ["libc6", "curl"]
    assert to_json(a)["packages"][1]["name"] == "curl"
    gone = analyse(layer_tar(F("var/lib/dpkg/status", old.encode())), layer_tar(W("var/lib/dpkg")))
    assert gone.packages is None


def test_analyse_layers_directly():
    tars = [read_layer_tar(io.BytesIO(layer_tar(F("f", 10)))), read_layer_tar(io.BytesIO(layer_tar(F("f", 4))))]
    a = analyse_layers(tars)
    assert a.dead_bytes == 10 and a.layers[0].diff_id is None and a.layers[0].digest_matches is None


@pytest.mark.parametrize("order", ["engine", "manifest-first", "reversed"])
def test_order_of_the_stream_does_not_matter(order):
    layers = [layer_tar(F("a", 10)), layer_tar(F("b", 20)), layer_tar(W("a"))]
    a = analyse(*layers, order=order)
    assert a.dead_bytes == 10 and [layer.file_bytes for layer in a.layers] == [10, 20, 0]


def test_the_figures_a_run_keeps_are_the_analysis_own():
    """figures_of copies every figure by name: no second model of a layer to keep in step."""
    from harness.layers.figures import LayerFigure, LayerFigures, figures_of

    a = analyse(layer_tar(D("opt"), F("opt/big", 10 * MB), F("opt/b", 3), F("keep", b"k" * 7)), layer_tar(D("opt"), W("opt/big")))
    kept = figures_of(a, (("gcc", 5),), largest=1, rename=str.upper)
    assert isinstance(kept, LayerFigures) and kept.leftover_packages == (("gcc", 5),)
    for name in ("content_bytes", "live_bytes", "dead_bytes", "wire_bytes", "efficiency", "wasted_bytes", "user_wasted_percent"):
        assert getattr(kept, name) == getattr(a, name), name
    assert [layer.instruction for layer in kept.layers] == [layer.instruction or "" for layer in a.layers]
    for figure, layer in zip(kept.layers, a.layers, strict=True):
        assert isinstance(figure, LayerFigure)
        for name in ("file_bytes", "added", "changed", "deleted", "dead_bytes", "killed_bytes", "wire_bytes"):
            assert getattr(figure, name) == getattr(layer, name), name
    assert kept.layers[0].largest == (("/OPT/BIG", 10 * MB),)


def test_the_ci_limits_name_each_one_passed():
    from harness.layers.limits import Limits, exceeded

    a = analyse(layer_tar(F("big", 10 * MB)), layer_tar(W("big")))
    assert exceeded(a, Limits()) == ()
    assert exceeded(a, Limits(max_dead_bytes=10 * MB)) == ()
    assert exceeded(a, Limits(max_dead_bytes=10 * MB - 1)) == (f"{10 * MB:,} dead bytes > --max-dead {10 * MB - 1:,}",)
    assert len(exceeded(a, Limits(max_dead_bytes=0, min_efficiency=1.0))) == 2
    assert Limits.parse("5", "0.5") == Limits(5, 0.5)
    with pytest.raises(ValueError):
        Limits.parse("5MB", None)
