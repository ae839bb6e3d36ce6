"""The figures of an image, from its layer tars' metadata: the merged view, per-layer figures, dead bytes.

The merged view
---------------
Layers are applied bottom-up to a path -> metadata view exactly as the Engine
applies a layer tar; see `mergedview` for the rules and for content identity.

Figures (all byte figures are regular-file content bytes, as in the tar headers)
--------------------------------------------------------------------------------
* `size_bytes`: sum over all layers of the regular-file sizes in the layer tars
  (what the layer tars store; close to the Engine's image Size).
* `live_bytes`: content bytes the final merged view shows (hard-linked content once).
* `dead_bytes`: content stored in some layer that the final view does not show
  (deleted later, replaced later - a metadata-only change replaces it too, since
  overlayfs copies the whole file up - or hidden by an opaque directory).
  `size_bytes == live_bytes + dead_bytes`, to the byte.
* per layer, `dead_bytes`: bytes stored in *this* layer that are dead at the end;
  `killed_bytes`: bytes (of this or lower layers) that *this* layer made dead.
  Both sum to the image's `dead_bytes`.
* per layer, `added` / `changed` / `deleted` count non-directory paths (files,
  symlinks, hard links, devices): added = written here, not in the view below;
  changed = written here over a non-directory of the view below (metadata-only
  rewrites included); deleted = non-directories of the view below that the view
  after this layer no longer has (whiteouts, opaque directories, and a directory
  replacing a file).  `*_bytes` are the regular-file sizes of those paths.
* `content_bytes`: the layer tars' content, as the tutorial measured it
  (regular files plus symlink targets, see `LayerTar.content_bytes`): equal to
  the Engine's `Size` on overlay2.
* per layer, `unchanged` / `unchanged_bytes`: of the changed paths, the regular
  files written exactly as the view below had them (`LayerEntry.same_file_as`):
  overlay2 stores them again, the containerd store's differ leaves them out;
  the image's `unchanged_bytes` is their sum.
* `headline_bytes`: `content_bytes - unchanged_bytes`, the size the results
  give: the same on every image store, and on overlay2 its `Size` less what
  its layers store unchanged.
* `wire_bytes`: the layer's size on the wire: a compressed blob's own length
  where the save stream stores it compressed, else the gzip length at level 6
  of its tar (see `wire`).

dive's figures are computed by `dive.dive_figures`; see its docstring.  `render` turns
the figures into a per-layer table or json.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from harness.debian.dpkg import DPKG_STATUS, Package, installed_packages
from harness.layers.compressed import Compression
from harness.layers.declared import declared_in
from harness.layers.dive import DiveFigures, dive_figures
from harness.layers.layertar import EntryKind, LayerTar
from harness.layers.manifest import SavedImage
from harness.layers.mergedview import LayerChanges, MergedView, apply_layer
from harness.records.layers import ScannerView

# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PathSize:
    path: str
    size: int


@dataclass(frozen=True)
class Layer:
    """One layer's figures; see the module docstring for the definitions."""

    index: int
    name: str  # the member name in the save stream, e.g. `<id>/layer.tar`
    diff_id: str | None  # from the config's rootfs.diff_ids
    digest_matches: bool | None  # sha256 of the layer tar == diff_id (None without a diff_id)
    instruction: str | None  # created_by of the aligned history entry
    tar_bytes: int  # length of the layer tar
    wire_bytes: int | None  # the compressed blob's length, or the layer tar's gzip length at level 6
    stored_as: Compression  # how the save stream stored the layer
    file_bytes: int  # sum of regular-file sizes in the layer tar
    content_bytes: int  # regular files plus symlink targets: the layer's size on overlay2
    entries: int  # members (root directory excluded)
    added: int
    changed: int
    deleted: int
    added_bytes: int
    changed_bytes: int
    deleted_bytes: int
    whiteouts: int
    opaque_dirs: int
    dead_bytes: int  # stored here, not shown by the final view
    killed_bytes: int  # made dead by this layer
    largest: tuple[PathSize, ...]  # the largest regular files of this layer tar, largest first
    unchanged: int = 0  # of `changed`: regular files stored again exactly as the view below had them
    unchanged_bytes: int = 0


@dataclass(frozen=True)
class ImageAnalysis:
    """Everything measured on one image; see the module docstring for the definitions."""

    repo_tags: tuple[str, ...]
    image_id: str | None
    layers: tuple[Layer, ...]
    size_bytes: int  # regular-file bytes stored over all layer tars
    content_bytes: int  # regular files plus symlink targets over all layer tars: overlay2's `Size`
    live_bytes: int  # regular-file bytes the final view shows
    dead_bytes: int  # size_bytes - live_bytes
    tar_bytes: int  # sum of layer tar lengths
    wire_bytes: int | None  # sum of the layers' gzip lengths (None if not computed)
    efficiency: float  # dive's efficiency score
    wasted_bytes: int  # dive's wasted bytes
    user_wasted_percent: float | None  # dive's WastedUserPercent, a fraction
    dive: DiveFigures
    final_paths: int  # paths of the final merged view (directories included)
    packages: tuple[Package, ...] | None = None  # dpkg packages of the final view, None without dpkg
    # The config history's `empty_layer` flags, oldest first: which history entries added a layer.
    history_empty_layer: tuple[bool, ...] = ()
    # The packages an SBOM scanner sees, and the bytes of the metadata; None where a status file was not captured.
    declared: ScannerView | None = None
    # Regular-file bytes stored again exactly as the view below had them (overlay2 stores them; containerd's differ does not).
    unchanged_bytes: int = 0

    @property
    def headline_bytes(self) -> int:
        """The headline size: `content_bytes - unchanged_bytes`, the same on every image store."""
        return self.content_bytes - self.unchanged_bytes


