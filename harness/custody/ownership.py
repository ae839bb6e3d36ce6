"""What is the project's, decided by identity, and its removal: the one rule every clean-up path follows.

The rule:
- an image is the project's when its ID is in this checkout's ledger for
  this Engine (recorded when the harness made it), or, for `invoke clean`,
  when it carries a tag under one of the namespace's repositories
  (`<namespace>/<stage>:...`), whoever's run set it: so a fresh clone
  removes what a deleted clone built in the same namespace; labels never
  count (a user's image built on a project image inherits them);
- only the tags the ledger recorded for it, and those under the namespace,
  are the project's: an image that also carries another tag (the user's
  `docker tag`) is untagged, not deleted;
- a container is the project's when it carries, as its own label (not one
  copied from its image), a session nonce this checkout recorded before the
  run created it; so is a volume (a trace's), which has no image to copy from;
- nothing is forced: an image with a child (a user's image built on it) or
  a container using it only loses the project's tags; its layers stay.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from harness.custody.enginelock import EngineLocks
from harness.custody.ledger import ROLE_BASE, Ledger, LedgerState
from harness.records import labels
from harness.records.engine import Engine, EngineContainer, EngineImage, EngineVolume
from harness.records.errors import ImageInUse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scope:
    """Which of the checkout's things a clean-up path may remove."""

    namespace: str | None = None  # None: every namespace
    bases: bool = False  # also the bases this checkout bootstrapped
    untagged_only: bool = False  # the end-of-run sweep: only images that lost every tag
    sessions: frozenset[str] | None = None  # only the containers and volumes of these runs (None: every recorded run)
    images: bool = True
    keep: frozenset[str] = frozenset()  # image IDs to leave: a run's own results, even if another took their tag
    # The namespaces whose tags make an image the project's, recorded or not (`invoke clean`'s; see the rule above).
    tagged: frozenset[str] = frozenset()

    def tagged_under(self, tags: tuple[str, ...]) -> tuple[str, ...]:
        """The tags of `tags` under one of the `tagged` namespaces' repositories."""
        return tuple(tag for tag in tags if tag.split("/", 1)[0] in self.tagged and "/" in tag)


@dataclass(frozen=True)
class Removal:
    kind: str  # "image", "container" or "volume"
    ident: str
    untag: tuple[str, ...]  # image tags to remove (all of them: the image is deleted)
    delete: bool  # False: only the project's tags go, another tag keeps the image
    why: str

    def describe(self) -> str:
        name = f" ({', '.join(self.untag)})" if self.untag else ""
        action = "remove" if self.delete else "untag"
        return f"{action} {self.kind} {_short(self.ident)}{name}: {self.why}"


def plan(
    ledger: Ledger,
    state: LedgerState,
    images: tuple[EngineImage, ...],
    containers: tuple[EngineContainer, ...],
    scope: Scope,
    volumes: tuple[EngineVolume, ...] = (),
    step_containers: tuple[EngineContainer, ...] = (),
) -> tuple[Removal, ...]:
    """What `scope` removes, each with why it is the project's; a pure function of the ledger and the Engine's lists."""
    removals: list[Removal] = []
    runs = [("container", c.container_id, c.own_label(labels.SESSION)) for c in containers]
    runs += [("volume", v.name, v.labels.get(labels.SESSION)) for v in volumes]
    for kind, ident, nonce in runs:
        session = state.session(nonce) if nonce else None
        if session is None or (scope.sessions is not None and nonce not in scope.sessions):
            continue
        if scope.namespace is not None and session.namespace != scope.namespace:
            continue
        why = (
            f"its own label {labels.SESSION}={nonce} is a run of this checkout, recorded {session.recorded} in {ledger.path.name}"
        )
        removals.append(Removal(kind, ident, (), True, why))
    if not scope.images:
        return tuple(removals)
    for container in step_containers:
        # Its build is over (one run at a time per checkout): whichever session made it, it is only left over.
        # Not with a run's own containers alone (an interrupt's): the builder is removing that one itself.
        step = state.step_container(container.container_id)
        if step is None or scope.namespace not in (None, step.namespace):
            continue
        why = f"the step container a build of this checkout was cut off in (`Running in {step.container_id}`), recorded {step.recorded}"
        removals.append(Removal("container", container.container_id, (), True, why))
    for image in images:
        if image.image_id in scope.keep or (scope.untagged_only and image.tags):
            continue
        entry = state.image(image.image_id)
        recorded = entry is not None and (scope.bases if entry.role == ROLE_BASE else scope.namespace in (None, entry.namespace))
        under = scope.tagged_under(image.tags)
        if entry is not None and recorded:
            why = f"{entry.role} image this checkout made, its ID recorded {entry.recorded} in {ledger.path.name}"
        elif under:
            why = f"tagged under the namespace's repositories ({', '.join(under)}), by this clone's run or an earlier one's"
        else:
            continue
        ours = tuple(tag for tag in image.tags if tag in under or (entry is not None and recorded and tag in entry.tags))
        foreign = tuple(tag for tag in image.tags if tag not in ours)
        if foreign:
            if not ours:
                continue
            why += f"; also tagged {', '.join(foreign)}, which the project did not make: only its own tags go"
        removals.append(Removal("image", image.image_id, ours, not foreign, why))
    return tuple(removals)


