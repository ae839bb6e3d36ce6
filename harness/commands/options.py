"""What every task shares: the checkout, the defaults, and the command line's text turned into the run's Settings.

Bad input is a UsageError (the shell exits with code 2) naming what to give instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.layers.cache import cache_root
from harness.records import labels
from harness.records.errors import UsageError
from harness.records.platform import Platform, UnknownPlatform
from harness.records.settings import Settings

# Builds wait on downloads and the Engine as much as on the CPU: one stage per core, at most 4.
DEFAULT_JOBS = max(1, min(4, os.cpu_count() or 1))
SWEEP_BASES = "debian:bullseye,debian:bookworm,debian:trixie"
NAMESPACE_VARIABLE = "HELLO_LADDER_NAMESPACE"


@dataclass(frozen=True)
class Checkout:
    """The checkout the tasks run in (tasks.py's folder): its stages, results and README."""

    root: Path

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def readme(self) -> Path:
        return self.root / "README.md"

    @property
    def lock(self) -> Path:
        return self.root / ".hello-ladder.lock"


def namespace() -> str:
    """The tag namespace of what this run makes."""
    # HELLO_LADDER_NAMESPACE keeps a test run's images apart from the user's.
    return os.environ.get(NAMESPACE_VARIABLE, labels.DEFAULT_NAMESPACE)


def settings(checkout: Checkout, base: str, no_cache: bool = False, platform: str | None = None) -> Settings:
    return Settings(
        repo_root=checkout.root,
        base=base,
        namespace=namespace(),
        no_cache=no_cache,
        source_date_epoch=source_date_epoch(),
        cache_dir=cache_root(),
        platform=platform_choice(platform),
    )


def platform_choice(text: str | None) -> Platform | None:
    """The platform given; else, on a machine that is not amd64 (arm64), the machine's own: the committed
    results, the README's table and the stages' defaults (07's paths) are amd64's."""
    try:
        if text is None or not text.strip():
            native = Platform.host()
            return None if native is None or native.arch.oci == "amd64" else native
        return Platform.parse(text)
    except UnknownPlatform as error:
        raise UsageError(str(error)) from None


def results_dir(results: str | None, settings: Settings, checkout: Checkout) -> Path:
    """results/ for the Engine's own platform, results/<arch>/ for a platform given, unless --results says."""
    if results is not None:
        return Path(results)
    return checkout.results if settings.platform is None else checkout.results / settings.platform.slug


def source_date_epoch() -> int | None:
    """SOURCE_DATE_EPOCH (reproducible-builds.org), for the [slim] images' timestamps."""
    text = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise UsageError(f"SOURCE_DATE_EPOCH={text!r}: give whole seconds since 1970")
    return int(text)
