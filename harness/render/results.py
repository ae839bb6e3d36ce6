"""results.json: a run as data, and read back.  Pure but for `read_report`; writing is harness.atomic's."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.records.engine import BuildRecord, EngineFacts, ImageInfo, LayerRecord, RunResult
from harness.records.errors import ResultsWriteError
from harness.records.layers import LayerFigure, LayerFigures, ScannerView
from harness.records.report import DEFAULT_RUNTIME, Anchor, Outcome, RunReport, StageResult
from harness.records.units import human_size

# write_files is imported here too, so that its old import path keeps working.
from harness.render.claims import claims_of

JSON_NAME = "results.json"
MARKDOWN_NAME = "RESULTS.md"
# What wrote a results.json that does not say (none written by this version).
DEFAULT_GENERATOR = "invoke all"


def to_dict(report: RunReport, generated_by: str) -> dict[str, Any]:
    """The run as data; `generated_by` is the command that measured it, as the user would type it again."""
    return {
        "generated_by": generated_by,
        "base": report.base,
        **({} if report.platform is None else {"platform": report.platform}),
        "engine": dataclasses.asdict(report.engine),
        # Results from before the versions were recorded re-render without the key, byte for byte.
        **({"versions": dict(report.versions)} if report.versions else {}),
        "stages": [_stage_to_dict(stage) for stage in report.stages],
        "claims": [{"claim": claim.text, "holds": claim.holds, "evidence": claim.evidence} for claim in claims_of(report)],
    }


def _stage_to_dict(stage: StageResult) -> dict[str, Any]:
    info, build, observed = stage.image_info, stage.build, stage.observed
    return {
        "name": stage.name,
        "runtime": stage.runtime,
        "title": stage.title,
        "changes": stage.changes,
        "image": stage.image,
        "image_id": info.image_id if info else None,
        "size_bytes": stage.size_bytes,
        "size_human": human_size(stage.size_bytes) if stage.size_bytes is not None else None,
        "engine_size_bytes": info.engine_size_bytes if info else None,
        "listed_size_bytes": info.listed_size_bytes if info else None,
        "layer_count": info.layer_count if info else None,
        "layers": [{"size_bytes": layer.size_bytes, "created_by": layer.created_by} for layer in info.layers] if info else [],
        "build_seconds": round(build.seconds, 3) if build else None,
        "build_cached": build.fully_cached if build else None,
        "outcome": stage.outcome.value,
        "reason": stage.reason,
        "expected": dict(stage.expected),
        "observed": None
        if observed is None
        else {
            "stdout": observed.stdout,
            "stderr": observed.stderr,
            "exit_code": observed.exit_code,
            "error": observed.error,
            "timed_out": observed.timed_out,
            "truncated": observed.truncated,
        },
        "article_size": stage.article_size,
        # Only where a stage names anchors, so that results written before them read and render unchanged.
        **({"anchors": [dataclasses.asdict(anchor) for anchor in stage.anchors]} if stage.anchors else {}),
        "log_tail": list(stage.log_tail),
        "layer_figures": None if stage.layer_figures is None else _figures_to_dict(stage.layer_figures),
        "scanner": None
        if stage.scanner is None
        else {
            "packages": list(stage.scanner.packages),
            "metadata_bytes": stage.scanner.metadata_bytes,
        },
    }


def _figures_to_dict(figures: LayerFigures) -> dict[str, Any]:
    data = dataclasses.asdict(figures)
    data["layers"] = [
        {**dataclasses.asdict(layer), "largest": [{"path": p, "size_bytes": s} for p, s in layer.largest]}
        for layer in figures.layers
    ]
    data["leftover_packages"] = [{"package": n, "installed_bytes": s} for n, s in figures.leftover_packages]
    if figures.unchanged_bytes is None:
        del data["unchanged_bytes"]  # results measured before it was: written again as they were
    return data


def _figures_from_dict(data: Mapping[str, Any]) -> LayerFigures:
    layers = tuple(
        LayerFigure(**{**layer, "largest": tuple((p["path"], int(p["size_bytes"])) for p in layer["largest"])})
        for layer in data["layers"]
    )
    leftovers = tuple((p["package"], int(p["installed_bytes"])) for p in data["leftover_packages"])
    return LayerFigures(**{**data, "layers": layers, "leftover_packages": leftovers})


def from_dict(data: Mapping[str, Any]) -> RunReport:
    """Read back what `to_dict` wrote (claims are recomputed, never trusted from the file)."""
    return RunReport(
        base=str(data["base"]),
        engine=EngineFacts(**{key: str(value) for key, value in data["engine"].items()}),
        stages=tuple(_stage_from_dict(stage) for stage in data["stages"]),
        versions=tuple((str(name), str(version)) for name, version in (data.get("versions") or {}).items()),
        platform=None if data.get("platform") is None else str(data["platform"]),
    )


def _stage_from_dict(data: Mapping[str, Any]) -> StageResult:
    info = None
    if data.get("engine_size_bytes") is not None:
        listed = data.get("listed_size_bytes")
        info = ImageInfo(
            image_id=str(data.get("image_id") or ""),
            engine_size_bytes=int(data["engine_size_bytes"]),
            listed_size_bytes=None if listed is None else int(listed),
            layer_count=int(data["layer_count"]),
            layers=tuple(LayerRecord(int(layer["size_bytes"]), str(layer["created_by"])) for layer in data["layers"]),
        )
    build = None
    if data.get("build_seconds") is not None:
        build = BuildRecord(str(data.get("image_id") or ""), float(data["build_seconds"]), bool(data["build_cached"]))
    observed = data.get("observed")
    return StageResult(
        name=str(data["name"]),
        title=str(data["title"]),
        changes=str(data.get("changes", "")),
        outcome=Outcome(data["outcome"]),
        image=data.get("image"),
        article_size=data.get("article_size"),
        expected=dict(data.get("expected") or {}),
        image_info=info,
        build=build,
        observed=None if observed is None else RunResult(**observed),
        reason=data.get("reason"),
        log_tail=tuple(data.get("log_tail") or ()),
        runtime=str(data.get("runtime") or DEFAULT_RUNTIME),
        layer_figures=None if data.get("layer_figures") is None else _figures_from_dict(data["layer_figures"]),
        scanner=_scanner_from_dict(data),
        anchors=tuple(Anchor(str(a["image"]), str(a["size"]), str(a["source"])) for a in data.get("anchors") or ()),
    )


def _scanner_from_dict(data: Mapping[str, Any]) -> ScannerView | None:
    if data.get("scanner") is not None:
        return ScannerView(tuple(data["scanner"]["packages"]), data["scanner"].get("metadata_bytes"))
    if data.get("scanner_packages") is not None:  # results written before the metadata was measured
        return ScannerView(tuple(data["scanner_packages"]))
    return None


def read_report(results_dir: Path) -> RunReport:
    path = results_dir / JSON_NAME
    try:
        return from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ResultsWriteError(f"{path}: no results yet: run `invoke all` first") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ResultsWriteError(f"{path}: not a results file this version can read: {error}") from error


def render_json(report: RunReport, generated_by: str) -> str:
    return json.dumps(to_dict(report, generated_by), indent=2, ensure_ascii=False) + "\n"


def read_generated_by(results_dir: Path) -> str:
    """The command that wrote `results_dir`'s results.json, to name it again in what is re-rendered from it."""
    data = json.loads((results_dir / JSON_NAME).read_text(encoding="utf-8"))
    return str(data.get("generated_by") or DEFAULT_GENERATOR)
