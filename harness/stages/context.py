"""The build context sent to the Engine, as a tar: the program's source folder plus the stage's Dockerfile.

The tutorial builds with the source folder as context.  Here the Dockerfile
lives in `stages/NN-name/`, outside that folder, so the context is made as
a tar: the files of the source folder that its `.dockerignore` does not
exclude (the adapter gives them, matched by the SDK with Docker's own rules:
`harness.engine.context`), and the Dockerfile under a name no source file can
clash with.  Timestamps and owners are zeroed so that the same source always
gives the same context, and the Engine's build cache can be reused across
stages and runs.  The tar is written to a spooled temporary file and streamed
from it: a large source folder is never held in memory.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

DOCKERFILE_NAME = ".hello-ladder.Dockerfile"
DOCKERIGNORE = ".dockerignore"
# Not part of any program's source, and not wanted in any image, whatever .dockerignore says.
IGNORED_NAMES = frozenset({".git", "__pycache__", DOCKERIGNORE})
# A context this small stays in memory; a larger one goes to a temporary file as it is written.
IN_MEMORY_BYTES = 1 << 20


def write_context(source_dir: Path, dockerfile_text: str, included: Iterable[str]) -> BinaryIO:
    """A tar of the `included` paths of `source_dir` (relative, POSIX) with `dockerfile_text` as DOCKERFILE_NAME.

    Returned rewound, to be read once and closed (`with write_context(...) as context:`).
    """
    context = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_BYTES)
    with tarfile.open(fileobj=context, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for relative in sorted(included, key=lambda path: Path(path).parts):
            path = source_dir / relative
            if IGNORED_NAMES.intersection(Path(relative).parts) or path.is_symlink():
                continue
            info = tar.gettarinfo(str(path), arcname=relative)
            _normalise(info)
            if path.is_file():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            elif path.is_dir():
                tar.addfile(info)
        data = dockerfile_text.encode("utf-8")
        info = tarfile.TarInfo(DOCKERFILE_NAME)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    return context  # type: ignore[return-value]  # SpooledTemporaryFile is a binary file object


def dockerignore_patterns(source_dir: Path) -> list[str]:
    """The patterns of `source_dir`'s .dockerignore, as the SDK's own build reads them: blank lines and comments dropped."""
    ignore = source_dir / DOCKERIGNORE
    if not ignore.is_file():
        return []
    lines = (line.strip() for line in ignore.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _normalise(info: tarfile.TarInfo) -> None:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""


def labels_in_dockerfile(context: BinaryIO, dockerfile: str, labels: dict[str, str]) -> BinaryIO:
    """The build context with `labels` as one LABEL instruction, sorted, at the end of its Dockerfile.

    Podman turns the API's `labels` into one LABEL step per label, in Go's map
    order, which changes from build to build: the last steps never come from the
    cache and every build makes a new image.  One sorted instruction is the same
    every time.  It labels the final stage, as the API's parameter does.  The
    context given is read to its end; the one returned is rewound.
    """
    if not labels:
        return context
    instruction = "LABEL " + " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in sorted(labels.items()))
    output = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_BYTES)
    with (
        tarfile.open(fileobj=context, mode="r|") as original,
        tarfile.open(fileobj=output, mode="w", format=tarfile.PAX_FORMAT) as rewritten,
    ):
        for member in original:
            content = original.extractfile(member) if member.isreg() else None
            if member.isreg() and member.name.removeprefix("./") == dockerfile.removeprefix("./"):
                assert content is not None
                text = content.read().decode("utf-8")
                data = (text if text.endswith("\n") or not text else text + "\n").encode("utf-8")
                data += instruction.encode("utf-8") + b"\n"
                member.size = len(data)
                content = io.BytesIO(data)
            rewritten.addfile(member, content)
    output.seek(0)
    return output  # type: ignore[return-value]
