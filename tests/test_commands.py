"""The tasks' logic below the shell (harness.commands), without an Engine: options read, lines said, how each ends."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness import platforms
from harness.commands import options
from harness.errors import UsageError

from .conftest import REPO_ROOT

BASE = "debian:bookworm"


@pytest.fixture(autouse=True)
def amd64_and_no_epoch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The committed results' platform, no SOURCE_DATE_EPOCH, the default namespace and a cache of the test's own."""
    monkeypatch.setattr(platforms.host_platform, "machine", lambda: "x86_64")
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.delenv(options.NAMESPACE_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def checkout(tmp_path: Path) -> options.Checkout:
    """A checkout with the first three stages, hello/ and the README."""
    root = tmp_path / "checkout"
    shutil.copytree(REPO_ROOT / "hello", root / "hello")
    for stage in ("01-naive", "02-purge-layers", "03-single-layer"):
        shutil.copytree(REPO_ROOT / "stages" / stage, root / "stages" / stage)
    shutil.copy(REPO_ROOT / "README.md", root / "README.md")
    return options.Checkout(root)


# --- options every task shares ---------------------------------------------------


def test_settings_read_the_namespace_and_the_epoch_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, checkout: options.Checkout
) -> None:
    assert options.settings(checkout, BASE).namespace == "hello-ladder"
    monkeypatch.setenv("HELLO_LADDER_NAMESPACE", "hello-ladder-test")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", " 1700000000 ")
    chosen = options.settings(checkout, "debian:trixie", no_cache=True)
    assert (chosen.repo_root, chosen.base, chosen.no_cache) == (checkout.root, "debian:trixie", True)
    assert (chosen.namespace, chosen.source_date_epoch, chosen.platform) == ("hello-ladder-test", 1_700_000_000, None)


@pytest.mark.parametrize("text", ["yesterday", "-1", "1.5"])
def test_an_epoch_that_is_not_whole_seconds_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", text)
    with pytest.raises(UsageError, match=rf"SOURCE_DATE_EPOCH='{text}': give whole seconds since 1970"):
        options.source_date_epoch()


def test_an_unknown_platform_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="platform 'linux/sparc'"):
        options.platform_choice("linux/sparc")
    assert options.platform_choice("  ") is None  # blank: the Engine's own, on amd64