# --------------------------------------------------------------------------- the image


def analyse_layers(
    layers: Sequence[LayerTar],
    *,
    diff_ids: Sequence[str] | None = None,
    instructions: Sequence[str | None] | None = None,
    repo_tags: Sequence[str] = (),
    image_id: str | None = None,
    top_n: int = 10,
    history_empty_layer: Sequence[bool] = (),
) -> ImageAnalysis:
    """Analyse layer tars given bottom-up; `diff_ids` / `instructions` aligned with them.

    `history_empty_layer` is the config history's `empty_layer` flags, carried for the Engine's
    history to be lined up with the layers (`ImageInfo.aligned`); a caller that caches an image's
    outline keeps them with it.
    """
    view = MergedView(len(layers))
    counts = [apply_layer(view, i, layer.entries) for i, layer in enumerate(layers)]
    live = sum(size for size, refs in zip(view.content_size, view.refs, strict=True) if refs > 0)
    stored = sum(view.content_size)
    built = tuple(
        _layer_figures(i, layer, c, view, _aligned(diff_ids, i), _aligned(instructions, i), top_n)
        for i, (layer, c) in enumerate(zip(layers, counts, strict=True))
    )
    packages = _packages(view, layers)
    declared = declared_in(view, layers)
    final_paths = len(view.items)
    del view  # the merged view and dive's trees need not be alive together
    dive = dive_figures([layer.entries for layer in layers])
    wires = [layer.wire_bytes for layer in layers if layer.wire_bytes is not None]
    return ImageAnalysis(
        repo_tags=tuple(repo_tags),
        image_id=image_id,
        layers=built,
        size_bytes=stored,
        content_bytes=sum(layer.content_bytes for layer in layers),
        live_bytes=live,
        dead_bytes=stored - live,
        tar_bytes=sum(layer.tar_bytes for layer in layers),
        wire_bytes=sum(wires) if len(wires) == len(layers) else None,  # None if any layer's is unknown
        efficiency=dive.efficiency,
        wasted_bytes=dive.wasted_bytes,
        user_wasted_percent=dive.user_wasted_percent,
        dive=dive,
        final_paths=final_paths,
        packages=packages,
        history_empty_layer=tuple(history_empty_layer),
        declared=declared,
        unchanged_bytes=sum(c.unchanged_bytes for c in counts),
    )


def _aligned(values: Sequence[str | None] | None, index: int) -> str | None:
    """The index-th of values given aligned with the layers; None where there are none, or too few."""
    return values[index] if values is not None and index < len(values) else None


def _layer_figures(
    index: int,
    layer: LayerTar,
    counts: LayerChanges,
    view: MergedView,
    diff_id: str | None,
    instruction: str | None,
    top_n: int,
) -> Layer:
    """One layer's figures, once every layer has been applied to `view`."""
    files = [e for e in layer.entries if e.kind is EntryKind.FILE]
    largest = heapq.nlargest(top_n, files, key=lambda e: (e.size, e.path))
    return Layer(
        index=index,
        name=layer.name,
        diff_id=diff_id,
        digest_matches=None if diff_id is None else diff_id == layer.sha256,
        instruction=instruction,
        tar_bytes=layer.tar_bytes,
        wire_bytes=layer.wire_bytes,
        stored_as=layer.stored_as,
        file_bytes=sum(e.size for e in files),
        content_bytes=layer.content_bytes,
        entries=len(layer.entries),
        added=counts.added,
        changed=counts.changed,
        deleted=counts.deleted,
        added_bytes=counts.added_bytes,
        changed_bytes=counts.changed_bytes,
        deleted_bytes=counts.deleted_bytes,
        whiteouts=counts.whiteouts,
        opaque_dirs=counts.opaque_dirs,
        dead_bytes=view.dead_in[index],
        killed_bytes=view.killed[index],
        largest=tuple(PathSize(e.path, e.size) for e in largest),
        unchanged=counts.unchanged,
        unchanged_bytes=counts.unchanged_bytes,
    )


def _packages(view: MergedView, layers: Sequence[LayerTar]) -> tuple[Package, ...] | None:
    """The dpkg packages of the final view; None when it has no dpkg status, or its content was not captured."""
    status = view.items.get(DPKG_STATUS)
    if status is None or status[2] < 0:
        return None
    text = _content_of(layers[view.content_layer[status[2]]], status, view, DPKG_STATUS)
    return None if text is None else installed_packages(text.decode("utf-8", "replace"))


def _content_of(layer: LayerTar, item: tuple[bool, int, int, int], view: MergedView, path: str) -> bytes | None:
    """The captured content behind `item`, when it is the file `path` written by `layer`."""
    content = layer.captured_content(path)
    if content is None or item[1] != view.content_layer[item[2]]:
        return None  # a hard link to other content, or not captured (too large)
    return content


def analyse_saved(saved: SavedImage, *, top_n: int = 10) -> ImageAnalysis:
    """Analyse an image read by `read_save`."""
    return analyse_layers(
        saved.layers,
        diff_ids=saved.diff_ids,
        instructions=saved.instructions(),
        repo_tags=saved.repo_tags,
        image_id=saved.image_id,
        top_n=top_n,
        history_empty_layer=[entry.empty_layer for entry in saved.history],
    )
