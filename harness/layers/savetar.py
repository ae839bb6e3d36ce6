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
strict tar reader of `tarstream`, its gzip size computed by `wire`; `manifest`
reads `manifest.json` and the image config.
"""

from __future__ import annotations

import dataclasses
import io
import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from harness.layers.bytesource import ByteSource, MemberReader, OuterStreamEnded, SourceEnded
from harness.layers.compressed import Compression, decompressing_reader
from harness.layers.layertar import (
    DEFAULT_CAPTURE,
    TYPE_KIND,
    EntryKind,
    LayerEntry,
    LayerTar,
    read_layer,
)
from harness.layers.manifest import SavedImage, read_manifest
from harness.layers.tarstream import (
    BLOCK,
    CorruptTar,
    SaveStreamError,
    TarHeader,
    is_tar_start,
    iter_headers,
    normalise,
)
from harness.layers.wire import WIRE_LEVEL, CompressJob, CompressPool, LayerDigest, default_workers

SMALL_LIMIT = 16 << 20  # non-layer members (json) larger than this are refused
SMALL_TOTAL_LIMIT = 64 << 20


def _metadata_name(name: str) -> str | None:
    """ "keep" for json the image needs (manifest, config, index), "skip" for other metadata, else None."""
    base = name.rpartition("/")[2]
    if base in ("json", "VERSION", "repositories", "oci-layout"):
        return "skip"  # per-layer v1 json, format versions: not needed
    return "keep" if base.endswith(".json") else None


# --------------------------------------------------------------------------- the save stream


@dataclass
class _Pending:
    """A layer read from the stream, kept by member name until the manifest puts it in order."""

    name: str
    entries: list[LayerEntry]
    captured: dict[str, bytes]
    tar_bytes: int
    sha256: str
    job: CompressJob | None
    stored_as: Compression = Compression.NONE
    blob_bytes: int | None = None  # a compressed blob's own length: its exact wire size

    @classmethod
    def finished(
        cls,
        name: str,
        entries: list[LayerEntry],
        captured: dict[str, bytes],
        digest: LayerDigest,
        stored_as: Compression = Compression.NONE,
        blob_bytes: int | None = None,
    ) -> _Pending:
        sha, job = digest.finish()
        return cls(name, entries, captured, digest.count, sha, job, stored_as, blob_bytes)

    @classmethod
    def known(cls, name: str, layer: LayerTar) -> _Pending:
        """A layer read before (see `cache`), found again under `name`."""
        return cls(
            name,
            list(layer.entries),
            dict(layer.captured),
            layer.tar_bytes,
            layer.sha256,
            None,
            layer.stored_as,
            layer.wire_bytes,
        )

    @property
    def wire_bytes(self) -> int | None:
        if self.blob_bytes is not None:
            return self.blob_bytes
        return self.job.length if self.job else None

    def layer(self, name: str) -> LayerTar:
        return LayerTar(
            name,
            self.tar_bytes,
            self.sha256,
            self.wire_bytes,
            tuple(self.entries),
            tuple(sorted(self.captured.items())),
            self.stored_as,
        )


@dataclass(frozen=True)
class _LayerReading:
    """How the layer tars are read: with their gzip size or not, at which level, keeping which files."""

    wire: bool
    level: int
    capture: frozenset[str]

    def read_from(
        self, read: Callable[[int], bytes], name: str, subject: str, pool: CompressPool | None = None, first: bytes = b""
    ) -> tuple[list[LayerEntry], dict[str, bytes], LayerDigest]:
        return read_layer(read, name, subject, wire=self.wire, level=self.level, capture=self.capture, pool=pool, first=first)


@dataclass
class _Members:
    """What one pass over the stream kept of its members, by name, for the manifest to put in order."""

    pending: dict[str, _Pending] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # a symlinked layer tar -> its target
    small: dict[str, bytes] = field(default_factory=dict)  # json, and small blobs not known to be layers yet
    small_total: int = 0
    not_tar: dict[str, bytes] = field(default_factory=dict)  # large members that are not tars -> their first bytes

    def has_room_for(self, size: int) -> bool:
        return size <= SMALL_LIMIT and self.small_total + size <= SMALL_TOTAL_LIMIT

    def keep_small(self, name: str, data: bytes) -> None:
        self.small[name] = data
        self.small_total += len(data)


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
    reading = _LayerReading(wire, level, frozenset(capture))
    workers = default_workers() if workers is None else workers
    pool = CompressPool(workers) if wire and workers > 0 else None
    try:
        members = _StreamPass(ByteSource(stream.read), subject, reading, pool, known).read()
    finally:
        if pool is not None:
            pool.close()
    manifest = read_manifest(subject, members.small, image)
    return SavedImage(
        repo_tags=manifest.repo_tags,
        image_id=manifest.image_id,
        config_name=manifest.config_name,
        diff_ids=manifest.diff_ids,
        history=manifest.history,
        layers=_ordered_layers(subject, manifest.layer_names, members, reading),
    )


@dataclass
class _StreamPass:
    """One pass over the outer stream: each member is kept, read as a layer, or skipped as it goes past."""

    outer: ByteSource
    subject: str
    reading: _LayerReading
    pool: CompressPool | None  # the gzip workers, while the stream is read
    known: Callable[[str], LayerTar | None] | None
    members: _Members = field(default_factory=_Members)

    def read(self) -> _Members:
        try:
            for header in iter_headers(self.outer, self.subject):
                self._member(header)
        except (SourceEnded, OuterStreamEnded) as short:
            raise CorruptTar(
                self.subject, "truncated stream", f"the stream ends {short.args[0]} bytes before the end of a member"
            ) from None
        if self.outer.offset == 0:
            raise CorruptTar(self.subject, "not a docker save stream", "the stream is empty")
        return self.members

    def _member(self, header: TarHeader) -> None:
        name = normalise(header.name, self.subject).lstrip("/")
        if header.typeflag == b"2" and name.endswith(".tar"):
            target = posixpath.join(posixpath.dirname(name), header.linkname)
            self.members.links[name] = normalise(target, self.subject, "layer link").lstrip("/")
            return
        if TYPE_KIND.get(header.typeflag) is not EntryKind.FILE:
            return
        metadata = _metadata_name(name)
        if metadata == "skip":
            return
        if metadata == "keep":
            if not self.members.has_room_for(header.data_size):
                raise SaveStreamError(self.subject, "unexpectedly large metadata member", f"{name} has {header.data_size} bytes")
            self.members.keep_small(name, self.outer.read_exact(header.data_size))
            return
        cached = _known_blob(name, self.known)
        if cached is not None:
            self.members.pending[name] = _Pending.known(name, cached)
            return  # the rest of the member is skipped by the header iterator
        self._blob(name, header.data_size)

    def _blob(self, name: str, size: int) -> None:
        """A member that may be a layer: a tar, a compressed tar, or (an OCI blob without extension) anything."""
        member = MemberReader(self.outer, size, self.subject)
        layer_subject = f"{self.subject}: layer {name}"
        first = b""
        if not name.endswith(".tar"):
            first = _head(member, size)
            compression = Compression.sniff(first)
            if compression is not Compression.NONE:
                layer = _read_compressed_layer(member, first, compression, name, size, layer_subject, self.reading)
                if layer is None:
                    self.members.not_tar[name] = first[:4]
                else:
                    self.members.pending[name] = layer
                return
            if not is_tar_start(first) and size:
                # not a layer tar (e.g. an OCI json blob without extension): keep it if small
                if self.members.has_room_for(size):
                    self.members.keep_small(name, first + self.outer.read_exact(size - len(first)))
                else:
                    self.members.not_tar[name] = first[:4]
                return
        entries, captured, digest = self.reading.read_from(member.read, name, layer_subject, self.pool, first)
        if digest.count != size:
            raise CorruptTar(layer_subject, "corrupt tar", f"layer tar has {digest.count} bytes, its header says {size}")
        self.members.pending[name] = _Pending.finished(name, entries, captured, digest)


def _head(member: MemberReader, size: int) -> bytes:
    """The member's first block (all of it, if it is shorter), to sniff what it is."""
    first = member.read(BLOCK)
    while len(first) < min(BLOCK, size):
        first += member.read(BLOCK - len(first))
    return first


