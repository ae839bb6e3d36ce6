"""The build context sent to the Engine: the program's source folder plus the stage's Dockerfile.

The tutorial builds with the source folder as context.  Here the Dockerfile
lives in `stages/NN-name/`, outside that folder, so the context is made as
a tar in memory: every file of the source folder, and the Dockerfile under a
name no source file can clash with.  Timestamps and owners are zeroed so
that the same source always gives the same context, and the Engine's build
cache can be reused across stages and runs.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

DOCKERFILE_NAME = ".hello-ladder.Dockerfile"
# Not part of any program's source, and not wanted in any image.
IGNORED_NAMES = frozenset({".git", "__pycache__", ".dockerignore"})


def build_context(source_dir: Path, dockerfile_text: str) -> bytes:
    """A tar of `source_dir` with `dockerfile_text` added as DOCKERFILE_NAME."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(source_dir.rglob("*")):
            relative = path.relative_to(source_dir)
            if IGNORED_NAMES.intersection(relative.parts) or path.is_symlink():
                continue
            info = tar.gettarinfo(str(path), arcname=relative.as_posix())
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
    return buffer.getvalue()


def _normalise(info: tarfile.TarInfo) -> None:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""


def labels_in_dockerfile(context: bytes, dockerfile: str, labels: dict[str, str]) -> bytes:
    """The build context with `labels` as one LABEL instruction, sorted, at the end of its Dockerfile.

    Podman turns the API's `labels` into one LABEL step per label, in Go's map
    order, which changes from build to build: the last steps never come from the
    cache and every build makes a new image.  One sorted instruction is the same
    every time.  It labels the final stage, as the API's parameter does.
    """
    if not labels:
        return context
    instruction = "LABEL " + " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in sorted(labels.items()))
    source = io.BytesIO(context)
    output = io.BytesIO()
    with (
        tarfile.open(fileobj=source, mode="r:") as original,
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
    return output.getvalue()
