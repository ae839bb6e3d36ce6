"""Memory does not grow with image size: a 200 MB layer streamed from a generator."""

from __future__ import annotations

import tracemalloc

from test_layers_build import GeneratorStream, big_zero_save_chunks

from harness.layers import analyse_save_stream

SIZE = 200 * 1000 * 1000


def test_200_mb_file_is_analysed_in_bounded_memory():
    stream = GeneratorStream(big_zero_save_chunks(SIZE))
    tracemalloc.start()
    try:
        analysis = analyse_save_stream(stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24 * 1000 * 1000, f"peak {peak} bytes"
    assert analysis.size_bytes == analysis.live_bytes == SIZE
    assert analysis.dead_bytes == 0
    layer = analysis.layers[0]
    assert layer.tar_bytes == 512 + SIZE + 1024
    assert layer.largest[0].path == "/big"
    assert 0 < layer.wire_bytes < SIZE // 500  # zeros compress ~1000:1
    assert layer.digest_matches is False  # the synthetic config carries a dummy diff_id
