"""Keep mirror and registry host names out of what the project writes down.

Results are committed; apt's list files are named after the mirror they came
from (`/var/lib/apt/lists/<host>_debian_dists_...`), and build logs quote
URLs.  Neither host says anything about an image's size, so both are
replaced by a placeholder before they reach results/.
"""

from __future__ import annotations

import re

PLACEHOLDER = "<mirror>"
_APT_LIST = re.compile(r"(var/lib/apt/lists/)(?:partial/)?[^/_]+_")
_URL_HOST = re.compile(r"\b(https?://)[^/\s]+")


def redact(text: str) -> str:
    """`text` with the host names in apt list paths and URLs replaced by PLACEHOLDER."""
    return _URL_HOST.sub(rf"\1{PLACEHOLDER}", _APT_LIST.sub(rf"\1{PLACEHOLDER}_", text))
