"""A slim image written byte for byte by the harness, so that the same source image always gives the same image ID.

`docker build` stamps the build's wall-clock time into the image config and
the files' mtimes into the layer, so two builds of the same files differ.
Here the layer tar lists its entries sorted by path, owned by root, with
mtimes clamped to SOURCE_DATE_EPOCH (or, without it, the creation time of
the base the source was built from: harness.run.slimbuild.slim_epoch), and
the config's `created` is that same instant; the result
is a `docker save` archive the Engine loads as it is.  The image ID is the
SHA-256 of the config, which names the layer by its own SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from harness.elf import RootFS
from harness.records.engine import ImageOrigin
from harness.records.errors import HarnessError

# What the classic builder puts first in the Env of every Linux image.
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageWriteError(HarnessError):
    """A planned file that cannot be put in the layer (a device, a socket)."""


@dataclass(frozen=True)
class ImageArchive:
    image_id: str  # sha256:<hex of the config>
    data: bytes  # a `docker save` archive: manifest.json, the config, one layer
    layer_bytes: int  # the layer tar's length
    epoch: int  # the instant the mtimes were clamped to and the config's `created`


@dataclass(frozen=True)
class ImageFile:
    """A file, link or folder to write into a [slim] image's layer (what `harness.layers` reads back is a LayerEntry)."""

    path: PurePosixPath
    mode: int  # stat's st_mode: type and permissions
    content: bytes | Path | None  # bytes, a host file to read, or None (a folder)
    link: str = ""  # a symlink's target
    mtime: int | None = None  # None: made by the harness, stamped with the epoch


def parse_env(entries: list[str] | None) -> tuple[tuple[str, str], ...]:
    """`["NAME=value", ...]` of an image config as pairs."""
    return tuple((name, value) for name, _, value in (entry.partition("=") for entry in entries or ()))


def parse_created(text: str) -> int:
    """The Engine's `Created` (RFC 3339, nanoseconds) in whole seconds since the epoch."""
    whole = text.split(".")[0].rstrip("Z")
    return int(datetime.fromisoformat(whole).replace(tzinfo=timezone.utc).timestamp())


def host_entries(root: Path, paths: Iterable[PurePosixPath]) -> list[ImageFile]:
    """The files, links and folders at `paths` inside `root`, as they are there."""
    fs = RootFS(root)
    entries = []
    for path in paths:
        host = fs.host_path(path)
        info = os.lstat(host)
        if stat.S_ISLNK(info.st_mode):
            entries.append(ImageFile(path, info.st_mode, None, os.readlink(host), int(info.st_mtime)))
        elif stat.S_ISDIR(info.st_mode):
            entries.append(ImageFile(path, info.st_mode, None, mtime=int(info.st_mtime)))
        elif stat.S_ISREG(info.st_mode):
            entries.append(ImageFile(path, info.st_mode, host, mtime=int(info.st_mtime)))
        else:
            raise ImageWriteError(f"{path}: not a file, folder or symlink: mode {oct(info.st_mode)}")
    return entries


def layer_tar(entries: Iterable[ImageFile], epoch: int) -> bytes:
    """One layer: every entry once, its missing parent folders added, sorted by path, root-owned, mtimes clamped."""
    by_path: dict[PurePosixPath, ImageFile] = {}
    for entry in entries:
        by_path.setdefault(entry.path, entry)
    for path in list(by_path):
        for parent in path.parents[:-1]:
            by_path.setdefault(parent, ImageFile(parent, stat.S_IFDIR | 0o755, None))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(by_path, key=lambda p: p.parts):
            entry = by_path[path]
            info = tarfile.TarInfo(str(path).lstrip("/"))
            info.mode = stat.S_IMODE(entry.mode)
            info.mtime = epoch if entry.mtime is None else min(entry.mtime, epoch)
            if stat.S_ISLNK(entry.mode):
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
                tar.addfile(info)
            elif entry.content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                data = entry.content.read_bytes() if isinstance(entry.content, Path) else entry.content
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def image_archive(
    layer: bytes,
    origin: ImageOrigin,
    command: Iterable[str],
    env: Iterable[tuple[str, str]],
    labels: dict[str, str],
    tag: str,
    epoch: int,
    created_by: str,
) -> ImageArchive:
    layer_digest = hashlib.sha256(layer).hexdigest()
    created = datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "architecture": origin.architecture,
        "os": origin.os,
        "created": created,
        "config": {
            "Env": [DEFAULT_PATH, *(f"{name}={value}" for name, value in env)],
            "Cmd": list(command),
            "Labels": dict(sorted(labels.items())),
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        "history": [{"created": created, "created_by": created_by}],
    }
    return _save_archive(config, layer, layer_digest, tag, epoch)


def rootfs_archive(layer: bytes, architecture: str, variant: str | None, tag: str, epoch: int, created_by: str) -> ImageArchive:
    """A root file system tar as an image of `architecture`, as `docker import` makes one, but loaded.

    Engine 20.10's import writes the Engine's own architecture into the config
    whatever platform it is given; a config written here says the right one
    on every Engine.  Like an import: one layer, the tar as it is, `CMD ["bash"]`.
    """
    layer_digest = hashlib.sha256(layer).hexdigest()
    created = datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "architecture": architecture,
        **({} if variant is None else {"variant": variant}),
        "os": "linux",
        "created": created,
        "config": {"Cmd": ["bash"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        "history": [{"created": created, "created_by": created_by}],
    }
    return _save_archive(config, layer, layer_digest, tag, epoch)


def _save_archive(config: Mapping[str, object], layer: bytes, layer_digest: str, tag: str, epoch: int) -> ImageArchive:
    """A `docker save` archive of one image: its config, its one layer, and a manifest naming `tag`."""
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = hashlib.sha256(config_bytes).hexdigest()
    manifest = [{"Config": f"{config_digest}.json", "RepoTags": [tag], "Layers": [f"{layer_digest}/layer.tar"]}]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (
            (f"{layer_digest}/layer.tar", layer),
            (f"{config_digest}.json", config_bytes),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), epoch
            tar.addfile(info, io.BytesIO(data))
    return ImageArchive(f"sha256:{config_digest}", buffer.getvalue(), len(layer), epoch)
