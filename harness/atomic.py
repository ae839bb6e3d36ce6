"""All-or-nothing writing of generated files (results/, the README's table, SBOM documents).

Files are written to temporary names in the same folder and renamed into
place only once all of them are complete, so a failure (disk full, a folder
that is not writable, Ctrl-C) leaves the earlier files exactly as they were.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from harness.records.errors import ResultsWriteError


def write_files(results_dir: Path, contents: Mapping[str, str]) -> None:
    """Write every file in `contents` (name -> text) under `results_dir`, all or nothing."""
    staged: list[tuple[Path, Path]] = []
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        for name, text in contents.items():
            handle, temporary_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=results_dir)
            staged.append((Path(temporary_name), results_dir / name))
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
