"""Reading the docker-save stream: order, wire size, hostile members, corrupt tars."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_layers_build import (
    D,
    F,
    H,
    M,
    O,
    S,
    W,
    layer_tar,
    save_stream,
    tar_header,
)

from harness.layers import (
    CorruptTar,
    EntryKind,
    HostileMember,
    SaveStreamError,
    analyse_save_stream,
    read_layer_tar,
    read_save,
)
from harness.records.errors import HarnessError


def read(data: bytes, **kwargs):
    return read_save(io.BytesIO(data), **kwargs)


def one_layer_save(tar_bytes: bytes) -> bytes:
    return save_stream([tar_bytes]).stream


def outer_tar(*members: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# --------------------------------------------------------------------------- reading


def test_manifest_after_layers_as_the_engine_writes_it():
    saved = save_stream([layer_tar(F("a", b"1")), layer_tar(F("b", b"22"))])
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(saved.stream))]
    assert names.index("manifest.json") > max(names.index(n) for n in saved.layer_names)
    image = read(saved.stream)
    assert [layer.name for layer in image.layers] == saved.layer_names
    assert image.repo_tags == ("synthetic:latest",)
    assert image.diff_ids == tuple(saved.config["rootfs"]["diff_ids"])
    assert [layer.sha256 for layer in image.layers] == list(image.diff_ids)
    assert [layer.tar_bytes for layer in image.layers] == [len(t) for t in saved.layer_tars]
    assert [e.path for e in image.layers[1].entries] == ["/b"]


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_wire_size_is_gzip_level_6_length(workers):
    rnd = os.urandom(300_000)
    tars = [layer_tar(F("r", rnd), F("t", b"hello layers " * 50_000)), layer_tar(F("z", 2_000_000)), bytes(1024)]
    image = read(save_stream(tars).stream, workers=workers)
    for layer, tar_bytes in zip(image.layers, tars, strict=True):
        assert layer.wire_bytes == len(gzip.compress(tar_bytes, compresslevel=6, mtime=0))
    assert read(save_stream(tars).stream, wire=False).layers[0].wire_bytes is None


def test_identical_layers_written_as_symlinks_are_resolved():
    same = layer_tar(D("etc"))
    saved = save_stream([layer_tar(F("a", 5)), same, layer_tar(F("b", 1)), same])
    assert b"../" in saved.stream  # the Engine's relative layer.tar symlink
    image = read(saved.stream)
    assert len(image.layers) == 4
    assert image.layers[3].sha256 == image.layers[1].sha256 == image.diff_ids[3]


def test_several_images_need_a_choice():
    first = save_stream([layer_tar(F("a", 1))], repo_tags=("one:1",))
    second = save_stream([layer_tar(F("b", 2))], repo_tags=("two:2",))
    manifest = first.manifest + second.manifest
    with tarfile.open(fileobj=io.BytesIO(first.stream)) as a, tarfile.open(fileobj=io.BytesIO(second.stream)) as b:
        members = [(m.name, (t.extractfile(m).read() if m.isfile() else None), m) for t in (a, b) for m in t]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as out:
        for name, data, member in members:
            if name == "manifest.json":
                continue
            out.addfile(member, io.BytesIO(data) if data is not None else None)
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        out.addfile(info, io.BytesIO(data))
    stream = buffer.getvalue()
    with pytest.raises(SaveStreamError, match="several images"):
        read(stream)
    assert [e.path for e in read(stream, image="two:2").layers[0].entries] == ["/b"]
    image_id = read(stream, image="one:1").image_id
    assert read(stream, image=image_id[:19]).repo_tags == ("one:1",)


def test_entries_carry_metadata_only():
    tar_bytes = layer_tar(
        D("./etc/"),
        F("./etc/shadow", b"x" * 9, mode=0o640, uid=42),
        S("./etc/l", "../x"),
        H("./etc/h", "./etc/shadow"),
        M("./dev/null", "char"),
        M("./run/p", "fifo"),
        W("./etc/old"),
        O("./etc"),
    )
    layer = read_layer_tar(io.BytesIO(tar_bytes))
    assert [(e.path, e.kind) for e in layer.entries] == [
        ("/etc", EntryKind.DIR),
        ("/etc/shadow", EntryKind.FILE),
        ("/etc/l", EntryKind.SYMLINK),
        ("/etc/h", EntryKind.HARDLINK),
        ("/dev/null", EntryKind.CHAR),
        ("/run/p", EntryKind.FIFO),
        ("/etc/old", EntryKind.WHITEOUT),
        ("/etc", EntryKind.OPAQUE),
    ]
    shadow = layer.entries[1]
    assert (shadow.size, shadow.mode, shadow.uid) == (9, 0o640, 42)
    assert layer.entries[2].link == "../x" and layer.entries[3].link == "/etc/shadow"
    assert layer.file_bytes == 9


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_long_names_in_every_format(fmt):
    long_dir = "/".join(["d" * 60] * 3)
    name = long_dir + "/" + "f" * 90 if fmt != tarfile.USTAR_FORMAT else "p" * 120 + "/" + "f" * 90
    target = "t" * 150 if fmt != tarfile.USTAR_FORMAT else "t" * 90
    layer = read_layer_tar(io.BytesIO(layer_tar(F(name, b"abc"), S("s", target), fmt=fmt)))
    assert layer.entries[0].path == "/" + name and layer.entries[0].size == 3
    assert layer.entries[1].link == target


def _pax_sized(name: str, data: bytes) -> bytes:
    """A member whose size only its PAX header gives: the ustar size field says 0 (as for members past 8 GiB)."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.pax_headers = {"size": str(len(data))}
    pax_and_header = bytearray(info.tobuf(tarfile.PAX_FORMAT))
    header = len(pax_and_header) - tarfile.BLOCKSIZE
    pax_and_header[header + 124 : header + 136] = b"00000000000\0"
    pax_and_header[header + 148 : header + 156] = b" " * 8
    checksum = sum(pax_and_header[header:])
    pax_and_header[header + 148 : header + 156] = b"%06o\0 " % checksum
    return bytes(pax_and_header) + data.ljust(-(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE, b"\0")


def test_a_size_only_the_pax_header_gives_is_the_one_read_and_skipped():
    tar_bytes = _pax_sized("big", b"payload") + layer_tar(F("next", b"abc"))
    layer = read_layer_tar(io.BytesIO(tar_bytes))
    assert [(e.path, e.size) for e in layer.entries] == [("/big", 7), ("/next", 3)]


def test_a_files_time_attributes_and_content_digest_are_read():
    capability = ("security.capability", "AQAAAgAgAAAAAAAAAAAAAAAAAAA=")
    tar_bytes = layer_tar(F("ping", b"elf", mtime=1_600_000_000.25, xattrs=(capability,)), F("plain", b"abc"), D("dir"))
    ping, plain, folder = read_layer_tar(io.BytesIO(tar_bytes)).entries
    assert ping.mtime_ns == 1_600_000_000_250_000_000 and ping.xattrs == (capability,)  # PAX: to the nanosecond
    assert plain.mtime_ns == 1_600_000_000 * 10**9 and plain.xattrs == ()  # the header's whole seconds
    assert plain.digest == hashlib.sha256(b"abc").hexdigest()
    assert folder.digest == ""  # only regular files have content
    assert not plain.same_file_as(ping) and plain.same_file_as(plain)


def test_a_non_numeric_pax_mtime_is_corrupt():
    info = tarfile.TarInfo("f")
    info.pax_headers = {"mtime": "yesterday"}
    with pytest.raises(CorruptTar, match="non-numeric PAX mtime"):
        read_layer_tar(io.BytesIO(info.tobuf(tarfile.PAX_FORMAT) + bytes(1024)))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c/d", "é/ü", "x" * 120]),
            st.integers(0, 3000),
            st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]),
        ),
        max_size=8,
    )
)
def test_agrees_with_tarfile(members):
    for name, size, fmt in members:
        tar_bytes = layer_tar(F(name, os.urandom(size)), D(name + "dir"), fmt=fmt)
        ours = read_layer_tar(io.BytesIO(tar_bytes))
        with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
            theirs = [("/" + m.name.rstrip("/"), m.size if m.isfile() else 0) for m in tar]
        assert [(e.path, e.size) for e in ours.entries] == theirs
        assert ours.wire_bytes == len(gzip.compress(tar_bytes, compresslevel=6, mtime=0))


