"""Layer analysis time against the Engine's own save time, for the largest stage image.

    .venv/bin/python -m bench.layers_vs_save [--image REF] [--runs 3]

Target (issue "Explain every size"): analysing the largest stage image takes
at most 1.5 times what the Engine takes to save it.  Medians of --runs runs
each, because the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import docker

from harness.engine import DockerEngine
from harness.records import labels
from harness.records.units import human_size
from harness.run.measure import analyse_image, content_size

TARGET = 1.5


def largest_stage_image() -> str:
    # Read-only: the label finds stage images (and images built on them) to measure; it owns nothing.
    images = docker.from_env().images.list(filters={"label": labels.STAGE})
    if not images:
        sys.exit("no stage images: run `invoke all` first")
    biggest = max(images, key=lambda image: image.attrs["Size"])
    return biggest.tags[0] if biggest.tags else biggest.id


def median_seconds(action, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", help="default: the largest image labelled as a stage")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    engine = DockerEngine.from_env()
    image = args.image or largest_stage_image()
    size = content_size(engine, image)
    save = median_seconds(lambda: sum(len(chunk) for chunk in engine.save_image(image)), args.runs)
    figures = median_seconds(lambda: analyse_image(engine, image, wire=False), args.runs)
    wire = median_seconds(lambda: analyse_image(engine, image, wire=True), args.runs)
    print(f"image {image}, {human_size(size)}; medians of {args.runs} runs")
    print(f"{'what':44} {'seconds':>8} {'÷ save':>8}")
    print(f"{'Engine save (read the whole stream)':44} {save:8.2f} {1:8.2f}")
    print(f"{'analysis: layers, dead bytes, dive figures':44} {figures:8.2f} {figures / save:8.2f}")
    print(f"{'analysis with the exact gzip wire size':44} {wire:8.2f} {wire / save:8.2f}")
    print(f"reference: at most {TARGET} times the save time")
    return 0 if figures / save <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
