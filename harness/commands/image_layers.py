"""`invoke layers`: an image's layers as a table or JSON, and the CI verdict on its dead bytes and efficiency."""

from __future__ import annotations

import json

from tabulate import tabulate

from harness.commands.done import Done
from harness.layers import ImageAnalysis, layer_table, to_json
from harness.layers.cache import LayerCache
from harness.layers.limits import Limits, exceeded
from harness.records.engine import Engine
from harness.records.errors import UsageError
from harness.records.settings import Progress
from harness.records.units import human_size
from harness.run.measure import analyse_image


def layer_limits(max_dead: str | None, min_efficiency: str | None) -> Limits:
    try:
        return Limits.parse(max_dead, min_efficiency)
    except ValueError:
        raise UsageError("--max-dead takes a number of bytes, --min-efficiency a number from 0 to 1") from None


def show_layers(engine: Engine, image: str, as_json: bool, limits: Limits, wire: bool, say: Progress) -> Done:
    """The image's figures said; failed when it passes a limit."""
    analysis = analyse_image(engine, image, wire=wire, cache=LayerCache.for_store(engine.describe().image_store))
    if as_json:
        say(json.dumps(to_json(analysis), indent=2))
    else:
        headers, rows = layer_table(analysis, human=True)
        say(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
        say(totals_line(image, analysis))
    failures = exceeded(analysis, limits)
    if failures:
        return Done.failed(f"{image}: " + "; ".join(failures))
    return Done()


def totals_line(image: str, analysis: ImageAnalysis) -> str:
    """The image's sizes under the table, after a blank line."""
    wire = human_size(analysis.wire_bytes) if analysis.wire_bytes is not None else "not computed"
    return (
        f"\n{image}: {human_size(analysis.size_bytes)} stored, {human_size(analysis.live_bytes)} live, "
        f"{human_size(analysis.dead_bytes)} dead ({analysis.dead_bytes:,} bytes); dive efficiency "
        f"{analysis.efficiency:.2%}, wasted {human_size(analysis.wasted_bytes)}; wire {wire}"
    )
