"""results.json: the run as data, and the atomic writing of everything under results/.

Files are written to temporary names in the same folder and renamed into
place only once all of them are complete, so a failure (disk full, a folder
that is not writable, Ctrl-C) leaves the earlier results exactly as they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.claims import evaluate
from harness.errors import ResultsWriteError
from harness.model import DEFAULT_RUNTIME, BuildRecord, EngineFacts, LayerFigure, LayerFigures, ImageInfo, LayerRecord, Outcome, RunReport, RunResult, StageResult
from harness.units import human_size

JSON_NAME = "results.json"
MARKDOWN_NAME = "RESULTS.md"
GENERATOR = "invoke all"


def to_dict(report: RunReport) -> dict[str, Any]:
    return {
        "generated_by": GENERATOR,
        "base": report.base,
        **({} if report.platform is None else {"platform": report.platform}),
        "engine": dataclasses.asdict(report.engine),
        "stages": [_stage_to_dict(stage) for stage in report.stages],
        "claims": [
            {"claim": claim.text, "holds": claim.holds, "evidence": claim.evidence} for claim in evaluate(report)
        ],
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
        "layers": [{"size_bytes": l.size_bytes, "created_by": l.created_by} for l in info.layers] if info else [],
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
        "log_tail": list(stage.log_tail),
        "layer_figures": None if stage.layer_figures is None else _figures_to_dict(stage.layer_figures),
        "scanner_packages": None if stage.scanner_packages is None else list(stage.scanner_packages),
    }


def _figures_to_dict(figures: LayerFigures) -> dict[str, Any]:
    data = dataclasses.asdict(figures)
    data["layers"] = [
        {**dataclasses.asdict(layer), "largest": [{"path": p, "size_bytes": s} for p, s in layer.largest]}
        for layer in figures.layers
    ]
    data["leftover_packages"] = [{"package": n, "installed_bytes": s} for n, s in figures.leftover_packages]
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
            layers=tuple(LayerRecord(int(l["size_bytes"]), str(l["created_by"])) for l in data["layers"]),
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
        scanner_packages=None if data.get("scanner_packages") is None else tuple(data["scanner_packages"]),
    )


def read_report(results_dir: Path) -> RunReport:
    path = results_dir / JSON_NAME
    try:
        return from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ResultsWriteError(f"{path}: no results yet: run `invoke all` first") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ResultsWriteError(f"{path}: not a results file this version can read: {error}") from error


def write_files(results_dir: Path, contents: Mapping[str, str]) -> None:
    """Write every file in `contents` (name -> text) under `results_dir`, all or nothing."""
    staged: list[tuple[Path, Path]] = []
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        for name, text in contents.items():
            handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=results_dir)
            staged.append((Path(temporary), results_dir / name))
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
        for temporary, final in staged:
            os.replace(temporary, final)
    except OSError as error:
        raise ResultsWriteError(
            f"{results_dir}: cannot write results: {error.strerror or error}; the earlier results are unchanged"
        ) from error
    finally:
        for temporary, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()


def render_json(report: RunReport) -> str:
    return json.dumps(to_dict(report), indent=2, ensure_ascii=False) + "\n"
