"""Wire size: the gzip length of a layer tar, computed as its bytes stream past (with its length and SHA-256).

`wire_bytes` of a layer is the length of its layer tar gzip-compressed at zlib
level 6 with a 10-byte gzip header and no file name, i.e. exactly
`len(gzip.compress(layer_tar, compresslevel=6, mtime=0))`.  Level 6 is the
"default compression" of both zlib and Go's compress/gzip, which is what the
Engine uses when it pushes a layer; Go's deflate implementation is not zlib's,
so a registry's blob size differs from this figure by a few per cent, but the
figure is reproducible to the byte from the layer tar alone.  (Python's own
`gzip.compress` default is level 9; that is not what is measured here.)

The gzip compression dominates the cost (about 40 MB/s on incompressible data,
200 MB/s on text or zeros, per core); it runs in background threads, one layer
per thread, so parsing, hashing and compression overlap.  `wire=False` skips it.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import zlib

WIRE_LEVEL = 6


class LayerDigest:
    """Counts, hashes and (optionally, in a worker) gzip-compresses the bytes of one layer tar."""

    def __init__(self, wire: bool, level: int, pool: CompressPool | None) -> None:
        self.count = 0
        self._sha = hashlib.sha256()
        self._wire = wire
        self._level = level
        self._pool = pool
        self._job: CompressJob | None = None
        if wire:
            self._job = CompressJob(level)
            if pool is not None:
                pool.start(self._job)

    def update(self, data: bytes) -> None:
        self.count += len(data)
        self._sha.update(data)
        if self._job is not None:
            if self._pool is not None:
                self._pool.feed(self._job, data)
            else:
                self._job.compress(data)

    def finish(self) -> tuple[str, CompressJob | None]:
        if self._job is not None:
            if self._pool is not None:
                self._pool.finish(self._job)
            else:
                self._job.flush()
        return "sha256:" + self._sha.hexdigest(), self._job


class CompressJob:
    """One layer's gzip stream, of which only the length is kept."""

    __slots__ = ("_obj", "length", "done")

    def __init__(self, level: int) -> None:
        self._obj = zlib.compressobj(level, zlib.DEFLATED, 31)
        self.length = 0
        self.done = False

    def compress(self, data: bytes) -> None:
        self.length += len(self._obj.compress(data))

    def flush(self) -> None:
        self.length += len(self._obj.flush())
        del self._obj  # the compressor's state (a few hundred KB) need not outlive the layer
        self.done = True


# A worker's queue: (job, a chunk to compress, or None to flush the job), or None to stop the worker.
_Jobs = queue.Queue[tuple[CompressJob, bytes | None] | None]


class CompressPool:
    """Background gzip compression: each layer is pinned to one worker (deflate is sequential).

    Queues are bounded, so memory stays at a few chunks per worker whatever the
    image size; zlib releases the GIL, so workers run beside the parser.
    """

    def __init__(self, workers: int, depth: int = 8) -> None:
        self._queues: list[_Jobs] = [queue.Queue(depth) for _ in range(workers)]
        self._threads = [
            threading.Thread(target=self._run, args=(q,), daemon=True, name=f"layers-gzip-{i}")
            for i, q in enumerate(self._queues)
        ]
        self._assigned: dict[int, _Jobs] = {}
        self._next = 0
        self._error: BaseException | None = None
        for thread in self._threads:
            thread.start()

    def _run(self, jobs: _Jobs) -> None:
        while True:
            item = jobs.get()
            if item is None:
                return
            job, data = item
            if self._error is not None:
                continue
            try:
                if data is None:
                    job.flush()
                else:
                    job.compress(data)
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = error

    def start(self, job: CompressJob) -> None:
        self._assigned[id(job)] = self._queues[self._next % len(self._queues)]
        self._next += 1

    def feed(self, job: CompressJob, data: bytes) -> None:
        self._assigned[id(job)].put((job, data))

    def finish(self, job: CompressJob) -> None:
        self._assigned.pop(id(job)).put((job, None))

    def close(self) -> None:
        for jobs in self._queues:
            jobs.put(None)
        for thread in self._threads:
            thread.join()
        if self._error is not None:
            raise self._error


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 2) - 1))
