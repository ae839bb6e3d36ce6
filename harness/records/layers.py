"""What a run keeps of an image's layers: the size figures results.json stores, and what an SBOM scanner sees.

`harness.layers` computes them (`figures.figures_of`, `declared.declared_in`);
everything else of the analysis stays with the analysis.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerFigure:
    """One layer as its tar shows it: what it adds, changes and deletes, and the bytes it stores in vain."""

    instruction: str
    file_bytes: int
    added: int
    changed: int
    deleted: int
    dead_bytes: int  # stored in this layer, not shown by the final file system
    killed_bytes: int  # of lower layers, made dead by this one
    wire_bytes: int | None
    largest: tuple[tuple[str, int], ...]  # (path, bytes), largest first


@dataclass(frozen=True)
class LayerFigures:
    """Where an image's bytes are (from its saved layer tars; see harness.layers for the definitions)."""

    content_bytes: int  # the layer tars' content: what overlay2 reports as `Size`
    live_bytes: int
    dead_bytes: int
    wire_bytes: int | None
    efficiency: float  # dive's score
    wasted_bytes: int  # dive's
    user_wasted_percent: float | None  # dive's, a fraction
    layers: tuple[LayerFigure, ...]
    leftover_packages: tuple[tuple[str, int], ...] = ()  # (package, installed bytes) the stage added
    # Regular-file bytes stored again exactly as the layer below had them: overlay2 keeps them, the containerd
    # store's differ does not.  None: read from results written before it was measured.
    unchanged_bytes: int | None = None

    @property
    def headline_bytes(self) -> int:
        """The headline size, the same on every image store: the layer tars' content, less what they store unchanged."""
        return self.content_bytes - (self.unchanged_bytes or 0)


@dataclass(frozen=True)
class ScannerView:
    """What an SBOM scanner reads in an image: the Debian packages declared, and what declaring them costs.

    `metadata_bytes` counts the files that exist for scanners and licences: dpkg's
    database (`/var/lib/dpkg/status`, `status.d/`, `info/`) and every package's
    `/usr/share/doc/<package>/copyright`, measured in the image as built.
    """

    packages: tuple[str, ...]
    metadata_bytes: int | None = None  # None: read from results written before it was measured
