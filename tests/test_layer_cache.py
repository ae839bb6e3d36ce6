"""Layer reads cached by content: keyed by diff_id, never trusted when corrupt or foreign, written atomically."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import logging
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.layers.cache import VERSION, LayerCache, cache_root, clear
from harness.run.measure import analyse_image, saved_names

from .fakes import FakeEngine, _image
from .layers.test_layers_build import F, layer_tar, save_stream

BASE = layer_tar(F("/etc/os-release", b"ID=debian\n"), F("/usr/bin/tool", 5000))
TOOL = layer_tar(F("/usr/bin/tool", 7000), F("/hello", b"hello\n"))
TOOL_CHANGED = layer_tar(F("/usr/bin/tool", 9000), F("/hello", b"hello!\n"))


@dataclasses.dataclass
class SavingEngine(FakeEngine):
    """Saves each image as the synthetic save stream of its layer tars."""

    streams: dict[str, bytes] = dataclasses.field(default_factory=dict)

    def add(self, *layers: bytes, oci: bool = False) -> str:
        stream = oci_save_stream(layers) if oci else save_stream(layers).stream
        image_id = "sha256:" + hashlib.sha256(stream).hexdigest()
        self.streams[image_id] = stream
        return image_id

    def save_image(self, image: str) -> Iterator[bytes]:
        self.saved.append(image)
        yield self.streams[image]


def oci_save_stream(layers: tuple[bytes, ...]) -> bytes:
    """A save stream in the OCI layout Engine 25 and later write: every blob named by its digest."""
    diff_ids = [hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
            "history": [{"created_by": f"step {i}"} for i in range(len(layers))],
        }
    ).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        [{"Config": f"blobs/sha256/{config_hex}", "RepoTags": None, "Layers": [f"blobs/sha256/{d}" for d in diff_ids]}]
    ).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [
            *((f"blobs/sha256/{d}", layer) for d, layer in zip(diff_ids, layers, strict=True)),
            (f"blobs/sha256/{config_hex}", config),
            ("manifest.json", manifest),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def entry_path(cache: LayerCache, diff_id: str) -> Path:
    return cache.folder / "layer" / f"{diff_id.removeprefix('sha256:')}.json.gz"


def test_an_image_whose_layers_are_all_known_is_not_saved(tmp_path: Path) -> None:
    engine, cache = SavingEngine(), LayerCache(tmp_path)
    image = engine.add(BASE, TOOL)
    first = analyse_image(engine, image, wire=True, cache=cache)
    again = analyse_image(engine, image, wire=True, cache=cache)
    assert engine.saved == [image]
    assert again == first == analyse_image(engine, image, wire=True)  # the same figures as read from the save stream
    assert again.wire_bytes is not None and again.dead_bytes == 5000


def test_an_image_asked_for_by_tag_is_named_by_it_read_or_cached(tmp_path: Path) -> None:
    """`invoke layers --json` gave `"repo_tags": []` for every image: it was saved by ID, and cached so."""
    engine, cache = SavingEngine(), LayerCache(tmp_path)
    image_id = engine.add(BASE, TOOL)
    engine.images["me/tool:1"] = engine.images["me/tool"] = dataclasses.replace(_image(1), image_id=image_id)
    assert analyse_image(engine, "me/tool:1", cache=cache).repo_tags == ("me/tool:1",)  # saved, then cached
    assert analyse_image(engine, "me/tool:1", cache=cache).repo_tags == ("me/tool:1",)  # from the cache
    assert analyse_image(engine, "me/tool", cache=cache).repo_tags == ("me/tool:latest",)
    assert analyse_image(engine, image_id, cache=cache).repo_tags == ()
    assert engine.saved == [image_id]
    # As the Engine's own save stream says, without the cache: the tag given, none for an ID.
    assert saved_names("host.invalid:5000/me/tool") == ("host.invalid:5000/me/tool:latest",)
    assert saved_names("me/tool@sha256:" + "0" * 64) == ()


def test_the_cache_is_keyed_by_content_a_changed_layer_is_read_an_unchanged_one_kept(tmp_path: Path) -> None:
    engine, cache = SavingEngine(), LayerCache(tmp_path)
    analyse_image(engine, engine.add(BASE, TOOL), cache=cache)
    base_id = analyse_image(engine, engine.add(BASE), cache=cache).layers[0].diff_id
    assert base_id is not None
    kept = entry_path(cache, base_id).stat()
    changed = engine.add(BASE, TOOL_CHANGED)
    analysis = analyse_image(engine, changed, cache=cache)
    assert engine.saved[-1] == changed  # a layer it had never seen: the image is saved and read
    new_id = analysis.layers[1].diff_id
    assert new_id is not None and cache.layer(new_id, wire=True) is not None
    assert analysis.layers[1].file_bytes == 9007 and analysis.dead_bytes == 5000
    # The unchanged layer's entry is the same file, not written again.
    after = entry_path(cache, base_id).stat()
    assert (after.st_ino, after.st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)
    assert analysis == analyse_image(engine, changed)


def test_what_tells_a_file_stored_again_unchanged_is_cached_with_its_layer(tmp_path: Path) -> None:
    engine, cache = SavingEngine(), LayerCache(tmp_path)
    same = F("var/cache/debconf/templates.dat", b"t" * 500)
    image = engine.add(layer_tar(same, F("a", b"1")), layer_tar(same, F("a", b"2")))
    fresh = analyse_image(engine, image, cache=cache)
    saves = len(engine.saved)
    cached = analyse_image(engine, image, cache=cache)
    assert len(engine.saved) == saves  # every layer known: read from the cache, not saved again
    assert fresh.unchanged_bytes == cached.unchanged_bytes == 500


def test_without_the_wire_size_cached_a_wire_request_reads_the_image(tmp_path: Path) -> None:
    engine, cache = SavingEngine(), LayerCache(tmp_path)
    image = engine.add(BASE, TOOL)
    analyse_image(engine, image, wire=False, cache=cache)
    assert analyse_image(engine, image, wire=True, cache=cache).wire_bytes is not None
    assert analyse_image(engine, image, wire=False, cache=cache).wire_bytes is not None  # the fuller read serves both
    assert engine.saved == [image, image]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign", "other-version"])
def test_a_corrupt_or_foreign_entry_is_recomputed_with_a_warning(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine, cache = SavingEngine(), LayerCache(tmp_path)
    image = engine.add(BASE, TOOL)
    truth = analyse_image(engine, image, cache=cache)
    base_id, tool_id = (layer.diff_id for layer in truth.layers)
    path = entry_path(cache, base_id)
    if damage == "garbage":
        path.write_bytes(b"\x00not gzip at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:40])  # a crash mid-write that was not renamed would leave no such file
    elif damage == "foreign":
        path.write_bytes(entry_path(cache, tool_id).read_bytes())  # another layer's read under this digest
    else:
        text = gzip.decompress(path.read_bytes()).replace(f'"version":{VERSION}'.encode(), b'"version":99')
        path.write_bytes(gzip.compress(text))
    caplog.set_level(logging.WARNING, logger="harness.layers.cache")
    again = analyse_image(engine, image, cache=cache)
    assert again == truth
    assert engine.saved == [image, image]  # not trusted: the image was read again
    assert any(base_id in record.getMessage() for record in caplog.records)
    assert cache.layer(base_id, wire=True) is not None  # and the entry written again, whole
    assert analyse_image(engine, image, cache=cache) == truth and engine.saved == [image, image]


def test_entries_are_written_atomically_and_a_leftover_temporary_file_is_ignored(tmp_path: Path) -> None:
    engine, cache = SavingEngine(), LayerCache(tmp_path)
    image = engine.add(BASE)
    diff_id = analyse_image(engine, image, cache=cache).layers[0].diff_id
    folder = entry_path(cache, diff_id).parent
    assert [p.name for p in folder.iterdir()] == [entry_path(cache, diff_id).name]  # no temporary file left
    (folder / f".{entry_path(cache, diff_id).name}.x.tmp").write_bytes(b"half an entry")  # a crash mid-write
    analyse_image(engine, image, cache=cache)
    assert engine.saved == [image]


def test_clean_empties_the_cache_folder(tmp_path: Path) -> None:
    engine, cache = SavingEngine(), LayerCache(tmp_path / "hello-ladder")
    analyse_image(engine, engine.add(BASE, TOOL), cache=cache)
    assert clear(tmp_path / "hello-ladder") == 3  # two layers and the image's outline
    assert not (tmp_path / "hello-ladder").exists() and clear(tmp_path / "hello-ladder") == 0


def test_the_cache_folder_follows_xdg() -> None:
    assert cache_root({"XDG_CACHE_HOME": "/var/cache/me"}) == Path("/var/cache/me/hello-ladder")
    assert cache_root({}) == Path.home() / ".cache" / "hello-ladder"
    assert cache_root({"XDG_CACHE_HOME": "relative"}) == Path.home() / ".cache" / "hello-ladder"  # as the spec says


def test_in_the_oci_layout_a_known_layer_is_skipped_and_only_the_changed_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Engine 25 and later name each layer blob by its diff_id: a known one is neither parsed nor compressed."""
    import harness.layers.savetar as savetar

    engine, cache = SavingEngine(), LayerCache(tmp_path)
    truth_changed = analyse_image(engine, engine.add(BASE, TOOL_CHANGED, oci=True))  # uncached, for comparison
    analyse_image(engine, engine.add(BASE, TOOL, oci=True), cache=cache)
    read: list[str] = []
    real = savetar.read_layer

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        read.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(savetar, "read_layer", spy)
    changed = engine.add(BASE, TOOL_CHANGED, oci=True)
    analysis = analyse_image(engine, changed, cache=cache)
    assert read == [f"blobs/sha256/{hashlib.sha256(TOOL_CHANGED).hexdigest()}"]  # BASE's blob was skipped
    assert analysis == truth_changed


def test_the_scanner_view_of_an_image_is_read_once_by_its_id(tmp_path: Path) -> None:
    from harness.run.scanview import scanner_view

    engine, cache = SavingEngine(), LayerCache(tmp_path)
    exports: list[str] = []
    export = engine.export_filesystem

    def counted(image: str, labels: dict[str, str]):  # type: ignore[no-untyped-def]
        exports.append(image)
        return export(image, labels)

    engine.export_filesystem = counted  # type: ignore[method-assign]
    image = engine.add(BASE)
    first = scanner_view(engine, image, {}, cache)
    assert scanner_view(engine, image, {}, cache) == first == scanner_view(engine, image, {})
    assert exports == [image, image]  # the cached call did not export
