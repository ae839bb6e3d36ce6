"""The labels that mark what this project creates in the Engine.

Cleanup selects by these labels and nothing else, so an image or container
the user made themselves is never touched.
"""

from __future__ import annotations

MANAGED = "hello-ladder.managed"
ROLE = "hello-ladder.role"
STAGE = "hello-ladder.stage"
NAMESPACE = "hello-ladder.namespace"
BASE = "hello-ladder.base"
RUN_ID = "hello-ladder.run"  # one per container run, to find it again whatever happens

ROLE_STAGE = "stage"
ROLE_BUILDER = "builder"
ROLE_BASE = "base"
ROLE_RUN = "run"
ROLE_ENGINE = "engine"  # a nested Docker Engine and its image (harness/nested.py)


def managed(role: str, **extra: str) -> dict[str, str]:
    """The label set for something the project creates with the given role."""
    labels = {MANAGED: "true", ROLE: role}
    labels.update({f"hello-ladder.{key}": value for key, value in extra.items()})
    return labels


def selector(**extra: str) -> list[str]:
    """An Engine label filter matching what `managed(...)` produced."""
    return [f"{MANAGED}=true", *(f"hello-ladder.{key}={value}" for key, value in extra.items())]
