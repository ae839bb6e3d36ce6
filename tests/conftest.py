"""Shared fixtures.  Docker-backed tests share one Engine connection and build each image once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import labels
from harness.engine import DockerEngine
from harness.errors import EngineUnavailable

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_NAMESPACE = "hello-ladder-test"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def engine() -> DockerEngine:
    """A real Engine: skipped without one on a workstation, a failure in CI."""
    try:
        return DockerEngine.from_env()
    except EngineUnavailable as error:
        if in_ci():
            pytest.fail(f"CI=true and no Docker Engine answers, so the docker tests cannot run: {error}")
        pytest.skip(f"no Docker Engine answers ({error.detail}); start one with `bash scripts/start-engine`")


@pytest.fixture(scope="session")
def cleanup_namespace(engine: DockerEngine) -> Iterator[str]:
    """The tag namespace of this test session; everything labelled with it is removed at the end."""
    yield TEST_NAMESPACE
    engine.remove_containers(labels.selector(namespace=TEST_NAMESPACE))
    engine.remove_images(labels.selector(namespace=TEST_NAMESPACE))
