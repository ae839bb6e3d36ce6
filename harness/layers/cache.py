"""Layer reads cached by content: a layer tar's parse stored under its diff_id, an image's outline under its ID.

A layer is content-addressed: the tar whose sha256 is a given diff_id always
holds the same members, so what reading it yields (`LayerTar`: its entries,
lengths, wire size, the captured dpkg status) never changes, and is stored
under that digest.  The figures of `analysis` are not stored: a layer's
dead bytes or changed files depend on the layers around it, and they are
recomputed from the cached layers in memory, which costs little beside
saving the image and compressing its layers.  An image's outline (its
layers' diff_ids and the history aligned with them, the config's digest) is
stored under the image's ID, itself a digest of that config (of its manifest
on the containerd store): an image whose outline and layers are all known is
not saved at all.

Entries live in `$XDG_CACHE_HOME/hello-ladder` (else `~/.cache/hello-ladder`),
under a version of the reading code (`VERSION`: bump it when what a layer
read yields changes) and of the image store's flavour (the wire size is a
compressed blob's own length on the containerd store, a gzip length on
overlay2).  Each entry is written to a temporary file and renamed, so a crash
leaves the old entry or none; an entry that cannot be read, or that names
another digest or version, is recomputed with a warning, never trusted.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from harness.atomic import write_atomically
from harness.layers.compressed import Compression
from harness.layers.layertar import EntryKind, LayerEntry, LayerTar

log = logging.getLogger(__name__)

# What a cached read means: bump when reading a layer tar yields something else.
VERSION = 3  # 2: status.d files captured (harness.layers.declared); 3: each entry's mtime, xattrs, content digest
FORMAT = "hello-ladder layer read"
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


def cache_root(environ: Mapping[str, str] = os.environ) -> Path:
    """The user's cache folder for this project: `$XDG_CACHE_HOME/hello-ladder`, else `~/.cache/hello-ladder`."""
    base = environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache") / "hello-ladder"


def clear(root: Path) -> int:
    """Empty the cache folder; how many files it held."""
    if not root.is_dir():
        return 0
    count = sum(1 for path in root.rglob("*") if path.is_file())
    shutil.rmtree(root)
    return count


@dataclass(frozen=True)
class ImageOutline:
    """What the analysis needs of an image besides its layers, from its config."""

    image_id: str  # as the save stream names it: `sha256:` and the config's digest
    diff_ids: tuple[str, ...]
    instructions: tuple[str | None, ...]
    repo_tags: tuple[str, ...] = ()
    history_empty_layer: tuple[bool, ...] = ()  # the config history's flags, which line the Engine's history up


