"""One identity for what the project builds, against a real Engine.

Images carry only labels that follow from their inputs (stage, base,
namespace), so two clones build the same image IDs; the public tags follow
the newest build; and a fresh clone's `invoke clean` removes what a deleted
clone left in its namespace (found by its tags, which no ledger of the new
clone holds), and nothing a user built on it.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import docker
import pytest

from harness.engine import DockerEngine

from .conftest import invoke, of_this_namespace
from .test_faults import copy_repo

# A multi-stage C build, a [slim] image the harness writes, a hand-made ELF, and Go's and Rust's scratch images.
STAGES = ("07-scratch-libs", "08-scratch-auto", "11-scratch-minimal", "21-go-scratch", "31-rust-static")
USER_TAG = of_this_namespace("user-on-identity-07") + ":1"


def _namespace_tags(client: docker.DockerClient, namespace: str) -> list[str]:
    # One listing call: images.list() asks for each image again, and another run may remove one in between.
    return [tag for image in client.api.images() for tag in image.get("RepoTags") or () if tag.startswith(f"{namespace}/")]


@pytest.mark.fault("a fresh clone on an Engine that kept a deleted clone's images", "its own builds tagged; clean finds the old")
@pytest.mark.docker
def test_a_fresh_clone_builds_the_same_images_publishes_them_and_cleans_what_a_deleted_clone_left(
    engine: DockerEngine, tmp_path: Path, cleanup_namespace: str
) -> None:
    client = docker.from_env()
    namespace = f"{cleanup_namespace}-identity"  # its own: its last `invoke clean` removes every image tagged under it
    env = {"HELLO_LADDER_NAMESPACE": namespace}

    def public(stage: str) -> str:
        return f"{namespace}/{stage}:debian-bookworm"

    built: list[dict[str, str]] = []
    users: dict[str, str] = {}
    repo = tmp_path
    try:
        for clone in ("first", "second"):
            (tmp_path / clone).mkdir()
            repo = copy_repo(tmp_path / clone, STAGES)
            done = invoke(repo, "all", "--no-wire", env=env, timeout=2400)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            stages = json.loads((repo / "results" / "results.json").read_text())["stages"]
            for stage in stages:
                assert stage["image"] == public(stage["name"])  # results name public tags only
                assert client.images.get(stage["image"]).id == stage["image_id"]  # and the tag names this clone's build
            built.append({stage["name"]: stage["image_id"] for stage in stages})
            if clone == "first":
                # The user's own images on the first clone's: one tagged, one not (a `docker build` without -t).
                for tag, parent in ((USER_TAG, "07-scratch-libs"), (None, "08-scratch-auto")):
                    dockerfile = f"FROM {public(parent)}\nLABEL mine=yes\n"
                    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True)
                    users[tag or parent] = str(image.id)
                shutil.rmtree(repo)  # deleted without `invoke clean`, as a CI workspace or a re-clone is
        assert set(built[0]) == set(STAGES)
        assert built[0] == built[1]  # the same inputs: the same image, whichever clone built it

        done = invoke(repo, "clean", "--namespace", namespace, env=env, timeout=600)
        print(done.stdout)  # shown if the test fails
        assert done.returncode == 0, done.stderr
        assert _namespace_tags(client, namespace) == []  # the stage images, compile stages and [slim] sources of both clones
        listed = {image.id for image in client.images.list(all=True)}
        for name, image_id in built[1].items():
            # 07 and 08 stay, untagged, as the parents of the user's images; the others are gone.
            assert (image_id in listed) == (name in ("07-scratch-libs", "08-scratch-auto")), name
        assert users.keys() == {USER_TAG, "08-scratch-auto"} and set(users.values()) <= listed
        assert USER_TAG in client.images.get(users[USER_TAG]).tags
    finally:
        for image_id in users.values():
            client.images.remove(image_id, force=True)
        if repo.exists():
            invoke(repo, "clean", "--namespace", namespace, env=env, timeout=600)
