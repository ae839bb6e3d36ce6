"""Warm runs against a real Engine: one build request per stage, builder images kept, [slim] images reused, no layer read again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.custody import ownership
from harness.custody.ledger import ROLE_BUILDER, Ledger
from harness.engine import DockerEngine
from harness.records.report import Outcome
from harness.records.settings import Settings
from harness.run.pipeline import run_stages

from .conftest import REPO_ROOT, TEST_NAMESPACE

NAMESPACE = f"{TEST_NAMESPACE}-warm"


@pytest.mark.docker
def test_a_warm_run_keeps_builders_reuses_slim_images_and_reads_no_layer_again(
    engine: DockerEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved: list[str] = []
    save = engine.save_image

    def counted(image: str) -> Iterator[bytes]:
        saved.append(image)
        return save(image)

    monkeypatch.setattr(engine, "save_image", counted)
    builds: list[str] = []
    build = engine.build

    def counted_build(stage: str, *args: object, **kwargs: object) -> object:
        builds.append(stage)
        return build(stage, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "build", counted_build)
    settings = Settings(REPO_ROOT, namespace=NAMESPACE, wire_size=True, cache_dir=tmp_path / "cache", sbom_dir=tmp_path / "sbom")
    wanted = {"09-scratch-static", "08-scratch-auto"}
    keep = lambda folder: folder.name in wanted  # noqa: E731
    ledger = Ledger.open(REPO_ROOT, engine.identity())
    kept: set[str] = set()
    try:
        first = run_stages(engine, settings, progress=lambda line: None, keep=keep)
        assert [s.outcome for s in first.stages] == [Outcome.PASS, Outcome.PASS]
        builders = [entry for entry in ledger.read().images if entry.role == ROLE_BUILDER and entry.namespace == NAMESPACE]
        kept |= {tag for entry in builders for tag in entry.tags if engine.has_image(tag)}
        # After the end-of-run sweep: 09's compile stage and 08's source image, each under a tag of its own.
        assert any(tag.endswith("-builder0") and "/09-scratch-static:" in tag for tag in kept), kept
        assert any(tag.endswith("-source") and "/08-scratch-auto:" in tag for tag in kept), kept
        saved.clear()
        builds.clear()
        said: list[str] = []
        again = run_stages(engine, settings, progress=said.append, keep=keep)
        # One build request per stage: 09's (its compile stage kept from that build's own output), 08's source image.
        assert sorted(builds) == sorted(wanted)
        # Every build step came from the cache, the [slim] image is the same one, and no image was saved to be read.
        assert all(stage.build is not None and stage.build.fully_cached for stage in again.stages), said
        assert [s.image_info.image_id for s in again.stages] == [s.image_info.image_id for s in first.stages]  # type: ignore[union-attr]
        assert [s.layer_figures for s in again.stages] == [s.layer_figures for s in first.stages]
        assert saved == []
        assert any("reused" in line for line in said)
    finally:
        ownership.clean(engine, ledger, ownership.Scope(namespace=NAMESPACE))
    # `invoke clean`'s rule removes the builders too, by their IDs in the ledger.
    assert not any(engine.has_image(tag) for tag in kept)