def test_small_reads_from_a_pipe_like_stream():
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = memoryview(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            n = min(len(buffer), 777, len(self._data))
            buffer[:n] = self._data[:n]
            self._data = self._data[n:]
            return n

    saved = save_stream([layer_tar(F("a", 100_000)), layer_tar(W("a"))])
    a = analyse_save_stream(Trickle(saved.stream))
    assert a.dead_bytes == 100_000


# --------------------------------------------------------------------------- hostile members


@pytest.mark.parametrize(
    "member",
    [
        F("../escape", b"x"),
        F("a/../../escape", b"x"),
        F("./../x", b"x"),
        H("link", "../../etc/shadow"),
        F("dir/.wh..", b""),
        F(".wh.", b""),
    ],
)
def test_hostile_members_are_refused(member):
    with pytest.raises(HostileMember, match="climbs out of the root|deletes") as info:
        read(one_layer_save(layer_tar(member)))
    assert isinstance(info.value, HarnessError)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("docker save stream: layer ")


def test_absolute_and_dotted_names_are_neutralised():
    layer = read_layer_tar(io.BytesIO(layer_tar(F("/etc/passwd", b"x"), F("a/./b/../c", b"y"), D("./"))))
    assert [e.path for e in layer.entries] == ["/etc/passwd", "/a/c"]


def test_hostile_outer_member_is_refused():
    with pytest.raises(HostileMember):
        read(outer_tar(("../manifest.json", b"[]")))


# --------------------------------------------------------------------------- corrupt streams


def test_bad_checksum_in_a_layer_is_a_clear_error():
    good = layer_tar(F("a", b"hello"), F("b", b"world"))
    bad = bytearray(good)
    bad[1024 + 10] ^= 0x01  # inside the second member's header name
    saved = one_layer_save(bytes(bad))
    with pytest.raises(CorruptTar, match=r"layer .*/layer.tar: corrupt tar: bad header checksum at offset 1024"):
        read(saved)


def test_garbage_after_the_end_of_a_layer_is_an_error():
    tar_bytes = layer_tar(F("a", b"x")) + b"trailing garbage".ljust(512, b"\0")
    with pytest.raises(CorruptTar, match="after the end-of-archive marker"):
        read(one_layer_save(tar_bytes))


def test_layer_tar_shorter_than_its_members():
    tar_bytes = layer_tar(F("a", 10_000))[:4096]
    with pytest.raises(CorruptTar, match="truncated tar"):
        read(one_layer_save(tar_bytes))


@pytest.mark.parametrize("cut", [700, 5000, "manifest"])
def test_truncated_stream(cut):
    stream = save_stream([layer_tar(F("a", 20_000)), layer_tar(F("b", 3))]).stream
    if cut == "manifest":
        with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
            cut = tar.getmember("manifest.json").offset_data + 20
    with pytest.raises(CorruptTar, match="truncated"):
        read(stream[:cut])


def test_stream_cut_after_everything_needed_is_still_read():
    """Like Go's reader, a stream ending at a member boundary without the end marker is accepted."""
    stream = save_stream([layer_tar(F("a", 20_000))]).stream
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        cut = tar.getmember("repositories").offset
    assert read(stream[:cut]).layers[0].file_bytes == 20_000


def test_not_a_tar_at_all():
    with pytest.raises(CorruptTar, match="corrupt tar: .* at offset 0"):
        read(b"this is not a tar stream".ljust(4096, b"?"))
    with pytest.raises(CorruptTar, match="empty"):
        read(b"")


def test_missing_pieces():
    with pytest.raises(SaveStreamError, match="no manifest.json"):
        read(outer_tar(("x/layer.tar", layer_tar(F("a", b"1")))))
    manifest = json.dumps([{"Config": "c.json", "Layers": ["x/layer.tar"]}]).encode()
    config = json.dumps({"rootfs": {"diff_ids": ["sha256:00"]}, "history": []}).encode()
    with pytest.raises(SaveStreamError, match="layer missing: manifest.json lists x/layer.tar"):
        read(outer_tar(("c.json", config), ("manifest.json", manifest)))
    with pytest.raises(SaveStreamError, match="image config missing"):
        read(outer_tar(("manifest.json", manifest)))
    with pytest.raises(SaveStreamError, match="invalid json"):
        read(outer_tar(("manifest.json", b"[{")))


def test_manifest_fields_of_the_wrong_json_type_count_as_empty():
    """No Engine writes them; a string where an array belongs is not read as its characters."""
    manifest = json.dumps([{"Config": "c.json", "RepoTags": "t:1", "Layers": ["x/layer.tar"]}]).encode()
    config = json.dumps({"rootfs": {"diff_ids": ["sha256:00"]}, "history": {"created_by": "x"}}).encode()
    image = read(outer_tar(("x/layer.tar", layer_tar(F("a", b"1"))), ("c.json", config), ("manifest.json", manifest)))
    assert image.repo_tags == () and image.history == () and len(image.layers) == 1
    not_a_list = json.dumps([{"Config": "c.json", "Layers": "x/layer.tar"}]).encode()
    with pytest.raises(SaveStreamError, match="c.json lists 1 diff_ids, manifest.json 0 layers"):
        read(outer_tar(("c.json", config), ("manifest.json", not_a_list)))
    with pytest.raises(SaveStreamError, match="c.json lists 0 diff_ids, manifest.json 1 layers"):
        read(outer_tar(("c.json", json.dumps({"rootfs": "x"}).encode()), ("manifest.json", manifest)))


def test_oci_layout_blobs_are_sniffed():
    """Engine 25+ names layers blobs/sha256/<hex> without extension; manifest.json still lists them."""
    big = layer_tar(F("big", 3_000_000))
    small = layer_tar(F("s", b"tiny"))
    config = json.dumps({"rootfs": {"diff_ids": ["sha256:a", "sha256:b"]}, "history": []}).encode()
    manifest = json.dumps(
        [{"Config": "blobs/sha256/cfg", "RepoTags": ["oci:1"], "Layers": ["blobs/sha256/big", "blobs/sha256/small"]}]
    ).encode()
    stream = outer_tar(
        ("blobs/sha256/big", big),
        ("blobs/sha256/cfg", config),
        ("blobs/sha256/small", small),
        ("index.json", b"{}"),
        ("manifest.json", manifest),
    )
    image = read(stream)
    assert [layer.file_bytes for layer in image.layers] == [3_000_000, 4]
    assert image.layers[1].wire_bytes == len(gzip.compress(small, 6, mtime=0))


def test_header_helper_round_trip():
    assert len(tar_header("x", 5)) == 512


def oci_save(
    *layers: bytes,
    names: tuple[str, ...] | None = None,
    diff_ids: tuple[str, ...] | None = None,
    extra: tuple[tuple[str, bytes], ...] = (),
) -> bytes:
    """A save stream in the OCI layout the containerd image store writes: blobs without extension."""
    names = names or tuple(f"blobs/sha256/layer{i}" for i in range(len(layers)))
    config = json.dumps({"rootfs": {"diff_ids": list(diff_ids or ["sha256:x"] * len(layers))}, "history": []}).encode()
    manifest = json.dumps([{"Config": "blobs/sha256/cfg", "RepoTags": ["oci:1"], "Layers": list(names)}]).encode()
    return outer_tar(
        ("blobs/sha256/cfg", config),
        *extra,
        *zip(names, layers, strict=True),
        ("index.json", b"{}"),
        ("manifest.json", manifest),
        ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
    )


def zstd_compress(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=3).compress(data)


LAYER_MEMBERS = (
    F("usr/bin/big", os.urandom(300_000)),
    F("etc/text", b"hello\n" * 1000),
    S("usr/bin/link", "big"),
    H("usr/bin/again", "usr/bin/big"),
    W("etc/gone"),
)


@pytest.mark.parametrize(
    "compress",
    [
        lambda b: gzip.compress(b, 6, mtime=0),
        zstd_compress,
        lambda b: gzip.compress(b[:700], mtime=0) + gzip.compress(b[700:], mtime=0),
    ],
    ids=["gzip", "zstd", "gzip-two-members"],
)
def test_compressed_blobs_give_the_same_layer_as_the_uncompressed_tar(compress):
    """The containerd store's gzip/zstd blobs: every figure equals the uncompressed layer's; wire = blob length."""
    tar = layer_tar(*LAYER_MEMBERS)
    blob = compress(tar)
    plain = read(oci_save(tar)).layers[0]
    packed = read(oci_save(blob)).layers[0]
    assert packed.entries == plain.entries
    assert (packed.tar_bytes, packed.sha256, packed.content_bytes) == (plain.tar_bytes, plain.sha256, plain.content_bytes)
    assert packed.wire_bytes == len(blob)
    assert packed.stored_as.value in ("gzip", "zstd") and plain.stored_as.value == "none"
    assert packed.content_bytes == 300_000 + 6000 + len("big")


def test_a_tiny_compressed_blob_shorter_than_a_tar_block():
    tar = layer_tar()  # an empty layer: two zero blocks, compressing to a few dozen bytes
    blob = gzip.compress(tar, mtime=0)
    assert len(blob) < 512
    layer = read(oci_save(blob)).layers[0]
    assert (layer.entries, layer.tar_bytes, layer.wire_bytes) == ((), len(tar), len(blob))


@pytest.mark.parametrize(
    "damage, what",
    [
        (lambda blob: blob[: len(blob) // 2], "corrupt gzip layer: Compressed file ended before"),
        (lambda blob: blob[:200] + bytes(200) + blob[400:], "corrupt gzip layer"),
        (lambda blob: blob + b"trailing garbage", "corrupt gzip layer"),
    ],
)
def test_damaged_compressed_blobs_are_one_clear_error(damage, what):
    blob = damage(gzip.compress(layer_tar(F("big", os.urandom(100_000))), mtime=0))
    with pytest.raises(SaveStreamError, match=what) as caught:
        read(oci_save(blob))
    assert "\n" not in str(caught.value)


def test_a_compressed_blob_that_holds_no_tar_is_unsupported_only_if_named_as_a_layer():
    not_a_tar = gzip.compress(b"just text, no tar" * 100)
    with pytest.raises(SaveStreamError, match=r"unsupported layer: blobs/sha256/layer0 is neither a tar nor"):
        read(oci_save(not_a_tar))
    # the same blob beside the image, not named by its manifest, is ignored
    stream = oci_save(layer_tar(F("a", b"x")), extra=(("blobs/sha256/other", not_a_tar),))
    assert read(stream).layers[0].file_bytes == 1


def test_content_bytes_count_symlink_targets_and_hard_linked_content_once():
    layer = read(one_layer_save(layer_tar(F("a", 1000), H("b", "a"), S("c", "a-long-target"), W("gone")))).layers[0]
    assert layer.file_bytes == 1000
    assert layer.content_bytes == 1000 + len("a-long-target")
