"""One error family: every failure the harness reports is a HarnessError.

Messages are shaped `<subject>: <what failed>: <evidence>`, so that a single
line tells the user what happened and where.  Only the task layer (tasks.py)
turns these into exit codes; Docker's own exceptions are converted where the
Engine is called (the package harness/engine) and nowhere else.
"""

from __future__ import annotations

from pathlib import Path


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose."""


def one_line(text: object) -> str:
    """`text` with every run of white space (newlines too) as one space."""
    return " ".join(str(text).split())


class UsageError(HarnessError):
    """A command given input it cannot take (a flag's value, a missing option): the shell exits with code 2."""


class EvidenceError(HarnessError):
    """An error of the house shape, `<subject>: <what failed>: <evidence>`, the evidence folded onto one line."""

    def __init__(self, subject: str, what: str, evidence: str) -> None:
        self.subject = subject
        self.what = what
        self.evidence = evidence
        super().__init__(f"{subject}: {what}: {one_line(evidence)}")


class StageConfigError(HarnessError):
    """A stage folder whose stage.toml (or Dockerfile) is missing or malformed."""

    def __init__(self, path: Path, field: str | None, reason: str) -> None:
        self.path = path
        self.field = field
        self.reason = reason
        where = f"{path}: {field}" if field else str(path)
        super().__init__(f"{where}: {reason}")


class EngineUnavailable(HarnessError):
    """The Docker Engine does not answer."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            "Docker Engine: not reachable: "
            f"{detail}. Start it (as root: `bash scripts/start-engine`, or "
            "`systemctl start docker`), or point DOCKER_HOST at a running Engine."
        )


class EngineLost(HarnessError):
    """The Engine stopped answering in the middle of a run (what was measured before: `pipeline.measure_stages`)."""

    def __init__(self, cause: EngineUnavailable) -> None:
        self.cause = cause
        super().__init__(f"the Engine stopped answering during the run: {cause}")


class EngineError(HarnessError):
    """The Engine answered, but refused or failed a request."""


class BuildFailed(HarnessError):
    """A Dockerfile did not build."""

    def __init__(self, stage: str, instruction: str, log_tail: tuple[str, ...], reason: str) -> None:
        self.stage = stage
        self.instruction = instruction
        self.log_tail = log_tail
        self.reason = reason
        super().__init__(f"{stage}: build failed at `{instruction}`: {reason}")


class BuildTimedOut(BuildFailed):
    """A build step ran past its time limit, and the build was cancelled."""

    def __init__(self, stage: str, instruction: str, log_tail: tuple[str, ...], limit_s: float) -> None:
        self.limit_s = limit_s
        reason = (
            f"timed out: the step ran past its limit of {limit_s:g} s and the build was cancelled"
            " (raise `build_timeout` in its stage.toml, or `invoke all --build-timeout SECONDS`)"
        )
        super().__init__(stage, instruction, log_tail, reason)


class BaseUnavailable(HarnessError):
    """A base image that is neither present, nor pullable, nor bootstrappable."""

    def __init__(self, image: str, attempts: tuple[str, ...], advice: str) -> None:
        self.image = image
        self.attempts = attempts
        self.advice = advice
        super().__init__(f"{image}: base image unavailable: {'; '.join(attempts)}. {advice}")


class ResultsWriteError(HarnessError):
    """Results could not be written; earlier results are left as they were."""


class NestedEngineError(HarnessError):
    """A nested Engine (harness/nested/) that could not be started, reached or stopped."""

    def __init__(self, name: str, reason: str, log_tail: str = "") -> None:
        self.name = name
        self.reason = reason
        self.log_tail = log_tail
        super().__init__(f"nested Engine {name}: {reason}")


class ImageInUse(EngineError):
    """The Engine refused to delete an image: a child image or a container needs it.  Never forced."""

    def __init__(self, image: str, reason: str) -> None:
        self.image = image
        self.reason = reason
        super().__init__(f"{image}: not deleted: {reason}")
