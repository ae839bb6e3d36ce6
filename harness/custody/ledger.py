"""What this checkout made in an Engine, recorded by identity as it is made.

An image or container is the project's when the project made it and can
prove it: the ledger holds the ID of every image the harness created (bases
it bootstrapped, stage, source and compiler-stage images, `invoke slim`
images) with the tags it gave them, the session nonce of every run before
that run creates a container, and the container of a build step that a
build's output named (`Running in <id>`) when the build was cut off.  Labels are never proof: Docker copies
a parent image's labels into every image built on it.

One ledger per checkout and per Engine (the Engine's own `ID`), in the
checkout's `.hello-ladder/` folder, so two checkouts sharing an Engine each
remove only what they made, and two Engines never mix.  It is written to a
temporary file and renamed (a crash leaves the old ledger or the new one,
never half of one), under a lock for read-modify-write.  A missing or
unreadable ledger reads as empty: cleanup then removes less, never more.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.atomic import write_atomically

log = logging.getLogger(__name__)

STATE_DIR = ".hello-ladder"
FORMAT = 1

ROLE_BASE = "base"  # a base image the harness bootstrapped
ROLE_STAGE = "stage"  # a stage's image (or an `invoke slim` image)
ROLE_BUILDER = "builder"  # a slim stage's source image, a compiler stage, a failed build's last step
ROLE_TEST = "test"  # an image a docker-marked test built for itself


@dataclass(frozen=True)
class ImageEntry:
    """One image the checkout made: its ID, the tags it gave it, and under which namespace.

    The ID is the Engine's (`sha256:…`), or the short one a build's output
    named when the Engine was gone before it could be asked for the whole.
    """

    image_id: str
    role: str
    tags: tuple[str, ...]
    namespace: str | None  # None for bases, which no namespace owns
    recorded: str  # UTC time, ISO 8601

    def names(self, image_id: str) -> bool:
        return _same(self.image_id, image_id)


@dataclass(frozen=True)
class StepContainerEntry:
    """The container of a build step the build was cut off in, by the short ID its output named."""

    container_id: str
    namespace: str
    recorded: str

    def names(self, container_id: str) -> bool:
        return _same(self.container_id, container_id)


def _same(recorded: str, ident: str) -> bool:
    """Whether the ID `recorded` (whole, or the short one a build's output gives) names `ident`."""
    bare, whole = recorded.removeprefix("sha256:"), ident.removeprefix("sha256:")
    return recorded == ident or (len(bare) < 64 and whole.startswith(bare))


@dataclass(frozen=True)
class SessionEntry:
    """One run's nonce: every container of the run carries it as its own label."""

    nonce: str
    namespace: str
    recorded: str


@dataclass(frozen=True)
class LedgerState:
    images: tuple[ImageEntry, ...] = ()
    sessions: tuple[SessionEntry, ...] = ()
    step_containers: tuple[StepContainerEntry, ...] = ()

    def image(self, image_id: str) -> ImageEntry | None:
        return next((entry for entry in self.images if entry.names(image_id)), None)

    def step_container(self, container_id: str) -> StepContainerEntry | None:
        return next((entry for entry in self.step_containers if entry.names(container_id)), None)

    def session(self, nonce: str) -> SessionEntry | None:
        return next((entry for entry in self.sessions if entry.nonce == nonce), None)


@dataclass(frozen=True)
class Ledger:
    """The ledger file of one checkout for one Engine."""

    path: Path
    checkout: str  # this checkout's scope: a random id kept in .hello-ladder/checkout
    engine_id: str = field(default="")

    @classmethod
    def open(cls, repo_root: Path, engine_id: str) -> Ledger:
        """The ledger of the checkout at `repo_root` for the Engine whose `ID` is `engine_id`."""
        folder = repo_root / STATE_DIR
        folder.mkdir(exist_ok=True)
        digest = hashlib.sha256(engine_id.encode()).hexdigest()[:16]
        return cls(folder / f"ledger-{digest}.json", checkout_id(repo_root), engine_id)

    def read(self) -> LedgerState:
        """What the ledger holds; empty (with a warning) if it is missing or unreadable."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
            if data.get("checkout") != self.checkout or data.get("engine") != self.engine_id:
                # A ledger copied from another checkout (or Engine) lists what that one made, not this one.
                raise ValueError(f"written for checkout {data.get('checkout')!r} and Engine {data.get('engine')!r}")
            images = tuple(
                ImageEntry(str(i["image_id"]), str(i["role"]), tuple(map(str, i["tags"])), i.get("namespace"), str(i["recorded"]))
                for i in data["images"]
            )
            sessions = tuple(SessionEntry(str(s["nonce"]), str(s["namespace"]), str(s["recorded"])) for s in data["sessions"])
            steps = tuple(  # absent from a ledger written before the harness recorded them
                StepContainerEntry(str(c["container_id"]), str(c["namespace"]), str(c["recorded"]))
                for c in data.get("step_containers", [])
            )
        except FileNotFoundError:
            return LedgerState()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            log.warning("%s: ledger unreadable, treated as empty (cleanup removes less): %s", self.path, error)
            return LedgerState()
        return LedgerState(images, sessions, steps)

    def record_image(self, image_id: str, role: str, tags: tuple[str, ...] = (), namespace: str | None = None) -> None:
        """Record that this checkout made `image_id` (merging tags with an earlier record of the same image)."""

        def change(state: LedgerState) -> LedgerState:
            earlier = state.image(image_id)
            merged = tuple(dict.fromkeys([*(earlier.tags if earlier else ()), *tags]))
            if earlier is not None and earlier.tags == merged and earlier.namespace == namespace:
                return state  # known as it is (a warm run's images): nothing to write, no fsync
            entry = ImageEntry(image_id, earlier.role if earlier else role, merged, namespace, _now())
            images = (*(e for e in state.images if e.image_id != image_id), entry)
            return dataclasses.replace(state, images=images)

        self._update(change)

    def record_session(self, nonce: str, namespace: str) -> None:
        """Record a run's nonce before the run creates any container."""

        def change(state: LedgerState) -> LedgerState:
            if state.session(nonce) is not None:
                return state
            return dataclasses.replace(state, sessions=(*state.sessions, SessionEntry(nonce, namespace, _now())))

        self._update(change)

    def record_step_container(self, container_id: str, namespace: str) -> None:
        """Record the container of the step a build was cut off in (the Engine may keep it, as a killed one does)."""

        def change(state: LedgerState) -> LedgerState:
            if state.step_container(container_id) is not None:
                return state
            entry = StepContainerEntry(container_id, namespace, _now())
            return dataclasses.replace(state, step_containers=(*state.step_containers, entry))

        self._update(change)

    def forget(
        self,
        image_ids: frozenset[str] = frozenset(),
        nonces: frozenset[str] = frozenset(),
        step_containers: frozenset[str] = frozenset(),
    ) -> None:
        """Drop the entries of images and step containers that are gone, and of sessions that are over."""
        if image_ids or nonces or step_containers:
            self._update(
                lambda state: LedgerState(
                    tuple(e for e in state.images if not any(map(e.names, image_ids))),
                    tuple(s for s in state.sessions if s.nonce not in nonces),
                    tuple(c for c in state.step_containers if c.container_id not in step_containers),
                )
            )

    def _update(self, change: Callable[[LedgerState], LedgerState]) -> None:
        """Read, change and write the ledger under an exclusive lock (runs of one checkout may overlap in tests)."""
        with open(self.path.with_suffix(".lock"), "a+", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self.read()
                new = change(state)
                if new != state or not self.path.exists():
                    write_atomically(self.path, _render(self, new).encode("utf-8"))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _render(ledger: Ledger, state: LedgerState) -> str:
    data = {
        "format": FORMAT,
        "about": "images and runs this checkout made in one Docker Engine; `invoke clean` removes only these",
        "engine": ledger.engine_id,
        "checkout": ledger.checkout,
        "images": [dataclasses.asdict(entry) for entry in state.images],
        "sessions": [dataclasses.asdict(entry) for entry in state.sessions],
        "step_containers": [dataclasses.asdict(entry) for entry in state.step_containers],
    }
    return json.dumps(data, indent=1) + "\n"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def checkout_id(repo_root: Path) -> str:
    """This checkout's scope id, made once, with the folder it was made for.

    A fresh clone gets its own; so does a copy of a checkout (`cp -r`), whose
    `.hello-ladder/` names another folder: the copy did not make the
    original's images, and its ledgers start empty (see `Ledger.read`).
    """
    folder = repo_root / STATE_DIR
    folder.mkdir(exist_ok=True)
    path = folder / "checkout"
    where = str(repo_root.resolve())
    with contextlib.suppress(FileNotFoundError, ValueError):
        ident, made_for = path.read_text(encoding="utf-8").rstrip("\n").split(" ", 1)
        if made_for == where and len(ident) == 12 and all(c in "0123456789abcdef" for c in ident):
            return ident
    new = secrets.token_hex(6)
    write_atomically(path, f"{new} {where}\n".encode("utf-8"))
    return new
