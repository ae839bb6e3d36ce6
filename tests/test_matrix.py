import dataclasses
import json

import pytest

from harness.records.engine import EngineFacts
from harness.records.report import Outcome, StageResult
from harness.render.matrix import EngineRun, EngineTarget, render_matrix_json, render_matrix_markdown

from .test_report import ladder

OVERLAY2 = EngineFacts("Docker Engine", "26.1.5", "1.45", "overlay2", "classic builder (API build, version 1)")
CONTAINERD = dataclasses.replace(OVERLAY2, image_store="containerd (overlayfs snapshotter)")


def test_an_engine_is_named_name_equals_host() -> None:
    assert EngineTarget.parse("d26=unix:///run/x.sock") == EngineTarget("d26", "unix:///run/x.sock")
    assert EngineTarget.parse("remote=ssh://me@host") == EngineTarget("remote", "ssh://me@host")
    for bad in ("d26", "=unix:///x", "d26="):
        with pytest.raises(ValueError, match="NAME=DOCKER_HOST"):
            EngineTarget.parse(bad)


def test_engines_side_by_side_say_whether_every_engine_measured_the_same_bytes() -> None:
    first = dataclasses.replace(ladder(), engine=OVERLAY2)
    second = dataclasses.replace(ladder(s07=2_157_250), engine=CONTAINERD)
    second = dataclasses.replace(
        second, stages=tuple(dataclasses.replace(s, outcome=Outcome.FAIL) if s.name == "01-naive" else s for s in second.stages)
    )
    runs = [
        EngineRun(EngineTarget("d26", "unix:///a"), first),
        EngineRun(EngineTarget("d26-containerd", "unix:///b"), second),
        EngineRun(EngineTarget("gone", "tcp://127.0.0.1:1"), None, "Docker Engine: not reachable"),
    ]
    text = render_matrix_markdown(runs, "invoke matrix")
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
        for line in text.split("## Headline sizes", 1)[1].split("## What", 1)[0].splitlines()
        if line.startswith("| `")
    }
    assert rows["`01-naive`"] == ["622MB", "622MB (fail)", "–", "yes"]
    assert rows["`07-scratch-libs`"] == ["2.16MB", "2.16MB", "–", "no: 2,157,192 to 2,157,250 bytes"]
    assert "containerd (overlayfs snapshotter)" in text and "Docker Engine: not reachable" in text
    data = json.loads(render_matrix_json(runs, "invoke matrix"))
    assert [e["name"] for e in data["engines"]] == ["d26", "d26-containerd", "gone"]
    assert data["engines"][1]["engine"]["image_store"] == "containerd (overlayfs snapshotter)"
    assert data["engines"][2]["run"] is None


def test_what_overlay2_stores_again_is_shown_beside_a_headline_that_is_the_same() -> None:
    """02 as the two stores save it: overlay2's tars hold 1,615,432 bytes more, stored again unchanged; one headline."""
    on_containerd = dataclasses.replace(ladder(), engine=CONTAINERD)
    stored_again = 1_615_432

    def with_unchanged(stage: StageResult) -> StageResult:
        if stage.name != "02-purge-layers" or stage.layer_figures is None:
            return stage
        figures = stage.layer_figures
        return dataclasses.replace(
            stage,
            layer_figures=dataclasses.replace(
                figures, content_bytes=figures.content_bytes + stored_again, unchanged_bytes=stored_again
            ),
        )

    on_overlay2 = dataclasses.replace(on_containerd, engine=OVERLAY2, stages=tuple(map(with_unchanged, on_containerd.stages)))
    runs = [EngineRun(EngineTarget("d26", "unix:///a"), on_overlay2), EngineRun(EngineTarget("d26c", "unix:///b"), on_containerd)]
    text = render_matrix_markdown(runs, "invoke matrix")

    def rows_of(section: str) -> dict[str, list[str]]:
        return {
            line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in text.split(section, 1)[1].split("## ", 1)[0].splitlines()
            if line.startswith("| `")
        }

    assert rows_of("## Headline sizes")["`02-purge-layers`"] == ["704MB", "704MB", "yes"]
    assert rows_of("## What the layer tars store")["`02-purge-layers`"] == ["706MB", "704MB"]
    assert rows_of("## What the layer tars store")["`01-naive`"] == ["622MB", "622MB"]
