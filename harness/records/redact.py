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
_URL_HOST = re.compile(r"\b(https?://)[^/\s\"]+")
# A failed name lookup quotes the host too: `dial tcp: lookup <host> on 10.0.0.53:53: no such host`.
_LOOKUP_HOST = re.compile(r"\b(lookup )[^\s:]+")


def redact(text: str) -> str:
    """`text` with the host names in apt list paths, URLs and failed lookups replaced by PLACEHOLDER."""
    text = _APT_LIST.sub(rf"\1{PLACEHOLDER}_", text)
    return _LOOKUP_HOST.sub(rf"\1{PLACEHOLDER}", _URL_HOST.sub(rf"\1{PLACEHOLDER}", text))
