"""The labels the project puts on what it creates: descriptions, never proof of ownership.

Docker copies a parent image's labels into every image built on it, so a
label on an image says nothing about who made the image that carries it.
What is the project's is decided by identity, in `harness.custody.ledger` and
`harness.custody.ownership`.  The labels here only describe:

- on stage images: which stage, base and namespace, all of them inputs of
  the image, so the same inputs give the same image ID in every clone (a
  user's image built on a stage image inherits these, and is still the
  user's);
- on the compiler stages of multi-stage builds: the namespace;
- on containers: the run's session nonce (the proof for containers: it is
  set on the container itself, and no image ever carries it);
- on a nested Engine's container and image (`harness.nested`): its role, so
  `scripts/nested-engine status` can list them; `invoke clean` never touches them.

Bootstrapped bases carry no label at all, so `FROM debian:bookworm`
inherits nothing from the project.
"""

from __future__ import annotations

# The tag namespace of what a run builds (`hello-ladder/07-scratch-libs:debian-bookworm`), unless told another.
DEFAULT_NAMESPACE = "hello-ladder"

STAGE = "hello-ladder.stage"
NAMESPACE = "hello-ladder.namespace"
BASE = "hello-ladder.base"
SESSION = "hello-ladder.session"  # containers only: never put on an image
RUN_ID = "hello-ladder.run"  # one per container run, to find it again whatever happens
ROLE = "hello-ladder.role"
ROLE_ENGINE = "engine"  # a nested Docker Engine and its image (harness/nested)


def image(namespace: str, **extra: str) -> dict[str, str]:
    """The descriptive labels of an image a stage build makes: what it was built from, never who built it."""
    described = {NAMESPACE: namespace}
    described.update({f"hello-ladder.{key}": value for key, value in extra.items()})
    return described


def engine(**extra: str) -> dict[str, str]:
    """The labels of a nested Engine's container or image."""
    return {ROLE: ROLE_ENGINE, **{f"hello-ladder.{key}": value for key, value in extra.items()}}


def container(session: str, namespace: str, **extra: str) -> dict[str, str]:
    """The labels of a container the harness creates; `session` must be in the ledger first."""
    given = {SESSION: session, NAMESPACE: namespace}
    given.update({f"hello-ladder.{key}": value for key, value in extra.items()})
    return given


def selector(**extra: str) -> list[str]:
    """An Engine label filter, to find (never to own) what carries these labels."""
    return [f"hello-ladder.{key}={value}" for key, value in extra.items()]
