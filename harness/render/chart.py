"""results/sizes.svg: every stage's size on a log scale, the tutorial's figure beside it.  Pure: report in, SVG out."""

from __future__ import annotations

import math
from html import escape

from harness.records.report import RunReport
from harness.records.units import human_size, parse_size

CHART_NAME = "sizes.svg"  # beside RESULTS.md
ROW = 26
LABEL_WIDTH = 170
BAR_WIDTH = 520
TOP = 50
MEASURED = "#2b6cb0"
TUTORIAL = "#dd8452"


def render_svg(report: RunReport) -> str:
    stages = [stage for stage in report.stages if stage.size_bytes is not None]
    sizes = [stage.size_bytes or 1 for stage in stages] + [parse_size(s.article_size) for s in stages if s.article_size]
    low = 10 ** math.floor(math.log10(max(min(sizes), 1)))
    high = 10 ** math.ceil(math.log10(max(sizes)))
    span = math.log10(high) - math.log10(low)

    def x(size: int) -> float:
        return LABEL_WIDTH + BAR_WIDTH * (math.log10(max(size, low)) - math.log10(low)) / span

    height = TOP + ROW * len(stages) + 40
    width = LABEL_WIDTH + BAR_WIDTH + 90
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{LABEL_WIDTH}" y="18" font-size="14" font-weight="bold">Image size per stage, log scale ({escape(report.base)}{escape(", " + report.platform if report.platform else "")})</text>',
        f'<rect x="{LABEL_WIDTH}" y="28" width="10" height="10" fill="{MEASURED}"/><text x="{LABEL_WIDTH + 14}" y="37">measured</text>',
        f'<rect x="{LABEL_WIDTH + 90}" y="28" width="10" height="10" fill="{TUTORIAL}"/><text x="{LABEL_WIDTH + 104}" y="37">tutorial (stretch, 2018)</text>',
    ]
    decade = low
    while decade <= high:
        gx = x(decade)
        parts.append(f'<line x1="{gx:.1f}" y1="{TOP - 4}" x2="{gx:.1f}" y2="{height - 30}" stroke="#ddd"/>')
        parts.append(f'<text x="{gx:.1f}" y="{height - 16}" text-anchor="middle" fill="#555">{human_size(decade)}</text>')
        decade *= 10
    for row, stage in enumerate(stages):
        y = TOP + row * ROW
        size = stage.size_bytes or 1
        parts.append(f'<text x="{LABEL_WIDTH - 6}" y="{y + 14}" text-anchor="end">{escape(stage.name)}</text>')
        bar_height = 10 if stage.article_size else 16
        parts.append(
            f'<rect x="{LABEL_WIDTH}" y="{y + 2}" width="{x(size) - LABEL_WIDTH:.1f}" height="{bar_height}" fill="{MEASURED}"/>'
        )
        parts.append(f'<text x="{x(size) + 4:.1f}" y="{y + 11}" fill="#333">{human_size(size)}</text>')
        if stage.article_size:
            article = parse_size(stage.article_size)
            parts.append(
                f'<rect x="{LABEL_WIDTH}" y="{y + 13}" width="{x(article) - LABEL_WIDTH:.1f}" height="8" fill="{TUTORIAL}"/>'
            )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
