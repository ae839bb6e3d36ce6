"""An image's layer figures, read from the Engine's save stream (dead bytes, dive's figures, wire size)."""

from __future__ import annotations

import dataclasses
import logging
from typing import BinaryIO, cast

from harness.layers import ImageAnalysis, analyse_layers, analyse_save_stream, analyse_saved, read_save
from harness.layers.cache import ImageOutline, LayerCache
from harness.layers.figures import figures_of
from harness.layers.unpack import ChunkStream
from harness.records.engine import Engine, ImageInfo
from harness.records.layers import LayerFigures, ScannerView
from harness.records.redact import redact

log = logging.getLogger(__name__)

LARGEST = 5
# Compressing the layers for the wire size is the slow part: both cores.
WORKERS = 2


def analyse_image(engine: Engine, image: str, wire: bool = True, cache: LayerCache | None = None) -> ImageAnalysis:
    """The image's figures; with `cache`, an image whose layers were all read before is not saved (see layers.cache)."""
    if cache is None:
        # ChunkStream is a read-only binary file object: all that the reader asks of a BinaryIO.
        stream = cast(BinaryIO, ChunkStream(engine.save_image(image)))
        return dataclasses.replace(analyse_save_stream(stream, wire=wire, workers=WORKERS), repo_tags=saved_names(image))
    image_id = image if image.startswith("sha256:") else engine.image_info(image).image_id
    # Saved by ID (a tag could move between the lookup and the save), but named as `docker save <image>` names it.
    named = saved_names(image)
    known = cache.known(image_id, wire)
    if known is not None:
        outline, layers = known
        return analyse_layers(
            layers,
            diff_ids=outline.diff_ids,
            instructions=outline.instructions,
            repo_tags=named,
            image_id=outline.image_id,
            history_empty_layer=outline.history_empty_layer,
        )
    # Saved and read, but for the layers known by the digest the stream names them by (see read_save).
    saved = read_save(
        cast(BinaryIO, ChunkStream(engine.save_image(image_id))),
        wire=wire,
        workers=WORKERS,
        known=lambda diff_id: cache.layer(diff_id, wire),
    )
    for layer in saved.layers:
        cache.store_layer(layer)
    cache.store_outline(
        image_id,
        ImageOutline(
            saved.image_id,
            saved.diff_ids,
            saved.instructions(),
            saved.repo_tags,
            tuple(entry.empty_layer for entry in saved.history),
        ),
    )
    return dataclasses.replace(analyse_saved(saved), repo_tags=named)


def saved_names(image: str) -> tuple[str, ...]:
    """The RepoTags a save of `image` lists: the tag asked for (`:latest` if none); none for an ID or a digest."""
    if image.startswith("sha256:") or "@" in image:
        return ()
    return (image,) if ":" in image.rsplit("/", 1)[-1] else (f"{image}:latest",)


def headline_size(engine: Engine, image: str, cache: LayerCache | None = None) -> int:
    """The headline size of an image: its layers' uncompressed content (see `ImageAnalysis.headline_bytes`)."""
    return analyse_image(engine, image, wire=False, cache=cache).headline_bytes


def installed_packages(engine: Engine, image: str, cache: LayerCache | None = None) -> dict[str, int]:
    """dpkg's installed packages of an image, name -> installed bytes (empty without dpkg)."""
    analysis = analyse_image(engine, image, wire=False, cache=cache)
    return _packages(analysis)


def _packages(analysis: ImageAnalysis) -> dict[str, int]:
    return {package.name: package.installed_size_bytes or 0 for package in analysis.packages or ()}


def measure_layers(
    engine: Engine, info: ImageInfo, base_packages: dict[str, int], wire: bool = True, cache: LayerCache | None = None
) -> tuple[ImageInfo, LayerFigures, ScannerView | None]:
    """The figures of the image `info` describes, `info` with its history lined up with its layers, and what it declares
    to an SBOM scanner (`harness.layers.declared`).

    The save stream's config says which history entries added a layer (`empty_layer`); the Engine's
    history, one entry per config entry, gives their sizes as the Engine counts them.
    """
    analysis = analyse_image(engine, info.image_id, wire=wire, cache=cache)
    aligned = info.aligned(analysis.history_empty_layer)
    if aligned is None:
        log.warning(
            "%s: the Engine lists %d history entries, the config %d: layers not lined up",
            info.image_id,
            len(info.history),
            len(analysis.history_empty_layer),
        )
        aligned = info
    return aligned, _figures(analysis, base_packages), analysis.declared


def _figures(analysis: ImageAnalysis, base_packages: dict[str, int]) -> LayerFigures:
    installed = _packages(analysis)
    leftovers = sorted(
        ((name, size) for name, size in installed.items() if name not in base_packages), key=lambda item: (-item[1], item[0])
    )
    return figures_of(analysis, tuple(leftovers), largest=LARGEST, rename=redact)
