"""Stage discovery and `stage.toml` validation.

A stage is a folder `stages/NN-name/` holding a `Dockerfile` and a
`stage.toml`.  Adding a folder adds a stage; no code changes.  Every
validation error names the file and the field, so a typo is a one-line fix.
"""

from __future__ import annotations

import enum
import re
import shlex
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from harness.records.engine import DEFAULT_MEMORY_BYTES, MAX_MEMORY_BYTES
from harness.records.errors import StageConfigError
from harness.records.report import DEFAULT_RUNTIME, Anchor
from harness.records.units import parse_size
from harness.stages.slimspec import Bundle, SlimError, SlimSpec

STAGE_FILE = "stage.toml"
DOCKERFILE = "Dockerfile"
# Lower case, because the name becomes part of an image reference.
NAME_PATTERN = re.compile(r"^\d{2}[a-z]?-[a-z0-9]+(?:-[a-z0-9]+)*$")
DEFAULT_TIMEOUT_S = 30.0
# A build step's limit: the slowest cold build here (a whole multi-stage build, apt-get and the compiler
# included) took minutes, not tens of them; a hung step waits no longer than this.
DEFAULT_BUILD_TIMEOUT_S = 1800.0
# Where a stage says nothing, its program runs as `nobody`: a numeric id
# needs no /etc/passwd, so it works in scratch images too.
DEFAULT_USER = "65534:65534"
RUNTIME_PATTERN = re.compile(r"^[a-z][a-z0-9+-]*$")


class WhenBaseMissing(enum.Enum):
    """What a missing base image means for a stage."""

    ERROR = "error"
    SKIP = "skip"


@dataclass(frozen=True)
class Expectation:
    """What running the stage's command must do: print `stdout`, or fail with `failure` in the message."""

    stdout: str | None = None
    failure: str | None = None

    def describe(self) -> str:
        if self.stdout is not None:
            return f"prints {self.stdout!r}"
        return f"fails with {self.failure!r}"

    def as_dict(self) -> dict[str, str]:
        return {"stdout": self.stdout} if self.stdout is not None else {"failure": str(self.failure)}


@dataclass(frozen=True)
class Stage:
    """One stage folder, read once: its stage.toml's fields and its Dockerfile's text, carried down the run."""

    name: str
    directory: Path
    dockerfile_text: str  # what is built: nothing reads the Dockerfile again
    title: str
    changes: str
    step: str
    article_size: str | None
    command: tuple[str, ...]
    expect: Expectation
    timeout_s: float
    user: str
    when_base_missing: WhenBaseMissing
    runtime: str = DEFAULT_RUNTIME
    # How long one build step may run before the build is cancelled (a hung `apt-get update`, a step that waits).
    build_timeout_s: float = DEFAULT_BUILD_TIMEOUT_S
    # When set, the Dockerfile builds a source image, and the stage's image is
    # a scratch image of `slim.binary` and its closure, made by the resolver.
    slim: SlimSpec | None = None
    # Published sizes of the images a user would otherwise pick, shown beside this stage's.
    anchors: tuple[Anchor, ...] = ()
    # The memory limit of the program's container; a stage that raises it says why in its stage.toml.
    memory_bytes: int = DEFAULT_MEMORY_BYTES

    @property
    def dockerfile(self) -> Path:
        return self.directory / DOCKERFILE

    @property
    def article_size_bytes(self) -> int | None:
        return None if self.article_size is None else parse_size(self.article_size)


def discover(stages_dir: Path) -> tuple[Path, ...]:
    """Every stage folder under `stages_dir`, in name order.

    A folder counts as a stage if it holds a Dockerfile or a stage.toml; a
    folder with only one of them is returned too, so that loading it reports
    what is missing instead of silently dropping the stage.
    """
    if not stages_dir.is_dir():
        raise StageConfigError(stages_dir, None, "no such stages folder")
    return tuple(
        sorted(
            (child for child in stages_dir.iterdir() if child.is_dir() and _looks_like_stage(child)),
            key=lambda path: path.name,
        )
    )


def _looks_like_stage(folder: Path) -> bool:
    return (folder / STAGE_FILE).exists() or (folder / DOCKERFILE).exists()


def names_stage(name: str, wanted: str) -> bool:
    """Whether `wanted` names the stage `name`: in full (`07-scratch-libs`) or by its number (`07`)."""
    return name == wanted or name.split("-", 1)[0] == wanted


def copy_stage(stages_dir: Path, source: str, name: str) -> Path:
    """Copy the stage `source` (a name or its number) to a new folder `name`; the copy must load."""
    if not NAME_PATTERN.match(name):
        raise StageConfigError(
            stages_dir / name, None, "stage folder names look like '12-my-stage' (two digits, a dash, lower-case words)"
        )
    target = stages_dir / name
    if target.exists():
        raise StageConfigError(target, None, "already exists")
    matches = [f for f in discover(stages_dir) if names_stage(f.name, source)]
    if len(matches) != 1:
        raise StageConfigError(stages_dir / source, None, "no such stage to copy")
    shutil.copytree(matches[0], target)
    load_stage(target)
    return target