def apply(engine: Engine, ledger: Ledger, removals: tuple[Removal, ...], wait: bool = True) -> tuple[Removal, ...]:
    """Carry out `removals` (containers first, then the volumes they held); return those done.  Never forced.

    Images go only while no build runs on the Engine (harness.custody.enginelock): with
    `wait`, after the builds in progress; without, now or not at all (they stay
    in the ledger, for the next sweep or `invoke clean`).
    """
    # A run's containers, then its volumes: a volume a container still holds cannot go.
    runs = tuple(sorted((r for r in removals if r.kind != "image"), key=lambda r: r.kind != "container"))
    images = tuple(removal for removal in removals if removal.kind == "image")
    for removal in runs:
        if removal.kind == "container":
            engine.remove_container(removal.ident)
        else:
            engine.remove_volume(removal.ident)
    if not images:
        # A run's containers and volumes alone (an interrupted run's): no image goes, so no build need be waited for.
        return runs
    # Removing an image removes its untagged parents too: the build cache another
    # checkout's build may be reusing at this moment.
    locks = EngineLocks.for_engine(ledger.engine_id)
    with locks.removing() if wait else locks.removing_now() as free:
        if free is False:
            log.warning(
                "%d images left for the next run's sweep or `invoke clean`: a build is in progress on this Engine", len(images)
            )
            return runs
        done, gone = _remove_images(engine, images)
    ledger.forget(image_ids=frozenset(gone))
    return (*runs, *done)


def _remove_images(engine: Engine, removals: tuple[Removal, ...]) -> tuple[list[Removal], set[str]]:
    done: list[Removal] = []
    gone: set[str] = set()
    for removal in removals:
        try:
            for tag in removal.untag[: -1 if removal.delete else None]:
                engine.untag_image(removal.ident, tag)
            if removal.delete:
                engine.remove_image(removal.ident)
                gone.add(removal.ident)
            done.append(removal)
        except ImageInUse as error:
            # A child image (a user's, built on it) or a container needs it: only the project's names go.
            for tag in removal.untag:
                try:
                    engine.untag_image(removal.ident, tag)
                except ImageInUse as still:
                    log.warning("%s", still)
            log.warning("%s", error)
            done.append(Removal("image", removal.ident, removal.untag, False, f"{removal.why}; kept untagged: {error.reason}"))
    return done, gone


def clean(engine: Engine, ledger: Ledger, scope: Scope, dry_run: bool = False, wait: bool = True) -> tuple[Removal, ...]:
    """Remove (or, with `dry_run`, list) what `scope` selects of what this checkout made; `wait` as in `apply`."""
    state = ledger.read()
    images = engine.list_images()
    containers = engine.list_containers(labels.SESSION)
    steps = engine.find_containers(tuple(entry.container_id for entry in state.step_containers))
    removals = plan(ledger, state, images, containers, scope, engine.list_volumes(labels.SESSION), steps)
    if dry_run:
        return removals
    done = apply(engine, ledger, removals, wait)
    # Entries of images the Engine no longer lists (removed by hand, or kept only as a child's parent) go too.
    listed = {image.image_id for image in images}
    stale = frozenset(entry.image_id for entry in state.images if not any(map(entry.names, listed)))
    # Step containers removed just now, or gone with the build that made them (the builder's own clean-up).
    kept = {container.container_id for container in steps} - {r.ident for r in done if r.kind == "container"}
    finished = frozenset(entry.container_id for entry in state.step_containers if not any(map(entry.names, kept)))
    # The runs whose containers were just removed are over (one run at a time per checkout holds the lock).
    over = (
        scope.sessions
        if scope.sessions is not None
        else frozenset(session.nonce for session in state.sessions if scope.namespace in (None, session.namespace))
    )
    ledger.forget(image_ids=stale, nonces=over, step_containers=finished)
    return done


def remove_made(engine: Engine, ledger: Ledger, image_ids: frozenset[str]) -> tuple[Removal, ...]:
    """Remove these images, if this checkout made them (a slim stage's source image, once read)."""
    state = ledger.read()
    present = tuple(image for image in engine.list_images() if image.image_id in image_ids)
    removals = plan(ledger, state, present, (), Scope(bases=True))
    return apply(engine, ledger, removals)


def _short(ident: str) -> str:
    return ident.removeprefix("sha256:")[:12]
