"""Builders of synthetic `docker save` streams, laid out as Engine 20.10 writes them (no tests here).

A save stream is a tar of a directory walked in lexical order::

    <layer-id>/  <layer-id>/VERSION  <layer-id>/json  <layer-id>/layer.tar   (per layer)
    <config-hex>.json   manifest.json   repositories

so manifest.json comes after the layers.  Layer tars are written by `tarfile`
(PAX format, like Go's archive/tar for long names), members without `./`.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from harness.layers.unpack import ChunkStream

EMPTY_LAYER_TAR = bytes(1024)


@dataclass(frozen=True)
class M:
    """One layer-tar member: kind in file/dir/symlink/hardlink/whiteout/opaque/char/fifo."""

    path: str
    kind: str = "file"
    data: bytes = b""
    mode: int = 0o644
    link: str = ""
    uid: int = 0
    gid: int = 0
    mtime: float = 1_600_000_000  # a float is written as a PAX record, to the nanosecond
    xattrs: tuple[tuple[str, str], ...] = ()


def F(
    path: str,
    data: bytes | int = b"",
    mode: int = 0o644,
    uid: int = 0,
    mtime: float = 1_600_000_000,
    xattrs: tuple[tuple[str, str], ...] = (),
) -> M:
    if isinstance(data, int):
        data = bytes(data)
    return M(path, "file", data, mode, uid=uid, mtime=mtime, xattrs=xattrs)


def D(path: str, mode: int = 0o755) -> M:
    return M(path, "dir", mode=mode)


def S(path: str, target: str) -> M:
    return M(path, "symlink", link=target, mode=0o777)


def H(path: str, target: str) -> M:
    return M(path, "hardlink", link=target)


def W(path: str) -> M:
    """A whiteout deleting `path`."""
    parent, _, base = path.rstrip("/").rpartition("/")
    return M(f"{parent}/.wh.{base}" if parent else f".wh.{base}", "file")


def O(directory: str) -> M:  # noqa: E743 - reads like the marker it makes
    """The opaque marker of `directory`."""
    return M(f"{directory.rstrip('/')}/.wh..wh..opq", "file")


def member_info(m: M) -> tarfile.TarInfo:
    info = tarfile.TarInfo(m.path)
    info.mode = m.mode
    info.uid, info.gid = m.uid, m.gid
    info.mtime = m.mtime
    info.pax_headers = {f"SCHILY.xattr.{name}": value for name, value in m.xattrs}
    if m.kind == "file":
        info.type, info.size = tarfile.REGTYPE, len(m.data)
    elif m.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif m.kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, m.link
    elif m.kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, m.link
    elif m.kind == "char":
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    elif m.kind == "fifo":
        info.type = tarfile.FIFOTYPE
    else:
        raise ValueError(m.kind)
    return info


def layer_tar(*members: M, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A layer tar as Go's archive/tar ends it: two zero blocks, no record padding."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for m in members:
            info = member_info(m)
            tar.addfile(info, io.BytesIO(m.data) if m.kind == "file" else None)
        end = tar.offset
    return buffer.getvalue()[:end] + bytes(1024)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Saved:
    """A built save stream and what went into it."""

    stream: bytes
    layer_tars: list[bytes]
    layer_names: list[str]
    config: dict
    config_name: str
    manifest: list = field(default_factory=list)


def _outer_add(tar: tarfile.TarFile, name: str, data: bytes | None, *, kind: str = "file", link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 1_600_000_000
    if kind == "dir":
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    elif kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, link
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def save_stream(
    layers: Iterable[bytes],
    *,
    history: list[dict] | None = None,
    repo_tags: tuple[str, ...] = ("synthetic:latest",),
    order: str = "engine",
    link_duplicates: bool = True,
) -> Saved:
    """The docker-save stream of an image made of `layers` (bottom-up).

    order: "engine" (lexical, as 20.10 writes: manifest.json after the layers),
    "manifest-first", or "reversed" (layers top-down, then metadata).
    Identical layer tars after the first are written as symlinks, as the Engine does.
    """
    layers = list(layers)
    diff_ids = [sha256(t) for t in layers]
    if history is None:
        history = [{"created": "2020-09-13T12:26:40Z", "created_by": f"/bin/sh -c step {i}"} for i in range(len(layers))]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    chain = ""
    ids = []
    for diff_id in diff_ids:
        chain = hashlib.sha256((chain + diff_id).encode()).hexdigest()
        ids.append(chain)
    names = [f"{i}/layer.tar" for i in ids]
    manifest = [{"Config": config_name, "RepoTags": list(repo_tags), "Layers": names}]
    files: list[tuple[str, bytes | None, str, str]] = []
    first_of: dict[str, str] = {}
    for layer_id, data, diff_id in zip(ids, layers, diff_ids, strict=True):
        files.append((f"{layer_id}/", None, "dir", ""))
        files.append((f"{layer_id}/VERSION", b"1.0", "file", ""))
        files.append((f"{layer_id}/json", json.dumps({"id": layer_id}).encode(), "file", ""))
        if link_duplicates and diff_id in first_of:
            files.append((f"{layer_id}/layer.tar", None, "symlink", f"../{first_of[diff_id]}/layer.tar"))
        else:
            first_of.setdefault(diff_id, layer_id)
            files.append((f"{layer_id}/layer.tar", data, "file", ""))
    meta = [
        (config_name, config_bytes, "file", ""),
        ("manifest.json", json.dumps(manifest).encode(), "file", ""),
        ("repositories", json.dumps({}).encode(), "file", ""),
    ]
    if order == "engine":
        files = sorted(files + meta, key=lambda f: f[0])
    elif order == "manifest-first":
        files = meta + files
    elif order == "reversed":
        groups = [files[i : i + 4] for i in range(0, len(files), 4)]
        files = [f for g in reversed(groups) for f in g] + meta
    else:
        raise ValueError(order)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, kind, link in files:
            _outer_add(tar, name, data, kind=kind, link=link)
    return Saved(buffer.getvalue(), layers, names, config, config_name, manifest)


# A read-only binary stream over an iterator of byte chunks (nothing kept but the current chunk).
GeneratorStream = ChunkStream


def tar_header(name: str, size: int, typeflag: bytes = b"0") -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = typeflag
    info.mtime = 1_600_000_000
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def big_zero_save_chunks(file_size: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """A save stream whose single layer holds one `file_size`-byte zero file, generated on the fly."""
    layer_len = 512 + file_size + (-file_size % 512) + 1024
    zeros = bytes(chunk)

    def zero_run(n: int) -> Iterator[bytes]:
        while n:
            take = min(n, chunk)
            yield zeros[:take]
            n -= take

    config = {
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]},
        "history": [{"created_by": "/bin/sh -c dd if=/dev/zero of=/big"}],
    }
    config_bytes = json.dumps(config).encode()
    manifest = json.dumps([{"Config": "c.json", "RepoTags": ["big:1"], "Layers": ["l1/layer.tar"]}]).encode()
    yield tar_header("l1/layer.tar", layer_len)
    yield tar_header("big", file_size)
    yield from zero_run(file_size + (-file_size % 512) + 1024)  # content, padding, end of the layer tar
    yield bytes(-layer_len % 512)
    for name, data in (("c.json", config_bytes), ("manifest.json", manifest)):
        yield tar_header(name, len(data))
        yield data + bytes(-len(data) % 512)
    yield bytes(1024)
