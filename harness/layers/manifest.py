"""What a docker-save stream says of its images: `manifest.json`, then the chosen image's config json.

`ImageManifest` is what they say of one image; `SavedImage` is that image with
its layers read (by `savetar.read_save`).

`manifest.json` lists the images of the stream (`[{"Config", "RepoTags",
"Layers": [...]}]`); one is picked by a RepoTag or an image-id prefix, and its
config gives the layers' diff_ids and the build history.  Both files are small
members that `savetar` kept, by name, as the stream went past.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.layers.layertar import LayerTar
from harness.layers.tarstream import SaveStreamError


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of the config's `history`."""

    created_by: str
    empty_layer: bool
    created: str = ""
    comment: str = ""


@dataclass(frozen=True)
class ImageManifest:
    """One image of the stream as its manifest entry and config describe it; its layers named, not yet read.

    `image_id` is `sha256:` + the digest of the config json; `layer_names` are the
    member names the manifest lists, bottom-up, aligned with `diff_ids`.
    """

    repo_tags: tuple[str, ...]
    image_id: str
    config_name: str
    diff_ids: tuple[str, ...]
    history: tuple[HistoryEntry, ...]
    layer_names: tuple[str, ...]


@dataclass(frozen=True)
class SavedImage:
    """One image of a docker-save stream, its layers in manifest (bottom-up) order.

    `image_id` is `sha256:` + the digest of the config json; `diff_ids` come from
    the config's `rootfs`; `history` is the whole config history (empty layers included).
    """

    repo_tags: tuple[str, ...]
    image_id: str
    config_name: str
    diff_ids: tuple[str, ...]
    history: tuple[HistoryEntry, ...]
    layers: tuple[LayerTar, ...]

    def instructions(self) -> tuple[str | None, ...]:
        """`created_by` aligned with the layers, as dive aligns them.

        History entries with `empty_layer` are skipped; the i-th remaining entry
        belongs to the i-th layer; a layer without one gets None.
        """
        with_layer = [h.created_by for h in self.history if not h.empty_layer]
        return tuple(with_layer[i] if i < len(with_layer) else None for i in range(len(self.layers)))


def read_manifest(subject: str, small: Mapping[str, bytes], image: str | None) -> ImageManifest:
    """The image `image` (a RepoTag or an image-id prefix; None when the stream has one) from the kept json members."""
    if "manifest.json" not in small:
        found = ", ".join(sorted(small)[:5]) or "no metadata members"
        raise SaveStreamError(subject, "no manifest.json", f"found {found}; is this a `docker save` stream?")
    manifest = _json(subject, "manifest.json", small["manifest.json"])
    if not isinstance(manifest, list) or not manifest or not all(isinstance(m, dict) for m in manifest):
        raise SaveStreamError(subject, "manifest.json: not a list of images", repr(manifest)[:120])
    entry = _pick(subject, manifest, image, small)
    config_name = str(entry.get("Config", ""))
    if config_name not in small:
        raise SaveStreamError(subject, "image config missing", f"manifest.json names {config_name!r}, not in the stream")
    config_bytes = small[config_name]
    config = _json(subject, config_name, config_bytes)
    if not isinstance(config, dict):
        raise SaveStreamError(subject, f"{config_name}: not an image config", repr(config)[:120])
    rootfs = config.get("rootfs")
    diff_ids = tuple(str(d) for d in _items(rootfs.get("diff_ids") if isinstance(rootfs, dict) else None))
    layer_names = tuple(str(n) for n in _items(entry.get("Layers")))
    if len(diff_ids) != len(layer_names):
        raise SaveStreamError(
            subject,
            "config and manifest disagree",
            f"{config_name} lists {len(diff_ids)} diff_ids, manifest.json {len(layer_names)} layers",
        )
    return ImageManifest(
        repo_tags=_repo_tags(entry),
        image_id="sha256:" + hashlib.sha256(config_bytes).hexdigest(),
        config_name=config_name,
        diff_ids=diff_ids,
        history=_history(config.get("history")),
        layer_names=layer_names,
    )


def _history(entries: object) -> tuple[HistoryEntry, ...]:
    return tuple(
        HistoryEntry(
            str(h.get("created_by", "")), bool(h.get("empty_layer", False)), str(h.get("created", "")), str(h.get("comment", ""))
        )
        for h in _items(entries)
        if isinstance(h, dict)
    )


def _items(value: object) -> tuple[object, ...]:
    """A json array's items; none for null, a missing key, or anything that is not an array."""
    return tuple(value) if isinstance(value, list) else ()


def _repo_tags(entry: Mapping[str, object]) -> tuple[str, ...]:
    return tuple(str(t) for t in _items(entry.get("RepoTags")))


def _json(subject: str, name: str, data: bytes) -> object:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise SaveStreamError(subject, f"{name}: invalid json", str(error)) from None


def _pick(
    subject: str, manifest: Sequence[Mapping[str, object]], image: str | None, small: Mapping[str, bytes]
) -> Mapping[str, object]:
    if image is None:
        if len(manifest) == 1:
            return manifest[0]
        tags = [t for m in manifest for t in _repo_tags(m)]
        raise SaveStreamError(subject, "several images in the stream, none chosen", f"RepoTags {tags}")
    for m in manifest:
        if image in _repo_tags(m):
            return m
    wanted = image.removeprefix("sha256:")
    for m in manifest:
        config = small.get(str(m.get("Config", "")))
        if config is not None and len(wanted) >= 4 and hashlib.sha256(config).hexdigest().startswith(wanted):
            return m
    tags = [t for m in manifest for t in _repo_tags(m)]
    raise SaveStreamError(subject, f"image {image!r} not in the stream", f"RepoTags {tags}")
