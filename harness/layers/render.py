"""An image's figures for people and programs: a per-layer table (`layer_table`) and json (`to_json`)."""

from __future__ import annotations

import math
from typing import Any

from harness.debian.dpkg import Package
from harness.layers.analysis import ImageAnalysis, Layer
from harness.layers.dive import DiveFigures


def short_instruction(created_by: str | None, width: int = 48) -> str:
    """`created_by` made readable: shell prefixes and `# buildkit` dropped, whitespace collapsed, truncated."""
    if not created_by:
        return "(missing)"
    text = " ".join(created_by.split())
    for prefix, replacement in (("/bin/sh -c #(nop) ", ""), ("/bin/sh -c ", "RUN "), ("RUN /bin/sh -c ", "RUN ")):
        if text.startswith(prefix):
            text = replacement + text[len(prefix) :]
            break
    text = text.removesuffix(" # buildkit")
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


TABLE_HEADERS = (
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


def layer_table(
    analysis: ImageAnalysis, *, width: int = 48, human: bool = False
) -> tuple[tuple[str, ...], tuple[tuple[object, ...], ...]]:
    """(headers, rows) for `tabulate(rows, headers)`: one row per layer.

    bytes = regular-file bytes of the layer tar; unchanged bytes = of those, the
    files stored again exactly as the layer below had them (overlay2 keeps them,
    the containerd store does not); dead bytes = of those, the ones the final
    image does not show; killed bytes = bytes this layer made dead;
    wire bytes = the compressed blob's length, or gzip length at level 6.  `human` formats sizes as `docker images` does.
    """
    if human:
        from harness.records.units import human_size

        def fmt(value: int | None) -> object:
            return "-" if value is None else human_size(value)
    else:

        def fmt(value: int | None) -> object:
            return value

    rows = tuple(
        (
            layer.index,
            short_instruction(layer.instruction, width),
            fmt(layer.file_bytes),
            layer.added,
            layer.changed,
            layer.deleted,
            fmt(layer.unchanged_bytes),
            fmt(layer.dead_bytes),
            fmt(layer.killed_bytes),
            fmt(layer.wire_bytes),
        )
        for layer in analysis.layers
    )
    return TABLE_HEADERS, rows


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else value


def to_json(analysis: ImageAnalysis, *, inefficiencies: int = 20) -> dict[str, Any]:
    """A json-serialisable dict: totals at the top level, then `layers`, dive's details and packages."""
    return {
        "repo_tags": list(analysis.repo_tags),
        "image_id": analysis.image_id,
        "size_bytes": analysis.size_bytes,
        "content_bytes": analysis.content_bytes,
        "unchanged_bytes": analysis.unchanged_bytes,
        "live_bytes": analysis.live_bytes,
        "dead_bytes": analysis.dead_bytes,
        "tar_bytes": analysis.tar_bytes,
        "wire_bytes": analysis.wire_bytes,
        "efficiency": _finite(analysis.efficiency),
        "wasted_bytes": analysis.wasted_bytes,
        "user_wasted_percent": _finite(analysis.user_wasted_percent),
        "final_paths": analysis.final_paths,
        "layers": [_layer_json(layer) for layer in analysis.layers],
        "dive": _dive_json(analysis.dive, inefficiencies),
        "packages": None if analysis.packages is None else [_package_json(p) for p in analysis.packages],
    }


def _layer_json(layer: Layer) -> dict[str, Any]:
    return {
        "index": layer.index,
        "name": layer.name,
        "diff_id": layer.diff_id,
        "digest_matches": layer.digest_matches,
        "instruction": layer.instruction,
        "tar_bytes": layer.tar_bytes,
        "wire_bytes": layer.wire_bytes,
        "stored_as": layer.stored_as.value,
        "file_bytes": layer.file_bytes,
        "content_bytes": layer.content_bytes,
        "entries": layer.entries,
        "added": layer.added,
        "changed": layer.changed,
        "deleted": layer.deleted,
        "added_bytes": layer.added_bytes,
        "changed_bytes": layer.changed_bytes,
        "deleted_bytes": layer.deleted_bytes,
        "whiteouts": layer.whiteouts,
        "opaque_dirs": layer.opaque_dirs,
        "unchanged": layer.unchanged,
        "unchanged_bytes": layer.unchanged_bytes,
        "dead_bytes": layer.dead_bytes,
        "killed_bytes": layer.killed_bytes,
        "largest": [{"path": p.path, "size": p.size} for p in layer.largest],
    }


def _dive_json(dive: DiveFigures, inefficiencies: int) -> dict[str, Any]:
    """dive's figures, with its `inefficiencies` largest inefficient paths."""
    return {
        "efficiency": _finite(dive.efficiency),
        "wasted_bytes": dive.wasted_bytes,
        "user_wasted_percent": _finite(dive.user_wasted_percent),
        "size_bytes": dive.size_bytes,
        "user_size_bytes": dive.user_size_bytes,
        "inefficient_paths": dive.inefficient_paths,
        "inefficiencies": [
            {"path": d.path, "cumulative_bytes": d.cumulative_bytes, "min_bytes": d.min_bytes, "occurrences": d.occurrences}
            for d in dive.inefficiencies[:inefficiencies]
        ],
    }


def _package_json(package: Package) -> dict[str, Any]:
    return {
        "name": package.name,
        "version": package.version,
        "installed_size_bytes": package.installed_size_bytes,
        "status": package.status,
    }
