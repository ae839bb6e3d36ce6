"""Read the tar stream `docker save` writes (Engine API `GET /images/{name}/get`), in one pass.

The outer stream is the legacy save format as Engine 20.10 writes it::

    <id>/VERSION  <id>/json  <id>/layer.tar   (one directory per layer, in lexical order)
    <config-hex>.json                          (the image config: rootfs.diff_ids, history)
    manifest.json                              ([{"Config", "RepoTags", "Layers": ["<id>/layer.tar", ...]}])
    repositories

`manifest.json` usually comes *after* the layers (the Engine tars a directory
in lexical order), so every layer tar is analysed as it streams past, keyed by
its member name, and put in manifest order at the end.  Newer Engines (25+)
write an OCI layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`) with a
`manifest.json` beside it naming the blobs; those work too: a blob whose first
block is a tar header is analysed as a layer, and so is a blob compressed with
gzip or zstd (the containerd image store keeps layers as they were pulled or
built), decompressed as it streams; such a layer's wire size is its blob's
length, exactly.

Each layer tar is read by `layertar` (members, digest, captured files) over the
strict tar reader of `tarstream`, its gzip size computed by `wire`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import posixpath
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from harness.layers.compressed import Compression, decompressing_reader
from harness.layers.layertar import (
    DEFAULT_CAPTURE,
    TYPE_KIND,
    EntryKind,
    LayerEntry,
    LayerTar,
)
from harness.layers.layertar import (
    read_layer as _read_layer,  # by this name: tests/test_layer_cache.py spies on which blobs are parsed
)
from harness.layers.tarstream import (
    BLOCK,
    ByteSource,
    CorruptTar,
    MemberReader,
    OuterStreamEnded,
    SaveStreamError,
    SourceEnded,
    is_tar_start,
    iter_headers,
    normalise,
)
from harness.layers.wire import (
    WIRE_LEVEL,
    CompressJob,
    CompressPool,
    default_workers,
)

SMALL_LIMIT = 16 << 20  # non-layer members (json) larger than this are refused
SMALL_TOTAL_LIMIT = 64 << 20


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of the config's `history`."""

    created_by: str
    empty_layer: bool
    created: str = ""
    comment: str = ""


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


def _metadata_name(name: str) -> str | None:
    """ "keep" for json the image needs (manifest, config, index), "skip" for other metadata, else None."""
    base = name.rpartition("/")[2]
    if base in ("json", "VERSION", "repositories", "oci-layout"):
        return "skip"  # per-layer v1 json, format versions: not needed
    return "keep" if base.endswith(".json") else None


# --------------------------------------------------------------------------- the save stream


@dataclass
class _Pending:
    name: str
    entries: list[LayerEntry]
    captured: dict[str, bytes]
    tar_bytes: int
    sha256: str
    job: CompressJob | None
    stored_as: Compression = Compression.NONE
    blob_bytes: int | None = None  # a compressed blob's own length: its exact wire size

    @property
    def wire_bytes(self) -> int | None:
        if self.blob_bytes is not None:
            return self.blob_bytes
        return self.job.length if self.job else None


