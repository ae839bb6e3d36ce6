"""Analyse a Docker image from the tar stream `docker save` writes: layers, dead bytes, dive's figures, wire size.

    with open("image.tar", "rb") as stream:          # or the Engine's GET /images/{name}/get body
        analysis = analyse_save_stream(stream)
    headers, rows = layer_table(analysis)            # tabulate(rows, headers)
    to_json(analysis)                                # {"dead_bytes": ..., "wire_bytes": ..., "layers": [...]}

Reading is streaming and single-pass (memory does not grow with image size);
see `savetar` for the stream (read with `tarstream`, the strict tar reader, and
`layertar`, one layer tar), `manifest` for its manifest.json and image config, `wire`
for the wire-size definition, `analysis` for the figures (over the layers applied in
`mergedview`), `dive` for dive's figures and `render` for the table and json.
"""

from __future__ import annotations

from typing import BinaryIO

from harness.debian.dpkg import DPKG_STATUS, Package, installed_packages, parse_status
from harness.layers.analysis import (
    ImageAnalysis,
    Layer,
    PathSize,
    analyse_layers,
    analyse_saved,
)
from harness.layers.dive import DiveFigures, DivePath, dive_figures
from harness.layers.layertar import EntryKind, LayerEntry, LayerTar, read_layer_tar
from harness.layers.manifest import HistoryEntry, SavedImage
from harness.layers.render import TABLE_HEADERS, layer_table, short_instruction, to_json
from harness.layers.savetar import read_save
from harness.layers.tarstream import CorruptTar, HostileMember, SaveStreamError
from harness.layers.wire import WIRE_LEVEL


def analyse_save_stream(
    stream: BinaryIO, *, image: str | None = None, wire: bool = True, top_n: int = 10, workers: int | None = None
) -> ImageAnalysis:
    """Read a docker-save stream (file-like, binary) and analyse the image in it."""
    return analyse_saved(read_save(stream, image=image, wire=wire, workers=workers), top_n=top_n)


__all__ = [
    "DPKG_STATUS",
    "TABLE_HEADERS",
    "WIRE_LEVEL",
    "CorruptTar",
    "DiveFigures",
    "DivePath",
    "EntryKind",
    "HistoryEntry",
    "HostileMember",
    "ImageAnalysis",
    "Layer",
    "LayerEntry",
    "LayerTar",
    "Package",
    "PathSize",
    "SaveStreamError",
    "SavedImage",
    "analyse_layers",
    "analyse_save_stream",
    "analyse_saved",
    "dive_figures",
    "installed_packages",
    "layer_table",
    "parse_status",
    "read_layer_tar",
    "read_save",
    "short_instruction",
    "to_json",
]
