"""Analyse a Docker image from the tar stream `docker save` writes: layers, dead bytes, dive's figures, wire size.

    with open("image.tar", "rb") as stream:          # or the Engine's GET /images/{name}/get body
        analysis = analyse_save_stream(stream)
    headers, rows = layer_table(analysis)            # tabulate(rows, headers)
    to_json(analysis)                                # {"dead_bytes": ..., "wire_bytes": ..., "layers": [...]}

Reading is streaming and single-pass (memory does not grow with image size);
see `savetar` for the stream and wire-size definitions, `analysis` for the figures.
"""

from __future__ import annotations

from typing import BinaryIO

from harness.layers.analysis import (
    TABLE_HEADERS,
    DiveFigures,
    DivePath,
    ImageAnalysis,
    Layer,
    PathSize,
    analyse_layers,
    analyse_saved,
    dive_figures,
    layer_table,
    short_instruction,
    to_json,
)
from harness.layers.dpkg import DPKG_STATUS, Package, installed_packages, parse_status
from harness.layers.savetar import (
    WIRE_LEVEL,
    CorruptTar,
    EntryKind,
    HistoryEntry,
    HostileMember,
    LayerEntry,
    LayerTar,
    SavedImage,
    SaveStreamError,
    read_layer_tar,
    read_save,
)


def analyse_save_stream(stream: BinaryIO, *, image: str | None = None, wire: bool = True, top_n: int = 10,
                        workers: int | None = None) -> ImageAnalysis:
    """Read a docker-save stream (file-like, binary) and analyse the image in it."""
    return analyse_saved(read_save(stream, image=image, wire=wire, workers=workers), top_n=top_n)


__all__ = [
    "DPKG_STATUS", "TABLE_HEADERS", "WIRE_LEVEL", "CorruptTar", "DiveFigures", "DivePath", "EntryKind",
    "HistoryEntry", "HostileMember", "ImageAnalysis", "Layer", "LayerEntry", "LayerTar", "Package", "PathSize",
    "SaveStreamError", "SavedImage", "analyse_layers", "analyse_save_stream", "analyse_saved", "dive_figures",
    "installed_packages", "layer_table", "parse_status", "read_layer_tar", "read_save", "short_instruction",
    "to_json",
]