def read_save(
    stream: BinaryIO,
    *,
    image: str | None = None,
    wire: bool = True,
    level: int = WIRE_LEVEL,
    capture: Iterable[str] = DEFAULT_CAPTURE,
    workers: int | None = None,
    subject: str = "docker save stream",
    known: Callable[[str], LayerTar | None] | None = None,
) -> SavedImage:
    """Read a docker-save tar stream in one pass and return the image's layers in manifest order.

    `image` picks one image of a multi-image save by a RepoTag or an image-id
    prefix; with one image it may be omitted.  `wire=False` skips the gzip sizes
    (`LayerTar.wire_bytes` is then None).  `workers` is the number of gzip threads
    (default: CPUs - 1, at most 4; 0 compresses in the calling thread).
    Raises SaveStreamError (CorruptTar, HostileMember) with a one-line message.

    `known` maps a diff_id to a read of that layer made before (see `cache`): a
    layer blob the stream names by that digest (`blobs/sha256/<diff_id>`, the
    OCI layout Engine 25 and later write for uncompressed layers) is then
    skipped, neither parsed nor compressed.  The classic format names a layer
    by a v1 id, which says nothing of its content: such layers are always read.
    """
    capture = frozenset(capture)
    workers = default_workers() if workers is None else workers
    pool = CompressPool(workers) if wire and workers > 0 else None
    outer = ByteSource(stream.read)
    pending: dict[str, _Pending] = {}
    links: dict[str, str] = {}
    small: dict[str, bytes] = {}
    small_total = 0
    not_tar: dict[str, bytes] = {}  # large members that are not tars -> their first bytes
    try:
        try:
            headers = iter_headers(outer, subject)
            for header in headers:
                name = normalise(header.name, subject).lstrip("/")
                if header.typeflag == b"2" and name.endswith(".tar"):
                    links[name] = normalise(
                        posixpath.join(posixpath.dirname(name), header.linkname), subject, "layer link"
                    ).lstrip("/")
                    continue
                if TYPE_KIND.get(header.typeflag) is not EntryKind.FILE:
                    continue
                member = MemberReader(outer, header.data_size, subject)
                layer_subject = f"{subject}: layer {name}"
                metadata = _metadata_name(name)
                if metadata == "skip":
                    continue
                if metadata == "keep":
                    if header.data_size > SMALL_LIMIT or small_total + header.data_size > SMALL_TOTAL_LIMIT:
                        raise SaveStreamError(
                            subject, "unexpectedly large metadata member", f"{name} has {header.data_size} bytes"
                        )
                    small[name] = outer.read_exact(header.data_size)
                    small_total += header.data_size
                    continue
                cached = _known_blob(name, known)
                if cached is not None:
                    pending[name] = _Pending(
                        name,
                        list(cached.entries),
                        dict(cached.captured),
                        cached.tar_bytes,
                        cached.sha256,
                        None,
                        cached.stored_as,
                        cached.wire_bytes,
                    )
                    continue  # the rest of the member is skipped by the header iterator
                first = b""
                if not name.endswith(".tar"):
                    first = member.read(BLOCK)
                    while len(first) < min(BLOCK, header.data_size):
                        first += member.read(BLOCK - len(first))
                    compression = Compression.sniff(first)
                    if compression is not Compression.NONE:
                        layer = _read_compressed_layer(member, first, compression, name, header.data_size, layer_subject, capture)
                        if layer is None:
                            not_tar[name] = first[:4]
                        else:
                            pending[name] = layer
                        continue
                    if not is_tar_start(first) and header.data_size:
                        # not a layer tar (e.g. an OCI json blob without extension): keep it if small
                        if header.data_size <= SMALL_LIMIT and small_total + header.data_size <= SMALL_TOTAL_LIMIT:
                            small[name] = first + outer.read_exact(header.data_size - len(first))
                            small_total += header.data_size
                        else:
                            not_tar[name] = first[:4]
                        continue
                entries, captured, digest = _read_layer(
                    member.read, name, layer_subject, wire=wire, level=level, capture=capture, pool=pool, first=first
                )
                if digest.count != header.data_size:
                    raise CorruptTar(
                        layer_subject, "corrupt tar", f"layer tar has {digest.count} bytes, its header says {header.data_size}"
                    )
                sha, job = digest.finish()
                pending[name] = _Pending(name, entries, captured, digest.count, sha, job)
        except (SourceEnded, OuterStreamEnded) as short:
            raise CorruptTar(
                subject, "truncated stream", f"the stream ends {short.args[0]} bytes before the end of a member"
            ) from None
        if outer.offset == 0:
            raise CorruptTar(subject, "not a docker save stream", "the stream is empty")
    finally:
        if pool is not None:
            pool.close()
    return _assemble(subject, image, pending, links, small, not_tar, capture, wire, level)


def _read_compressed_layer(
    member: MemberReader, head: bytes, compression: Compression, name: str, blob_bytes: int, subject: str, capture: frozenset[str]
) -> _Pending | None:
    """Decompress a gzip or zstd blob as it streams and read its layer tar; None if it holds no tar."""
    read = decompressing_reader(compression, head, member.read, subject)
    first = b""
    while len(first) < BLOCK:
        more = read(BLOCK - len(first))
        if not more:
            break
        first += more
    if not is_tar_start(first):
        return None  # compressed, but not a layer: reported only if the manifest names it as one
    # The blob's own length is the wire size: no need to compress it again.
    entries, captured, digest = _read_layer(
        read, name, subject, wire=False, level=WIRE_LEVEL, capture=capture, pool=None, first=first
    )
    if read(1):
        raise CorruptTar(subject, f"corrupt {compression.value} layer", "data after the end of the layer tar")
    sha, _ = digest.finish()
    return _Pending(name, entries, captured, digest.count, sha, None, compression, blob_bytes)


