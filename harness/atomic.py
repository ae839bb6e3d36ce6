"""All-or-nothing writing of files: generated results, the README's table, SBOM documents, the ledger, cache entries.

A file is written to a temporary name in its own folder and renamed into
place only once it is complete (with several files, once all of them are),
so a failure (disk full, a folder that is not writable, Ctrl-C) leaves the
earlier files exactly as they were and no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

from harness.records.errors import ResultsWriteError

Writer = Callable[[BinaryIO], None]


def write_atomically(path: Path, content: bytes | Writer, *, durable: bool = True) -> None:
    """`path` replaced by `content` (bytes, or a function that writes them), whole or not at all.

    `durable`: on disk (fsync) before the rename; a cache entry that can be computed again needs not be.
    """
    temporary = _staged(path, content, durable)
    try:
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def write_files(results_dir: Path, contents: Mapping[str, str]) -> None:
    """Write every file in `contents` (name -> text) under `results_dir`, all or nothing."""
    staged: list[tuple[Path, Path]] = []
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        for name, text in contents.items():
            staged.append((_staged(results_dir / name, text.encode("utf-8"), durable=True), results_dir / name))
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


def _staged(final: Path, content: bytes | Writer, durable: bool) -> Path:
    """`content` written to a new temporary file beside `final`: its path.  Nothing is left if writing fails."""
    handle, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            if isinstance(content, bytes):
                stream.write(content)
            else:
                content(stream)
            stream.flush()
            if durable:
                os.fsync(stream.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise
    return Path(name)