def _read_compressed_layer(
    member: MemberReader, head: bytes, compression: Compression, name: str, blob_bytes: int, subject: str, reading: _LayerReading
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
    entries, captured, digest = dataclasses.replace(reading, wire=False).read_from(read, name, subject, first=first)
    if read(1):
        raise CorruptTar(subject, f"corrupt {compression.value} layer", "data after the end of the layer tar")
    return _Pending.finished(name, entries, captured, digest, compression, blob_bytes)


def _known_blob(name: str, known: Callable[[str], LayerTar | None] | None) -> LayerTar | None:
    found = _BLOB.fullmatch(name) if known is not None else None
    return known(f"sha256:{found[1]}") if found is not None and known is not None else None


_BLOB = re.compile(r"blobs/sha256/([0-9a-f]{64})")


# --------------------------------------------------------------------------- the layers, in manifest order


def _ordered_layers(subject: str, layer_names: Iterable[str], members: _Members, reading: _LayerReading) -> tuple[LayerTar, ...]:
    """The layers the manifest lists, bottom-up; a tar listed twice (or linked to) is read once."""
    layers = []
    built: dict[str, LayerTar] = {}
    for name in layer_names:
        key = _follow_links(normalise(name, subject, "manifest layer").lstrip("/"), members)
        if key not in built:
            built[key] = _listed_layer(subject, name, key, members, reading).layer(name)
        layers.append(built[key] if built[key].name == name else dataclasses.replace(built[key], name=name))
    return tuple(layers)


def _follow_links(key: str, members: _Members) -> str:
    seen = set()
    while key in members.links and key not in members.pending and key not in seen:
        seen.add(key)
        key = members.links[key]
    return key


def _listed_layer(subject: str, name: str, key: str, members: _Members, reading: _LayerReading) -> _Pending:
    """The layer the manifest lists as `name` (member `key`), or why the stream has none."""
    if key in members.pending:
        return members.pending[key]
    small = members.small.get(key)
    if key in members.not_tar or (small is not None and not is_tar_start(small.ljust(BLOCK, b"\0"))):
        head = members.not_tar.get(key, small or b"")[:4]
        raise SaveStreamError(
            subject,
            "unsupported layer",
            f"{name} is neither a tar nor a gzip- or zstd-compressed tar (it starts with {head!r})",
        )
    if small is None:
        raise SaveStreamError(subject, "layer missing", f"manifest.json lists {name}, the stream has no such tar")
    # a small layer blob, kept before we knew it was a layer
    entries, captured, digest = reading.read_from(io.BytesIO(small).read, key, f"{subject}: layer {key}")
    members.pending[key] = _Pending.finished(key, entries, captured, digest)
    return members.pending[key]