def _known_blob(name: str, known: Callable[[str], LayerTar | None] | None) -> LayerTar | None:
    found = _BLOB.fullmatch(name) if known is not None else None
    return known(f"sha256:{found[1]}") if found is not None and known is not None else None


_BLOB = re.compile(r"blobs/sha256/([0-9a-f]{64})")


def _assemble(
    subject: str,
    image: str | None,
    pending: dict[str, _Pending],
    links: dict[str, str],
    small: dict[str, bytes],
    not_tar: dict[str, bytes],
    capture: frozenset[str],
    wire: bool,
    level: int,
) -> SavedImage:
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
    rootfs = config.get("rootfs") or {}
    diff_ids = tuple(str(d) for d in rootfs.get("diff_ids") or ())
    history = tuple(
        HistoryEntry(
            str(h.get("created_by", "")), bool(h.get("empty_layer", False)), str(h.get("created", "")), str(h.get("comment", ""))
        )
        for h in config.get("history") or ()
        if isinstance(h, dict)
    )
    layer_names = [str(n) for n in entry.get("Layers") or ()]
    if len(diff_ids) != len(layer_names):
        raise SaveStreamError(
            subject,
            "config and manifest disagree",
            f"{config_name} lists {len(diff_ids)} diff_ids, manifest.json {len(layer_names)} layers",
        )
    layers = []
    built: dict[str, LayerTar] = {}
    for name in layer_names:
        key = normalise(name, subject, "manifest layer").lstrip("/")
        seen = set()
        while key in links and key not in pending and key not in seen:
            seen.add(key)
            key = links[key]
        small_not_tar = key in small and not is_tar_start(small[key].ljust(BLOCK, b"\0"))
        if key not in pending and (key in not_tar or small_not_tar):
            head = not_tar.get(key, small.get(key, b""))[:4]
            raise SaveStreamError(
                subject,
                "unsupported layer",
                f"{name} is neither a tar nor a gzip- or zstd-compressed tar (it starts with {head!r})",
            )
        if key not in pending and key in small:  # a small layer blob kept before we knew it was a layer
            entries, captured, digest = _read_layer(
                io.BytesIO(small[key]).read, key, f"{subject}: layer {key}", wire=wire, level=level, capture=capture, pool=None
            )
            sha, job = digest.finish()
            pending[key] = _Pending(key, entries, captured, digest.count, sha, job)
        if key not in pending:
            raise SaveStreamError(subject, "layer missing", f"manifest.json lists {name}, the stream has no such tar")
        p = pending[key]
        if key not in built:
            built[key] = LayerTar(
                name, p.tar_bytes, p.sha256, p.wire_bytes, tuple(p.entries), tuple(sorted(p.captured.items())), p.stored_as
            )
        layers.append(built[key] if built[key].name == name else dataclasses.replace(built[key], name=name))
    return SavedImage(
        repo_tags=tuple(str(t) for t in entry.get("RepoTags") or ()),
        image_id="sha256:" + hashlib.sha256(config_bytes).hexdigest(),
        config_name=config_name,
        diff_ids=diff_ids,
        history=history,
        layers=tuple(layers),
    )


def _json(subject: str, name: str, data: bytes) -> object:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise SaveStreamError(subject, f"{name}: invalid json", str(error)) from None


def _pick(subject: str, manifest: Sequence[dict], image: str | None, small: dict[str, bytes]) -> dict:
    if image is None:
        if len(manifest) == 1:
            return manifest[0]
        tags = [t for m in manifest for t in m.get("RepoTags") or ()]
        raise SaveStreamError(subject, "several images in the stream, none chosen", f"RepoTags {tags}")
    for m in manifest:
        if image in (m.get("RepoTags") or ()):
            return m
    wanted = image.removeprefix("sha256:")
    for m in manifest:
        config = small.get(str(m.get("Config", "")))
        if config is not None and len(wanted) >= 4 and hashlib.sha256(config).hexdigest().startswith(wanted):
            return m
    tags = [t for m in manifest for t in m.get("RepoTags") or ()]
    raise SaveStreamError(subject, f"image {image!r} not in the stream", f"RepoTags {tags}")
