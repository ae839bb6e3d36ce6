"""What a run keeps of an image's layer analysis: the figures results.json stores and RESULTS.md shows.

They are the analysis' own output (`figures_of`), not a second model of a
layer: the same field names as `analysis.Layer` and `analysis.ImageAnalysis`,
copied by name, with each layer's largest files cut to a few and their paths
passed through `rename` (the harness redacts them), and the packages the
stage left behind.  Everything else of the analysis stays with the analysis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING

from harness.records.layers import LayerFigure, LayerFigures

if TYPE_CHECKING:
    from harness.layers.analysis import ImageAnalysis, Layer


def layer_figure(layer: Layer, largest: int, rename: Callable[[str], str] = str) -> LayerFigure:
    """`layer`'s figures, with its `largest` largest files."""
    shared = {f.name: getattr(layer, f.name) for f in fields(LayerFigure) if f.name not in ("instruction", "largest")}
    return LayerFigure(
        **shared,
        instruction=layer.instruction or "",
        largest=tuple((rename(path.path), path.size) for path in layer.largest[:largest]),
    )


def figures_of(
    analysis: ImageAnalysis,
    leftover_packages: tuple[tuple[str, int], ...] = (),
    largest: int = 5,
    rename: Callable[[str], str] = str,
) -> LayerFigures:
    """What a run keeps of `analysis`: every figure by name, each layer's with its `largest` largest files."""
    shared = {f.name: getattr(analysis, f.name) for f in fields(LayerFigures) if f.name not in ("layers", "leftover_packages")}
    return LayerFigures(
        **shared,
        layers=tuple(layer_figure(layer, largest, rename) for layer in analysis.layers),
        leftover_packages=leftover_packages,
    )
