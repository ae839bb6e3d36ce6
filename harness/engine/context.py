"""A build's context as the Engine receives it: the source folder matched against its .dockerignore by the SDK."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from docker.utils.build import exclude_paths

from harness.records.engine import BuildContext
from harness.stages.context import DOCKERFILE_NAME, dockerignore_patterns, write_context


def context_stream(context: BuildContext) -> BinaryIO:
    """The context's tar, rewound: what `docker build` would send for the folder, with the Dockerfile added."""
    return write_context(context.source_dir, context.dockerfile_text, included_paths(context.source_dir))


def included_paths(source_dir: Path) -> set[str]:
    """The paths under `source_dir` (relative, POSIX) that its .dockerignore does not exclude: Docker's rules, the SDK's code."""
    # exclude_paths returns what is kept (despite its name); it always keeps the Dockerfile it is told of.
    kept = exclude_paths(str(source_dir), dockerignore_patterns(source_dir), dockerfile=DOCKERFILE_NAME)
    return {Path(path).as_posix() for path in kept}
