"""A stage's public tag moved to the image just built, when no one else's image holds it."""

from __future__ import annotations

from harness.custody.enginelock import EngineLocks
from harness.custody.ledger import ROLE_STAGE
from harness.custody.made import Made
from harness.records.engine import Engine
from harness.records.settings import Progress


def publish(engine: Engine, made: Made, image_id: str, private: str, public: str, progress: Progress) -> str:
    """Move the public tag to the image just built, unless an image this checkout did not make holds it.

    Returns the tag the image is known by.  The Engine has no compare-and-set
    for tags, so checkouts on this machine take turns (harness.custody.enginelock):
    otherwise another could move the public tag between our tag and untag,
    and dropping the private tag would remove our image with its last tag.
    """
    with EngineLocks.for_engine(made.ledger.engine_id).tagging():
        holder = engine.image_info(public).image_id if engine.has_image(public) else None
        if holder is not None and holder != image_id and made.ledger.read().image(holder) is None:
            progress(
                f"{public}: held by an image this checkout did not make (another checkout's or the user's): kept as {private}"
            )
            return private
        made.ledger.record_image(image_id, ROLE_STAGE, (public,), made.namespace)
        engine.tag_image(image_id, public)
        engine.untag_image(image_id, private)  # the public tag is still ours: no other checkout moves it meanwhile
        return public
