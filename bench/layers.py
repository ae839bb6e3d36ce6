"""Time the layer analysis of a saved image.

    python -m bench.layers image.tar            # a `docker save` tar
    docker save img | python -m bench.layers -  # from stdin
    python -m bench.layers --synthetic 200 --kind mixed --layers 4

Prints the analysis time and throughput (MB/s of save stream), and with
--table the per-layer table.  --synthetic generates a save stream of that many
MB on the fly (nothing on disk); the generator's own cost is measured separately
and reported as `source`.  The gzip (wire size) computation dominates; --no-wire
shows the cost without it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

from harness.layers import analyse_save_stream, layer_table, to_json
from harness.layers.unpack import ChunkStream

MB = 1000 * 1000
FILE = 1 << 20


class _Counted(io.RawIOBase):
    """Counts the bytes read through it."""

    def __init__(self, raw) -> None:
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._raw.readinto(buffer)
        self.count += n or 0
        return n or 0


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 1_600_000_000
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _system_pool(limit: int = 64 * FILE) -> bytes:
    """Real content: the host's shared libraries and binaries, as an image's layers hold."""
    parts, total = [], 0
    for root in ("/usr/lib/x86_64-linux-gnu", "/usr/lib", "/usr/bin", "/usr/share"):
        for dirpath, _, names in os.walk(root):
            for name in sorted(names):
                path = os.path.join(dirpath, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                try:
                    data = Path(path).read_bytes()
                except OSError:
                    continue
                parts.append(data)
                total += len(data)
                if total >= limit:
                    return b"".join(parts)[:limit]
    return b"".join(parts)


def pools(kind: str) -> list[bytes]:
    """Content to cut files from, built before timing starts."""
    if kind == "system":
        return [_system_pool()]
    if kind == "random":
        return [os.urandom(8 * FILE)]
    if kind == "zero":
        return [bytes(8 * FILE)]
    words = Path(__file__).read_bytes() * (8 * FILE // len(Path(__file__).read_bytes()) + 1)
    if kind == "text":
        return [words[: 8 * FILE]]
    return [os.urandom(8 * FILE), words[: 8 * FILE], bytes(8 * FILE)]  # mixed


def synthetic_chunks(total_mb: int, pools: list[bytes], layers: int) -> Iterator[bytes]:
    """A save stream of about total_mb MB: `layers` layers of 1 MiB files cut from `pools`."""
    files_per_layer = max(1, total_mb * MB // FILE // layers)
    names = [f"{i:064x}/layer.tar" for i in range(1, layers + 1)]
    config = json.dumps(
        {
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64] * layers},
            "history": [{"created_by": f"/bin/sh -c make layer {i}"} for i in range(layers)],
        }
    ).encode()
    manifest = json.dumps([{"Config": "c.json", "RepoTags": ["bench:synthetic"], "Layers": names}]).encode()
    for n, name in enumerate(names):
        layer_len = files_per_layer * (512 + FILE) + 1024
        yield _header(name, layer_len)
        for i in range(files_per_layer):
            yield _header(f"usr/lib/bench/l{n}/f{i}", FILE)
            pool = pools[(n + i) % len(pools)]
            offset = (i * 7919 * 4096) % (len(pool) - FILE)
            yield pool[offset : offset + FILE]
        yield bytes(1024)
    for name, data in (("c.json", config), ("manifest.json", manifest)):
        yield _header(name, len(data)) + data + bytes(-len(data) % 512)
    yield bytes(1024)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", help="a docker-save tar, or - for stdin")
    parser.add_argument("--synthetic", type=int, metavar="MB", help="generate a save stream of MB megabytes")
    parser.add_argument(
        "--kind",
        default="system",
        choices=["system", "zero", "random", "text", "mixed"],
        help="file content: host binaries/libraries (default), zeros, random, text, or a mix",
    )
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--no-wire", action="store_true", help="skip the gzip wire size")
    parser.add_argument("--workers", type=int, default=None, help="gzip threads (0: in the reading thread)")
    parser.add_argument("--image", help="RepoTag or id prefix, for a multi-image save")
    parser.add_argument("--table", action="store_true", help="print the per-layer table")
    parser.add_argument("--json", action="store_true", help="print the analysis as json")
    args = parser.parse_args(argv)
    if (args.path is None) == (args.synthetic is None):
        parser.error("give a path (or -) or --synthetic MB")

    source_seconds = None
    if args.synthetic is not None:
        content = pools(args.kind)
        start = time.perf_counter()
        drain = ChunkStream(synthetic_chunks(args.synthetic, content, args.layers))
        while drain.read(FILE):
            pass
        source_seconds = time.perf_counter() - start
        stream = _Counted(ChunkStream(synthetic_chunks(args.synthetic, content, args.layers)))
        label = f"synthetic {args.synthetic} MB {args.kind}, {args.layers} layer(s)"
    elif args.path == "-":
        stream = _Counted(sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer)
        label = "stdin"
    else:
        stream = _Counted(open(args.path, "rb", buffering=0))  # noqa: SIM115
        label = args.path

    start = time.perf_counter()
    analysis = analyse_save_stream(stream, image=args.image, wire=not args.no_wire, workers=args.workers)
    seconds = time.perf_counter() - start
    megabytes = stream.count / MB
    print(f"stream     {label}: {megabytes:.1f} MB, {len(analysis.layers)} layers")
    print(
        f"analysis   {seconds:.3f} s  ({megabytes / seconds:.1f} MB/s)"
        f"  wire={'off' if args.no_wire else 'on'} workers={args.workers if args.workers is not None else 'auto'}"
    )
    if source_seconds is not None:
        print(f"source     {source_seconds:.3f} s to generate the stream alone (included in the analysis time)")
    print(
        f"figures    size {analysis.size_bytes} B, dead {analysis.dead_bytes} B, wire {analysis.wire_bytes} B, "
        f"efficiency {analysis.efficiency:.4f}"
    )
    if args.table:
        from tabulate import tabulate

        headers, rows = layer_table(analysis, human=True)
        print(tabulate(rows, headers))
    if args.json:
        print(json.dumps(to_json(analysis), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
