"""A namespace's tag moved to the image a run just made: the tag follows the newest build.

A tag under the namespace's repositories (`hello-ladder/07-scratch-libs:...`)
is the project's, whoever's run set it (an earlier clone of this checkout, a
deleted CI workspace): `invoke clean` removes every such tag
(`harness.custody.ownership`).  So moving one needs no permission, only care
for the image that held it: it is recorded in this checkout's ledger, and
the end-of-run sweep removes it once it has no tag left (an image the user
also tagged keeps that tag, and stays).  Two checkouts that run at once on
one Engine use two namespaces.
"""

from __future__ import annotations

from harness.custody.enginelock import EngineLocks
from harness.custody.ledger import ROLE_BUILDER, ROLE_STAGE
from harness.custody.made import Made
from harness.records.engine import Engine
from harness.records.settings import Progress


def publish(
    engine: Engine, made: Made, image_id: str, private: str, public: str, progress: Progress, *, role: str = ROLE_STAGE
) -> str:
    """Move the public tag to the image just built (under `private`), then drop the private tag; returns the public tag.

    The Engine has no compare-and-set for tags, so checkouts on this machine
    take turns (harness.custody.enginelock): dropping the private tag must not
    remove our image with its last tag while another run moves the public one.
    """
    with EngineLocks.for_engine(made.ledger.engine_id).tagging():
        _claim(engine, made, image_id, public, role, progress)
        engine.untag_image(image_id, private)
    return public


def keep(engine: Engine, made: Made, image_id: str, tag: str, progress: Progress) -> None:
    """Tag an image kept for the next run's build cache (a compile stage, a [slim] source image)."""
    with EngineLocks.for_engine(made.ledger.engine_id).tagging():
        _claim(engine, made, image_id, tag, ROLE_BUILDER, progress)


def _claim(engine: Engine, made: Made, image_id: str, tag: str, role: str, progress: Progress) -> None:
    holder = engine.image_info(tag).image_id if engine.has_image(tag) else None
    made.ledger.record_image(image_id, role, (tag,), made.namespace)
    if holder is not None and holder != image_id and made.ledger.read().image(holder) is None:
        # Built by a run whose ledger is not this one (an earlier clone's): ours by its tag, swept once untagged.
        made.ledger.record_image(holder, ROLE_BUILDER, (), made.namespace)
        progress(f"{tag}: moved from {holder.removeprefix('sha256:')[:12]}, an earlier build in this namespace")
    engine.tag_image(image_id, tag)
