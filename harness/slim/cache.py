"""[slim] images by their inputs: the same source image and slim spec give the same image, so it is reused.

A [slim] image is written byte for byte from its source image's files (see
harness.slim.imagewrite): the same source image ID, spec, command, labels and epoch
give the same image ID every time.  The first time, the image's ID, the lines
the run printed about it and its SPDX document are kept in the user's cache
folder under a digest of those inputs; the next time, if the Engine still has
that image and this checkout's ledger made it, it is taken as it is instead
of exporting the source image and writing it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.layers.cache import VERSION, read_entry, write_entry
from harness.stages.slimspec import SlimSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlimMade:
    """A [slim] image made before: its ID, what the run said about it, its SPDX document (None: not written)."""

    image_id: str
    lines: tuple[str, ...]
    sbom: str | None


def slim_key(
    source_id: str,
    spec: SlimSpec,
    command: tuple[str, ...],
    image_labels: Mapping[str, str],
    epoch: int | None,
    sbom_tag: str | None,
) -> str:
    """A digest of everything the [slim] image (and its SPDX document, naming `sbom_tag`) is made from."""
    inputs = {
        "source": source_id,
        "spec": repr(spec),
        "command": list(command),
        "labels": dict(sorted(image_labels.items())),
        "epoch": epoch,
        "sbom": sbom_tag,
    }
    return "sha256:" + hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SlimMemo:
    root: Path

    def _path(self, key: str) -> Path:
        return self.root / f"v{VERSION}" / "slim" / f"{key.removeprefix('sha256:')}.json.gz"

    def get(self, key: str) -> SlimMade | None:
        data = read_entry(self._path(key), key)
        if data is None:
            return None
        try:
            sbom = data["sbom"]
            return SlimMade(
                str(data["image_id"]), tuple(str(line) for line in data["lines"]), None if sbom is None else str(sbom)
            )
        except (KeyError, TypeError) as error:
            log.warning("%s: [slim] cache entry unreadable, the image is written again: %s", key, error)
            return None

    def put(self, key: str, made: SlimMade) -> None:
        write_entry(self._path(key), key, {"image_id": made.image_id, "lines": list(made.lines), "sbom": made.sbom})