@dataclass(frozen=True)
class LayerCache:
    """Layer reads and image outlines of one image-store flavour, in `root`."""

    root: Path
    flavour: str = "default"

    @classmethod
    def for_store(cls, image_store: str, root: Path | None = None) -> LayerCache:
        flavour = re.sub(r"[^a-z0-9]+", "-", image_store.lower()).strip("-") or "default"
        return cls(cache_root() if root is None else root, flavour)

    @property
    def folder(self) -> Path:
        return self.root / f"v{VERSION}" / self.flavour

    # --- layers ---

    def layer(self, diff_id: str, wire: bool) -> LayerTar | None:
        """The cached read of the layer `diff_id` (with its wire size if `wire`), or None."""
        data = self._read(self._path("layer", diff_id), diff_id)
        if data is None:
            return None
        try:
            layer = _layer_from(data)
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as error:
            log.warning("%s: layer cache entry unreadable, the layer is read again: %s", diff_id, error)
            return None
        if layer.sha256 != diff_id:
            log.warning("%s: layer cache entry is for %s, the layer is read again", diff_id, layer.sha256)
            return None
        return None if wire and layer.wire_bytes is None else layer

    def store_layer(self, layer: LayerTar) -> None:
        """Keep `layer`'s read under its digest, unless known (a read with a wire size is never replaced by one without)."""
        if _DIGEST.fullmatch(layer.sha256) is None:
            return
        if self.layer(layer.sha256, wire=layer.wire_bytes is not None) is not None:
            return  # known already (content-addressed: the same read)
        self._write(self._path("layer", layer.sha256), _layer_data(layer))

    # --- images ---

    def outline(self, image_id: str) -> ImageOutline | None:
        data = self._read(self._path("image", image_id), image_id)
        if data is None:
            return None
        try:
            return ImageOutline(
                str(data["image_id"]),
                tuple(str(d) for d in data["diff_ids"]),
                tuple(None if i is None else str(i) for i in data["instructions"]),
                tuple(str(t) for t in data["repo_tags"]),
                tuple(bool(flag) for flag in data["history_empty_layer"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            log.warning("%s: image cache entry unreadable, the image is saved again: %s", image_id, error)
            return None

    def store_outline(self, image_id: str, outline: ImageOutline) -> None:
        if _DIGEST.fullmatch(image_id) is None:
            return
        self._write(
            self._path("image", image_id),
            {
                "image_id": outline.image_id,
                "diff_ids": list(outline.diff_ids),
                "instructions": list(outline.instructions),
                "repo_tags": list(outline.repo_tags),
                "history_empty_layer": list(outline.history_empty_layer),
            },
        )

    def known(self, image_id: str, wire: bool) -> tuple[ImageOutline, tuple[LayerTar, ...]] | None:
        """The image's outline and every layer's read, if all are cached; else None (the image must be saved)."""
        if _DIGEST.fullmatch(image_id) is None:
            return None
        outline = self.outline(image_id)
        if outline is None:
            return None
        layers = []
        for diff_id in outline.diff_ids:
            layer = self.layer(diff_id, wire)
            if layer is None:
                return None
            layers.append(layer)
        return outline, tuple(layers)

    # --- other figures of an image, by its ID (content-addressed: the same ID, the same files) ---

    def image_figures(self, kind: str, image_id: str) -> dict[str, Any] | None:
        """What was stored as `kind` for this image (a JSON object), or None."""
        if _DIGEST.fullmatch(image_id) is None:
            return None
        data = self._read(self._path(kind, image_id), image_id)
        return None if data is None or not isinstance(data.get("figures"), dict) else data["figures"]

    def store_image_figures(self, kind: str, image_id: str, figures: dict[str, Any]) -> None:
        if _DIGEST.fullmatch(image_id) is not None:
            self._write(self._path(kind, image_id), {"figures": figures})

    # --- files ---

    def _path(self, kind: str, digest: str) -> Path:
        found = _DIGEST.fullmatch(digest)
        name = found[1] if found else re.sub(r"[^A-Za-z0-9_.-]", "_", digest)
        return self.folder / kind / f"{name}.json.gz"

    def _read(self, path: Path, key: str) -> dict[str, Any] | None:
        return read_entry(path, key)

    def _write(self, path: Path, payload: dict[str, Any]) -> None:
        write_entry(path, f"sha256:{path.name.removesuffix('.json.gz')}", payload)


def read_entry(path: Path, key: str) -> dict[str, Any] | None:
    """The entry at `path` if it is this version's entry for `key`; None (with a warning if it is not) otherwise."""
    try:
        with gzip.open(path, "rb") as handle:
            data = json.loads(handle.read())
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError) as error:
        log.warning("%s: cache entry %s is corrupt, computed again: %s", key, path, error)
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION or data.get("key") != key:
        log.warning("%s: cache entry %s is not this version's entry for it, computed again", key, path)
        return None
    return data


def write_entry(path: Path, key: str, payload: dict[str, Any]) -> None:
    """Write atomically: a temporary file in the same folder, renamed over the entry.  Never fails the run."""
    data = {"format": FORMAT, "version": VERSION, "key": key, **payload}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        encoded = json.dumps(data, separators=(",", ":")).encode("utf-8")

        def write(raw: BinaryIO) -> None:
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as out:
                out.write(encoded)

        write_atomically(path, write, durable=False)
    except OSError as error:
        log.warning("%s: not cached: %s", path, error)


def _layer_data(layer: LayerTar) -> dict[str, Any]:
    return {
        "name": layer.name,
        "tar_bytes": layer.tar_bytes,
        "sha256": layer.sha256,
        "wire_bytes": layer.wire_bytes,
        "stored_as": layer.stored_as.value,
        "entries": [
            [e.path, e.kind.value, e.size, e.mode, e.uid, e.gid, e.link, e.mtime_ns, [list(x) for x in e.xattrs], e.digest]
            for e in layer.entries
        ],
        "captured": [[path, base64.b64encode(content).decode("ascii")] for path, content in layer.captured],
    }


def _layer_from(data: dict[str, Any]) -> LayerTar:
    wire = data["wire_bytes"]
    return LayerTar(
        name=str(data["name"]),
        tar_bytes=int(data["tar_bytes"]),
        sha256=str(data["sha256"]),
        wire_bytes=None if wire is None else int(wire),
        entries=tuple(
            LayerEntry(
                str(path),
                EntryKind(kind),
                int(size),
                int(mode),
                int(uid),
                int(gid),
                str(link),
                int(mtime_ns),
                tuple((str(key), str(value)) for key, value in xattrs),
                str(digest),
            )
            for path, kind, size, mode, uid, gid, link, mtime_ns, xattrs, digest in data["entries"]
        ),
        captured=tuple((str(path), base64.b64decode(text, validate=True)) for path, text in data["captured"]),
        stored_as=Compression(data["stored_as"]),
    )