def load_stage(folder: Path) -> Stage:
    """Read and validate one stage folder."""
    toml_path = folder / STAGE_FILE
    if not NAME_PATTERN.match(folder.name):
        raise StageConfigError(
            folder, None, "stage folder names look like '07-scratch-libs' (two digits, a dash, lower-case words)"
        )
    if not (folder / DOCKERFILE).is_file():
        raise StageConfigError(folder / DOCKERFILE, None, "missing: every stage needs a Dockerfile")
    if not toml_path.is_file():
        raise StageConfigError(toml_path, None, "missing: every stage needs a stage.toml")
    try:
        data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise StageConfigError(toml_path, None, f"not valid TOML: {error}") from error
    try:
        dockerfile_text = (folder / DOCKERFILE).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise StageConfigError(folder / DOCKERFILE, None, f"not UTF-8 text: {error}") from error
    return _parse(folder, toml_path, data, dockerfile_text)


_KNOWN_KEYS = {
    "title", "changes", "step", "article_size", "command", "expect", "timeout", "user", "when_base_missing",
    "runtime", "slim", "build_timeout", "anchor", "memory",
}  # fmt: skip


def _parse(folder: Path, path: Path, data: dict[str, Any], dockerfile_text: str) -> Stage:
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise StageConfigError(path, unknown[0], f"unknown field (known: {', '.join(sorted(_KNOWN_KEYS))})")
    article_size = _optional_str(path, data, "article_size")
    if article_size is not None:
        try:
            parse_size(article_size)
        except ValueError as error:
            raise StageConfigError(path, "article_size", str(error)) from error
    command = data.get("command")
    if not (isinstance(command, list) and command and all(isinstance(arg, str) and arg for arg in command)):
        raise StageConfigError(path, "command", 'must be a non-empty list of strings, e.g. ["/hello"]')
    timeout = data.get("timeout", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
        raise StageConfigError(path, "timeout", "must be a number of seconds between 0 and 3600")
    build_timeout = data.get("build_timeout", DEFAULT_BUILD_TIMEOUT_S)
    if isinstance(build_timeout, bool) or not isinstance(build_timeout, int | float) or not 0 < build_timeout <= 86400:
        raise StageConfigError(path, "build_timeout", "must be a number of seconds between 0 and 86400 (a day)")
    when_missing = data.get("when_base_missing", WhenBaseMissing.ERROR.value)
    try:
        when_base_missing = WhenBaseMissing(when_missing)
    except ValueError:
        raise StageConfigError(path, "when_base_missing", 'must be "error" or "skip"') from None
    runtime = _optional_str(path, data, "runtime") or DEFAULT_RUNTIME
    if not RUNTIME_PATTERN.match(runtime):
        raise StageConfigError(path, "runtime", 'must be a lower-case word, e.g. "go"')
    return Stage(
        name=folder.name,
        directory=folder,
        dockerfile_text=dockerfile_text,
        title=_required_str(path, data, "title"),
        changes=_required_str(path, data, "changes"),
        step=_required_str(path, data, "step"),
        article_size=article_size,
        command=tuple(command),
        expect=_parse_expectation(path, data.get("expect")),
        timeout_s=float(timeout),
        user=_optional_str(path, data, "user") or DEFAULT_USER,
        when_base_missing=when_base_missing,
        runtime=runtime,
        slim=_parse_slim(path, data.get("slim")),
        build_timeout_s=float(build_timeout),
        anchors=_parse_anchors(path, data.get("anchor", [])),
        memory_bytes=_parse_memory(path, data.get("memory")),
    )


def _parse_memory(path: Path, value: Any) -> int:
    """`memory = "256MB"`: the container's memory limit, in `docker images`' units, at least the default."""
    if value is None:
        return DEFAULT_MEMORY_BYTES
    try:
        memory = parse_size(value) if isinstance(value, str) else -1
    except ValueError:
        memory = -1
    if not DEFAULT_MEMORY_BYTES <= memory <= MAX_MEMORY_BYTES:
        raise StageConfigError(
            path, "memory", 'must be a size as docker prints it, e.g. "256MB": at least the default 64MiB, at most "2GB"'
        )
    return memory


_ANCHOR_KEYS = ("image", "size", "source")


def _parse_anchors(path: Path, tables: Any) -> tuple[Anchor, ...]:
    """`[[anchor]]` tables: each needs the image, its size as published, and where it was published."""
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        raise StageConfigError(path, "anchor", "[[anchor]] tables, each with image, size and source")
    anchors = []
    for table in tables:
        unknown = sorted(set(table) - set(_ANCHOR_KEYS))
        if unknown:
            raise StageConfigError(path, f"anchor.{unknown[0]}", f"unknown field (known: {', '.join(_ANCHOR_KEYS)})")
        for key in _ANCHOR_KEYS:
            if not isinstance(table.get(key), str) or not table[key].strip():
                raise StageConfigError(path, f"anchor.{key}", "required: a non-empty string")
        image, size, source = (table[key].strip() for key in _ANCHOR_KEYS)
        try:
            parse_size(size)
        except ValueError as error:
            raise StageConfigError(path, "anchor.size", str(error)) from error
        anchors.append(Anchor(image, size, source))
    return tuple(anchors)


def _parse_expectation(path: Path, table: Any) -> Expectation:
    if not isinstance(table, dict):
        raise StageConfigError(path, "expect", 'must be a table: [expect] with stdout = "..." or failure = "..."')
    unknown = sorted(set(table) - {"stdout", "failure"})
    if unknown:
        raise StageConfigError(path, f"expect.{unknown[0]}", "unknown field (known: stdout, failure)")
    if ("stdout" in table) == ("failure" in table):
        raise StageConfigError(path, "expect", "give exactly one of stdout or failure")
    key = "stdout" if "stdout" in table else "failure"
    value = table[key]
    if not isinstance(value, str) or (key == "failure" and not value):
        raise StageConfigError(path, f"expect.{key}", "must be a string" + (" (non-empty)" if key == "failure" else ""))
    return Expectation(**{key: value})


_SLIM_KEYS = ("binary", "extra", "extras_from", "with", "with_dlopen", "env", "metadata", "trace", "probes")


def _parse_slim(path: Path, table: Any) -> SlimSpec | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise StageConfigError(path, "slim", 'must be a table: [slim] with binary = "/path"')
    unknown = sorted(set(table) - set(_SLIM_KEYS))
    if unknown:
        raise StageConfigError(path, f"slim.{unknown[0]}", f"unknown field (known: {', '.join(_SLIM_KEYS)})")
    binary = table.get("binary")
    if not isinstance(binary, str) or not binary.startswith("/"):
        raise StageConfigError(path, "slim.binary", "must be an absolute path inside the image")
    for key in ("extra", "with"):
        value = table.get(key, [])
        if not (isinstance(value, list) and all(isinstance(item, str) and item for item in value)):
            raise StageConfigError(path, f"slim.{key}", "must be a list of strings")
    if any(not extra.startswith("/") for extra in table.get("extra", [])):
        raise StageConfigError(path, "slim.extra", "must be absolute paths inside the image")
    extras_from = table.get("extras_from")
    if extras_from is not None and not (isinstance(extras_from, str) and extras_from.startswith("/")):
        raise StageConfigError(path, "slim.extras_from", "must be an absolute path inside the image")
    try:
        bundles = tuple(Bundle(name) for name in table.get("with", []))
    except ValueError:
        known = ", ".join(bundle.value for bundle in Bundle)
        raise StageConfigError(path, "slim.with", f"unknown bundle (known: {known})") from None
    with_dlopen = table.get("with_dlopen", False)
    if not isinstance(with_dlopen, bool):
        raise StageConfigError(path, "slim.with_dlopen", "must be true or false")
    metadata = table.get("metadata", True)
    if not isinstance(metadata, bool):
        raise StageConfigError(path, "slim.metadata", "must be true or false")
    trace = table.get("trace", False)
    if not isinstance(trace, bool):
        raise StageConfigError(path, "slim.trace", "must be true or false")
    probes = table.get("probes", [])
    if not (isinstance(probes, list) and all(isinstance(item, str) and item.strip() for item in probes)):
        raise StageConfigError(path, "slim.probes", 'must be a list of commands: ["file /usr/bin/file", …]')
    if probes and not trace:
        raise StageConfigError(path, "slim.probes", "probes are run under the tracer: set trace = true")
    env = table.get("env", {})
    if not (isinstance(env, dict) and all(isinstance(value, str) for value in env.values())):
        raise StageConfigError(path, "slim.env", 'must be a table of strings: [slim.env] NAME = "value"')
    try:
        return SlimSpec(
            binary=PurePosixPath(binary),
            extras=tuple(PurePosixPath(extra) for extra in table.get("extra", [])),
            bundles=bundles,
            with_dlopen=with_dlopen,
            extras_from=PurePosixPath(extras_from) if extras_from is not None else None,
            env=tuple(env.items()),
            metadata=metadata,
            trace=trace,
            probes=tuple(tuple(shlex.split(probe)) for probe in probes),
        )
    except SlimError as error:
        raise StageConfigError(path, "slim.env", str(error)) from error


def _required_str(path: Path, data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise StageConfigError(path, key, "required: a non-empty string")
    return value.strip()


def _optional_str(path: Path, data: dict[str, Any], key: str) -> str | None:
    if key not in data:
        return None
    value = data[key]
    if not isinstance(value, str) or not value.strip():
        raise StageConfigError(path, key, "must be a non-empty string when given")
    return value.strip()
