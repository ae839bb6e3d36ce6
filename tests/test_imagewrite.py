"""The slim image written by the harness: the same files and epoch give the same bytes, hence the same image ID."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import replace
from pathlib import Path, PurePosixPath

from harness.custody.ledger import Ledger
from harness.custody.made import Made
from harness.records import labels
from harness.records.engine import ImageOrigin
from harness.run.slimbuild import build_slim_image, slim_epoch
from harness.slim.imagewrite import host_entries, image_archive, layer_tar, parse_created
from harness.stages.slimspec import SlimSpec

from .fakes import FakeEngine

ORIGIN = ImageOrigin(1_700_000_000, "amd64", "linux")


def tree(root: Path) -> list[PurePosixPath]:
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/libz.so.1").write_bytes(b"zlib")
    os.symlink("usr/lib", root / "lib")
    (root / "hello").write_bytes(b"program")
    (root / "hello").chmod(0o755)
    return [PurePosixPath(p) for p in ("/lib", "/usr/lib/libz.so.1", "/hello")]


def members(layer: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return tar.getmembers()


def archive_config(data: bytes) -> tuple[dict, bytes]:  # type: ignore[type-arg]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        (manifest,) = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = tar.extractfile(manifest["Config"]).read()  # type: ignore[union-attr]
    return manifest, config


def test_the_layer_is_sorted_root_owned_and_clamped(tmp_path: Path) -> None:
    paths = tree(tmp_path)
    layer = layer_tar(host_entries(tmp_path, reversed(paths)), 1_000)
    infos = members(layer)
    assert [info.name for info in infos] == ["hello", "lib", "usr", "usr/lib", "usr/lib/libz.so.1"]
    assert all(info.uid == 0 and info.gid == 0 and info.uname == "" and info.mtime == 1_000 for info in infos)
    assert infos[0].mode == 0o755 and infos[1].issym() and infos[1].linkname == "usr/lib"
    # An mtime older than the epoch is kept.
    os.utime(tmp_path / "hello", (500, 500))
    assert members(layer_tar(host_entries(tmp_path, paths), 1_000))[0].mtime == 500


def test_the_same_files_and_epoch_give_the_same_image_id_and_another_epoch_another(tmp_path: Path) -> None:
    paths = tree(tmp_path)

    def image_id(epoch: int) -> str:
        layer = layer_tar(host_entries(tmp_path, paths), epoch)
        return image_archive(layer, ORIGIN, ["/hello"], [("A", "b")], {"x": "y"}, "t:1", epoch, "slim").image_id

    assert image_id(1_000) == image_id(1_000)
    assert image_id(1_000) != image_id(2_000)


def test_the_archive_is_what_docker_save_writes_and_the_id_is_the_config_digest(tmp_path: Path) -> None:
    layer = layer_tar(host_entries(tmp_path, tree(tmp_path)), 1_000)
    archive = image_archive(layer, ORIGIN, ["/hello"], [("PYTHONHOME", "/usr")], {"k": "v"}, "ns/s:tag", 1_000, "slim")
    manifest, config_bytes = archive_config(archive.data)
    assert archive.image_id == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    assert manifest["RepoTags"] == ["ns/s:tag"]
    config = json.loads(config_bytes)
    assert config["created"] == "1970-01-01T00:16:40Z"
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert config["config"]["Cmd"] == ["/hello"] and config["config"]["Env"][-1] == "PYTHONHOME=/usr"
    assert config["config"]["Labels"] == {"k": "v"}


def test_the_epoch_is_source_date_epoch_or_else_the_base_s_time_never_the_source_s() -> None:
    rebuilt = ImageOrigin(1_700_000_000, "amd64", "linux", base_created=1_600_000_000)
    assert slim_epoch(rebuilt, None) == 1_600_000_000 == slim_epoch(replace(rebuilt, created=1_800_000_000), None)
    assert slim_epoch(rebuilt, 1_000) == 1_000
    assert slim_epoch(ImageOrigin(1_700_000_000, "amd64", "linux"), None) == 1_700_000_000  # no history: its own


def test_created_is_read_to_the_second() -> None:
    assert parse_created("2026-11-29T19:40:00.123456789Z") == parse_created("2026-11-29T19:40:00Z")
    assert parse_created("1970-01-01T00:16:40Z") == 1_000


def test_a_slim_image_is_loaded_not_built_and_twice_gives_the_same_id(tmp_path: Path) -> None:
    engine = FakeEngine()
    image_labels = labels.image("ns", stage="s")
    made = Made(Ledger.open(tmp_path, engine.identity()), "session", "ns")

    def build(epoch: int | None) -> str:
        record, plan = build_slim_image(
            engine, "src", SlimSpec(PurePosixPath("/hello")), "ns/s:t", ("/hello",), image_labels, made, epoch
        )
        assert plan.copies and engine.images["ns/s:t"].image_id == record.image_id
        return record.image_id

    first, second = build(None), build(None)
    assert first == second and engine.built == [] and len(engine.loaded) == 2
    assert build(1) != first
    _, config = archive_config(engine.loaded[0])
    assert json.loads(config)["created"] == "2020-09-13T12:26:40Z"  # its base's, without SOURCE_DATE_EPOCH
    assert made.ledger.read().image(first) is not None  # recorded as this checkout's
