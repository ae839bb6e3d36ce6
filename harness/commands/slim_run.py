"""`invoke slim`: a FROM scratch image of a program and its closure, run locked down, its size beside the source's."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harness.commands.done import Done
from harness.custody.made import Made
from harness.records import labels
from harness.records.engine import Engine, RunPolicy, RunResult
from harness.records.errors import UsageError
from harness.records.settings import Progress, Settings
from harness.records.units import human_size
from harness.run.measure import headline_size
from harness.run.slimbuild import build_slim_image, slim_summary
from harness.slim.plan import SlimPlan
from harness.slim.reasons import Reason, render_reasons
from harness.slim.tracefiles import render_findings
from harness.stages.slimspec import Bundle, SlimSpec
from harness.stages.stage import DEFAULT_TIMEOUT_S, DEFAULT_USER


@dataclass(frozen=True)
class SlimRequest:
    """`invoke slim`'s options, read."""

    image: str  # the source
    tag: str
    spec: SlimSpec
    command: tuple[str, ...]
    sbom: Path | None  # where the SPDX document goes; None: not written


def slim_request(
    image: str,
    binary: str,
    tag: str,
    *,
    extras: Sequence[str],
    env: Sequence[str],
    extras_from: str | None,
    cmd: str | None,
    bundles: str,
    with_dlopen: bool,
    metadata: bool,
    sbom: str | None,
    trace: bool,
    probes: Sequence[str],
) -> SlimRequest:
    spec = SlimSpec(
        PurePosixPath(binary),
        tuple(PurePosixPath(e) for e in extras),
        Bundle.parse_list(bundles),
        with_dlopen,
        extras_from=PurePosixPath(extras_from) if extras_from else None,
        env=env_pairs(env),
        metadata=metadata,
        trace=trace,
        probes=tuple(tuple(shlex.split(p)) for p in probes),
    )
    if spec.probes and not trace:
        raise UsageError("--probe runs under the tracer: add --trace")
    command = tuple(shlex.split(cmd)) if cmd else (binary,)
    return SlimRequest(image, tag, spec, command, Path(sbom).resolve() if sbom else None)


def env_pairs(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`NAME=VALUE` texts as pairs; the value may hold `=` too."""
    pairs = []
    for item in items:
        name, equals, value = item.partition("=")
        if not equals:
            raise UsageError(f"--env {item}: give NAME=VALUE")
        pairs.append((name, value))
    return tuple(pairs)


def slim_and_run(engine: Engine, settings: Settings, made: Made, request: SlimRequest, say: Progress) -> Done:
    """The image written and run; failed when its command does not exit 0."""
    image_labels = labels.image(settings.namespace, stage="slim")
    record, plan = build_slim_image(
        engine,
        request.image,
        request.spec,
        request.tag,
        request.command,
        image_labels,
        made,
        settings.source_date_epoch,
        request.sbom,
    )
    for line in plan_lines(request.tag, plan, record.image_id):
        say(line)
    # A traced image runs as it was traced: with a tmpfs at /tmp.
    policy = RunPolicy(timeout_s=DEFAULT_TIMEOUT_S, user=DEFAULT_USER, tmpfs=("/tmp",) if request.spec.trace else ())
    result = engine.run(record.image_id, request.command, policy, made.container_labels())
    source_size, slim_size = headline_size(engine, request.image), headline_size(engine, record.image_id)
    say(
        f"{request.tag}: {len(plan.copies)} paths; {human_size(slim_size)} ({slim_size:,} bytes), "
        f"source {request.image}: {human_size(source_size)} ({source_size:,} bytes), "
        f"{source_size / slim_size:,.0f} times smaller"
    )
    for line in run_lines(request.command, result):
        say(line)
    return Done(not result.error and result.exit_code == 0)


def plan_lines(tag: str, plan: SlimPlan, image_id: str) -> list[str]:
    """What the image holds: its packages, its files by reason, and what a traced run found."""
    lines = [f"{tag}: {slim_summary(plan, image_id)}", *render_reasons(plan.reasons, dict(plan.sizes))]
    if plan.trace is not None:
        traced_only = (item.path for item in plan.reasons if item.reason is Reason.TRACE)
        lines += render_findings(plan.trace, traced_only, plan.unexercised)
    return lines


def run_lines(command: tuple[str, ...], result: RunResult) -> list[str]:
    """How the image's command ran: its exit code, and the start of what it wrote."""
    lines = [f"run {' '.join(command)}: exit code {result.exit_code}" + (f", error {result.error}" if result.error else "")]
    if result.stdout:
        lines.append(f"stdout: {result.stdout[:500]!r}")
    if result.stderr:
        lines.append(f"stderr: {result.stderr[:500]!r}")
    return lines
