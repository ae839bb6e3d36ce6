"""Coordination between checkouts of this project that share one Engine on one machine.

Three races, each seen for real when two checkouts ran `invoke all` (or the
tests) at once:

- moving a public tag: each checkout builds under a private tag, then moves
  the public tag to its image and drops the private one.  When the other
  checkout moved the public tag in between, dropping the private tag
  removed the image's last tag, and with it the image;
- removing an image also removes its untagged parents, and with the
  classic builder those parents are the build cache: another checkout's
  build may be reusing them at that very moment;
- making a missing image (a Debian base, the nested Engine's image): both
  found it missing, both bootstrapped it, and the second import took the tag
  from the first, whose image was left with no tag and no record.

The Engine has no lock for either, so the checkouts take file locks keyed by
the Engine's ID, in the machine's temporary folder (so every checkout finds
them): builds share one lock that removals take alone, moving a public
tag holds a second lock, briefly, and making an image holds a lock of that
image's name while it checks for the image and makes it.  `flock` locks die with their process, so a
killed run never leaves one held.  Checkouts on other machines that share a
remote Engine are not covered; the README says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineLocks:
    """The locks of one Engine: `building` (shared), `removing` (alone), `tagging` (alone), `making(ref)` (alone)."""

    folder: Path
    engine_digest: str  # of the Engine's ID: the lock files of one Engine share it

    @classmethod
    def for_engine(cls, engine_id: str, folder: Path | None = None) -> EngineLocks:
        where = folder if folder is not None else Path(tempfile.gettempdir())
        return cls(where, _digest(engine_id))

    @property
    def cache_lock(self) -> Path:
        return self._file("cache")

    @property
    def tags_lock(self) -> Path:
        return self._file("tags")

    def making_lock(self, ref: str) -> Path:
        return self._file(f"make-{_digest(ref)}")

    def _file(self, purpose: str) -> Path:
        return self.folder / f"hello-ladder-engine-{self.engine_digest}.{purpose}.lock"

    def building(self) -> contextlib.AbstractContextManager[None]:
        """Held by every build: many at once, but never while an image is removed."""
        return _flocked(self.cache_lock, fcntl.LOCK_SH)

    def removing(self) -> contextlib.AbstractContextManager[None]:
        """Held while removing images: waits for every build in progress (saying so), and holds off new ones."""
        return _flocked(self.cache_lock, fcntl.LOCK_EX, waiting=WAITING_FOR_BUILDS)

    def removing_now(self) -> contextlib.AbstractContextManager[bool]:
        """`removing` if no build is in progress: yields True holding it, or False at once, holding nothing.

        A build can take many minutes, and flock lets new builds in while a
        removal waits, so a run's own end-of-run sweep does not wait: what it
        leaves is still in the ledger, for the next sweep or `invoke clean`.
        """
        return _flocked_if_free(self.cache_lock, fcntl.LOCK_EX)

    def tagging(self) -> contextlib.AbstractContextManager[None]:
        """Held while a public tag is checked, moved, and the private tag dropped."""
        return _flocked(self.tags_lock, fcntl.LOCK_EX)

    def making(self, ref: str) -> contextlib.AbstractContextManager[None]:
        """Held while `ref` is looked for and, if missing, made: so only one run makes it, the others then find it."""
        return _flocked(self.making_lock(ref), fcntl.LOCK_EX, waiting=f"waiting for another run on this Engine making {ref}")


WAITING_FOR_BUILDS = "waiting for the builds in progress on this Engine to finish before removing images"


@contextlib.contextmanager
def _flocked(path: Path, mode: int, waiting: str | None = None) -> Iterator[None]:
    # One open file description per holder: flock then orders holders in one
    # process (threads) as it does holders in different processes.
    descriptor = _open_shared(path)
    try:
        if waiting is not None and not _try(descriptor, mode):
            log.warning("%s", waiting)
        fcntl.flock(descriptor, mode)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


@contextlib.contextmanager
def _flocked_if_free(path: Path, mode: int) -> Iterator[bool]:
    descriptor = _open_shared(path)
    try:
        yield _try(descriptor, mode)
    finally:
        os.close(descriptor)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _try(descriptor: int, mode: int) -> bool:
    try:
        fcntl.flock(descriptor, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _open_shared(path: Path) -> int:
    """Open (creating) a lock file that other users' checkouts can lock too."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        # Made by another user, writable only by them: a read-only descriptor locks as well.
        return os.open(path, os.O_RDONLY)
    with contextlib.suppress(OSError):
        os.fchmod(descriptor, 0o666)  # past the umask; fails harmlessly on another user's file
    return descriptor
