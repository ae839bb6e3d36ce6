"""Sizes as `docker images` prints them.

The Docker CLI formats image sizes with go-units' `HumanSizeWithPrecision(size, 3)`:
divide by 1000 (decimal units, not KiB) while the value is at least 1000, then
print with Go's `%.3g`.  Python's `%g` follows the same C rules, so `8640`
becomes `8.64kB` and `234_567_890` becomes `235MB`, as in the tutorial.
"""

from __future__ import annotations

import re

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_PARSE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kMGTPEZY]?B)\s*$")


def human_size(size_bytes: int | float, precision: int = 3) -> str:
    """Format a byte count exactly as `docker images` shows it."""
    size = float(size_bytes)
    unit = 0
    while size >= 1000.0 and unit < len(_UNITS) - 1:
        size /= 1000.0
        unit += 1
    return f"{size:.{precision}g}{_UNITS[unit]}"


def parse_size(text: str) -> int:
    """Parse a size printed by `docker images` (`8.64kB`, `235MB`) into bytes.

    The result is the middle of the range the printed figure stands for, i.e.
    the printed value times its unit; it is exact only to the printed digits.
    """
    match = _PARSE.match(text)
    if match is None:
        raise ValueError(f"not a size as docker prints it: {text!r} (expected e.g. '8.64kB' or '235MB')")
    value, unit = match.groups()
    scale: int = 1000 ** _UNITS.index(unit)
    return round(float(value) * scale)
