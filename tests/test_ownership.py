"""Ownership: what the project made is recorded by ID or tagged under its namespace, and clean-up removes only that.

Unit tests of the ledger and the rule, then, against a real Engine, the
user's own images built on the project's images (kept through every removal
path), and two checkouts running `invoke all` at once on one Engine, each in a namespace of its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from harness.commands.cleanup import with_namespaces
from harness.custody import ownership
from harness.custody.ledger import ROLE_BASE, ROLE_BUILDER, ROLE_STAGE, Ledger
from harness.custody.made import Made
from harness.custody.ownership import EngineContainer, EngineImage, Scope
from harness.engine import DockerEngine
from harness.records import labels
from harness.records.engine import EngineVolume, ImageInfo
from harness.records.errors import EngineUnavailable
from harness.records.settings import Settings
from harness.run.build import build_dockerfile
from harness.stages.stage import load_stage

from .conftest import TEST_NAMESPACE, interrupt_invoke, invoke, of_this_namespace
from .fakes import FakeEngine, _image
from .test_faults import add_stage, copy_repo, stage_toml
from .test_stages import make_stage

BASE = "debian:bookworm"


# --- the ledger and the rule, without an Engine -------------------------------------


def test_the_ledger_records_by_id_and_survives_a_reopen(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path, "ENGINE:A")
    ledger.record_image("sha256:1", ROLE_STAGE, ("ns/01:x-private",), "ns")
    ledger.record_image("sha256:1", ROLE_STAGE, ("ns/01:x",), "ns")
    ledger.record_session("nonce", "ns")
    again = Ledger.open(tmp_path, "ENGINE:A").read()
    assert again.image("sha256:1") is not None and again.image("sha256:1").tags == ("ns/01:x-private", "ns/01:x")  # type: ignore[union-attr]
    assert again.session("nonce") is not None
    # Another Engine has a ledger of its own; the checkout's scope is the same.
    other = Ledger.open(tmp_path, "ENGINE:B")
    assert other.read().images == () and other.checkout == ledger.checkout and other.path != ledger.path
    assert not list((tmp_path / ".hello-ladder").glob("*.tmp"))  # written to a temporary name, then renamed


def test_recording_an_image_known_as_it_is_writes_nothing(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path, "ENGINE:A")
    ledger.record_image("sha256:1", ROLE_STAGE, ("ns/01:x",), "ns")
    written = ledger.path.stat().st_mtime_ns, ledger.path.read_text(encoding="utf-8")
    ledger.path.chmod(0o444)  # a write would replace the file; its mode would not survive
    ledger.record_image("sha256:1", ROLE_STAGE, ("ns/01:x",), "ns")
    assert (ledger.path.stat().st_mtime_ns, ledger.path.read_text(encoding="utf-8")) == written
    assert ledger.path.stat().st_mode & 0o777 == 0o444
    ledger.record_image("sha256:1", ROLE_STAGE, ("ns/01:y",), "ns")  # a new tag is written
    assert ledger.read().image("sha256:1").tags == ("ns/01:x", "ns/01:y")  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ["", "{", '{"format": 1}', '{"format": 99, "images": [], "sessions": []}', "[1, 2]"])
def test_a_missing_or_corrupt_ledger_reads_as_empty_so_clean_removes_less(tmp_path: Path, text: str) -> None:
    ledger = Ledger.open(tmp_path, "ENGINE")
    ledger.path.write_text(text)
    state = ledger.read()
    assert state.images == () and state.sessions == ()
    images = (EngineImage("sha256:1", ("hello-ladder/01-naive:debian-bookworm",)),)
    assert ownership.plan(ledger, state, images, (), Scope(bases=True)) == ()


def test_a_copied_checkout_gets_a_scope_of_its_own_and_an_empty_ledger(tmp_path: Path) -> None:
    import shutil

    original = tmp_path / "original"
    original.mkdir()
    ledger = Ledger.open(original, "ENGINE")
    ledger.record_image("sha256:1", ROLE_STAGE, ("ns/01:x",), "ns")
    shutil.copytree(original, tmp_path / "copy")  # `cp -r`, .hello-ladder/ included
    copied = Ledger.open(tmp_path / "copy", "ENGINE")
    assert copied.checkout != ledger.checkout
    assert copied.read().images == ()  # the copy did not make the original's images
    assert Ledger.open(original, "ENGINE").read().image("sha256:1") is not None


def _ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger.open(tmp_path, "ENGINE")
    ledger.record_image("sha256:stage", ROLE_STAGE, ("ns/07:b",), "ns")
    ledger.record_image("sha256:compiler", ROLE_BUILDER, (), "ns")
    ledger.record_image("sha256:other-ns", ROLE_STAGE, ("other/07:b",), "other")
    ledger.record_image("sha256:base", ROLE_BASE, ("debian:bookworm",))
    ledger.record_session("run1", "ns")
    return ledger


def test_inherited_labels_never_make_an_image_or_a_container_the_projects(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    stage_labels = labels.image("ns", stage="07")
    images = (
        EngineImage("sha256:stage", ("ns/07:b",)),
        EngineImage("sha256:compiler", ()),
        EngineImage("sha256:base", ("debian:bookworm",)),
        EngineImage("sha256:user-on-07", ("user-on-07:1",)),  # carries every label of the stage image
        EngineImage("sha256:user-app", ("user-app:1",)),
        EngineImage("sha256:user-untagged", ()),
    )
    containers = (
        EngineContainer("c-ours", "a", {**stage_labels, labels.SESSION: "run1"}, stage_labels),
        # A user's container from an image that carries a session label (a committed container of ours).
        EngineContainer("c-users", "b", {labels.SESSION: "run1"}, {labels.SESSION: "run1"}),
        EngineContainer("c-unknown", "c", {labels.SESSION: "someone-elses"}, {}),
    )
    everything = ownership.plan(ledger, ledger.read(), images, containers, Scope(bases=True))
    assert {r.ident for r in everything} == {"c-ours", "sha256:stage", "sha256:compiler", "sha256:base"}
    assert all("recorded" in r.why for r in everything)
    scoped = ownership.plan(ledger, ledger.read(), images, containers, Scope(namespace="ns"))
    assert {r.ident for r in scoped} == {"c-ours", "sha256:stage", "sha256:compiler"}  # no base without --bases
    swept = ownership.plan(ledger, ledger.read(), images, (), Scope(namespace="ns", untagged_only=True))
    assert {r.ident for r in swept} == {"sha256:compiler"}


def test_a_killed_runs_volumes_are_the_projects_by_their_session_and_go_after_its_containers(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    volumes = (
        EngineVolume("v-trace", {labels.SESSION: "run1"}),  # a trace's tools or output, left by a SIGKILL
        EngineVolume("v-unknown", {labels.SESSION: "someone-elses"}),
    )
    containers = (EngineContainer("c-trace", "t", {labels.SESSION: "run1"}, {}),)
    removals = ownership.plan(ledger, ledger.read(), (), containers, Scope(images=False), volumes)
    assert [(r.kind, r.ident) for r in removals] == [("container", "c-trace"), ("volume", "v-trace")]
    assert ownership.plan(ledger, ledger.read(), (), (), Scope(namespace="other"), volumes) == ()
    engine = FakeEngine(volumes=list(volumes))
    ownership.clean(engine, ledger, Scope())
    assert [volume.name for volume in engine.volumes] == ["v-unknown"]


def test_an_engine_killed_mid_build_leaves_a_step_container_and_image_that_clean_finds(tmp_path: Path) -> None:
    """What an Engine killed during a step keeps: the step's container (no label) and the step it runs on."""
    ledger = _ledger(tmp_path)
    ledger.record_step_container("0123456789ab", "ns")  # the build's output: ` ---> Running in 0123456789ab`
    ledger.record_image("37e2eac336da", ROLE_BUILDER, (), "ns")  # ` ---> 37e2eac336da`, with no Engine to ask
    step = EngineContainer("0123456789ab" + "f" * 52, "boring_gagarin", {}, {})
    others = EngineContainer("0123456789ac" + "f" * 52, "users", {}, {})
    image = EngineImage("sha256:37e2eac336da" + "0" * 52, ())
    removals = ownership.plan(ledger, ledger.read(), (image,), (), Scope(namespace="ns", untagged_only=True), (), (step,))
    assert [(r.kind, r.ident) for r in removals] == [("container", step.container_id), ("image", image.image_id)]
    assert "`Running in 0123456789ab`" in removals[0].why
    assert ownership.plan(ledger, ledger.read(), (), (), Scope(namespace="other"), (), (step,)) == ()
    # An interrupt's clean-up (a run's containers alone) leaves it to the builder, which is removing it.
    assert ownership.plan(ledger, ledger.read(), (), (), Scope(images=False), (), (step,)) == ()
    engine = FakeEngine(step_containers=[step, others])
    engine.untagged[image.image_id] = dataclasses.replace(_image(1), image_id=image.image_id)
    ownership.clean(engine, ledger, Scope(namespace="ns"))
    assert engine.step_containers == [others] and engine.removed == [image.image_id]
    assert ledger.read().step_containers == () and ledger.read().images == ()


def test_a_step_container_the_builder_removed_itself_is_forgotten(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.record_step_container("0123456789ab", "ns")  # a failed RUN: the builder removed its container
    ownership.clean(FakeEngine(), ledger, Scope(namespace="ns"))
    assert ledger.read().step_containers == ()


def test_a_ledger_written_before_step_containers_reads_as_it_was(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path, "ENGINE")
    ledger.record_image("sha256:1", ROLE_STAGE, ("ns/01:x",), "ns")
    data = json.loads(ledger.path.read_text())
    del data["step_containers"]
    ledger.path.write_text(json.dumps(data))
    assert ledger.read().image("sha256:1") is not None and ledger.read().step_containers == ()


def test_a_build_the_engine_dies_in_records_its_step_container_and_last_step_by_the_outputs_ids(tmp_path: Path) -> None:
    class KilledDuringRun(FakeEngine):
        def build(self, stage: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
            on_line = kwargs["on_line"]
            for line in ("Step 1/3 : FROM scratch", "Step 2/3 : COPY killed /hello", " ---> 37e2eac336da"):
                on_line(line)  # type: ignore[operator]
            on_line("Step 3/3 : RUN /hello wait")  # type: ignore[operator]
            on_line(" ---> Running in 0123456789ab")  # type: ignore[operator]
            raise EngineUnavailable("connection refused")

        def image_info(self, ref: str) -> ImageInfo:
            raise EngineUnavailable("connection refused")

    ledger = Ledger.open(tmp_path, "ENGINE")
    made = Made(ledger, "run1", "ns")
    (tmp_path / "hello").mkdir()
    dockerfile = "FROM scratch\nCOPY killed /hello\nRUN /hello wait\n"
    stage = load_stage(make_stage(tmp_path / "stages", "01-killed", dockerfile=dockerfile))
    settings = Settings(tmp_path, namespace="ns")
    with pytest.raises(EngineUnavailable):
        build_dockerfile(KilledDuringRun(), stage, settings, stage.dockerfile_text, "ns/01:t", {}, made, ROLE_STAGE)
    state = ledger.read()
    assert [entry.container_id for entry in state.step_containers] == ["0123456789ab"]
    assert [(entry.image_id, entry.role) for entry in state.images] == [("37e2eac336da", ROLE_BUILDER)]


def test_a_tag_the_project_did_not_make_keeps_the_image(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    images = (EngineImage("sha256:stage", ("ns/07:b", "my/app:1")),)
    [removal] = ownership.plan(ledger, ledger.read(), images, (), Scope())
    assert (removal.untag, removal.delete) == (("ns/07:b",), False)
    assert "my/app:1" in removal.why


def test_a_tag_under_the_namespace_makes_an_image_the_projects_whoever_ran_the_build(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path, "ENGINE")  # empty: a fresh clone's
    images = (
        EngineImage("sha256:old-clones", ("ns/07:b",)),
        EngineImage("sha256:old-builder", ("ns/07:b-builder0",)),
        EngineImage("sha256:also-users", ("ns/08:b", "my/app:1")),
        EngineImage("sha256:other-namespace", ("ns-other/07:b",)),
        EngineImage("sha256:users", ("my/ns:1",)),
        EngineImage("sha256:dangling", ()),
    )
    assert ownership.plan(ledger, ledger.read(), images, (), Scope(namespace="ns")) == ()  # the ledger alone: nothing
    removals = ownership.plan(ledger, ledger.read(), images, (), Scope(namespace="ns", tagged=frozenset({"ns"})))
    assert [(r.ident, r.untag, r.delete) for r in removals] == [
        ("sha256:old-clones", ("ns/07:b",), True),
        ("sha256:old-builder", ("ns/07:b-builder0",), True),
        ("sha256:also-users", ("ns/08:b",), False),
    ]
    assert "tagged under the namespace's repositories (ns/07:b)" in removals[0].why


def test_clean_without_a_namespace_takes_this_runs_and_every_one_the_ledger_knows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger.open(tmp_path, "ENGINE")
    ledger.record_image("sha256:a", ROLE_STAGE, ("test-ns/01:b",), "test-ns")
    ledger.record_image("sha256:base", ROLE_BASE, ("debian:bookworm",), None)
    monkeypatch.delenv("HELLO_LADDER_NAMESPACE", raising=False)
    assert with_namespaces(Scope(), ledger).tagged == {"hello-ladder", "test-ns"}
    monkeypatch.setenv("HELLO_LADDER_NAMESPACE", "mine")
    assert with_namespaces(Scope(), ledger).tagged == {"mine", "test-ns"}
    assert with_namespaces(Scope(namespace="only"), ledger).tagged == {"only"}


# --- against an Engine ----------------------------------------------------------------

NAMESPACE = f"{TEST_NAMESPACE}-owner"
# The user's images: a tag each that no other test run on the Engine uses.
USER_APP, USER_ON_07, USER_ON_08 = USER_IMAGES = tuple(
    of_this_namespace(name) + ":1" for name in ("user-app", "user-on-07", "user-on-08")
)


def build_user_image(client: docker.DockerClient, dockerfile: str, tag: str) -> str:
    """What `printf '...' | docker build -t TAG -` does, through the SDK: an image the user made."""
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True)
    return str(image.id)


def _recorded(repo: Path, client: docker.DockerClient) -> set[str]:
    return {entry.image_id for entry in Ledger.open(repo, client.info()["ID"]).read().images}


def _listed(client: docker.DockerClient) -> set[str]:
    return {image.id for image in client.images.list()}


def _namespaces(repo: Path, client: docker.DockerClient) -> set[tuple[str, tuple[str, ...]]]:
    """This test's images, with their tags: what it recorded or tagged under its namespace (others' runs change the rest)."""
    recorded = _recorded(repo, client)
    return {
        (image.id, tuple(sorted(image.tags)))
        for image in client.images.list()
        if image.id in recorded or any(tag.startswith(f"{NAMESPACE}/") for tag in image.tags)
    }


@pytest.mark.fault("a user's image built on a project image", "kept")
@pytest.mark.docker
def test_the_users_images_survive_every_removal_path(engine: object, tmp_path: Path) -> None:
    client = docker.from_env()
    (tmp_path / "repo").mkdir()
    repo = copy_repo(tmp_path / "repo", ("07-scratch-libs", "08-scratch-auto"))
    env = {"HELLO_LADDER_NAMESPACE": NAMESPACE}
    made_by_project: set[str] = set()
    user_container = None
    try:
        done = invoke(repo, "all", "--no-wire", env=env, timeout=1800)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        made_by_project |= _recorded(repo, client)
        users = {
            USER_APP: build_user_image(client, f"FROM {BASE}\nRUN echo my app > /app.txt\n", USER_APP),
            USER_ON_07: build_user_image(
                client, f"FROM {NAMESPACE}/07-scratch-libs:debian-bookworm\nLABEL mine=yes\n", USER_ON_07
            ),
            USER_ON_08: build_user_image(
                client, f"FROM {NAMESPACE}/08-scratch-auto:debian-bookworm\nLABEL mine=yes\n", USER_ON_08
            ),
        }
        # A user's container of a stage image: it carries every label the image does.
        user_container = client.containers.create(USER_ON_07, command=["/hello"], name=of_this_namespace("users-own-container"))
        assert client.images.get(USER_ON_07).labels[labels.NAMESPACE] == NAMESPACE  # inherited, as the issue says
        assert not any(key.startswith("hello-ladder.") for key in client.images.get(USER_APP).labels or {})

        def users_are_intact(after: str) -> None:
            for tag, image_id in users.items():
                assert client.images.get(tag).id == image_id, f"{tag} after {after}"
                assert tag in client.images.get(image_id).tags, f"{tag} after {after}"
            assert client.containers.get(user_container.id).id == user_container.id, f"container after {after}"

        # The end-of-run sweep: a second run rebuilds and sweeps what it left untagged.
        done = invoke(repo, "all", "--no-wire", env=env, timeout=1800)
        assert done.returncode == 0, done.stderr[-2000:]
        made_by_project |= _recorded(repo, client)
        users_are_intact("the end-of-run sweep")

        # An interrupted run, stopped while a stage's container runs.
        add_stage(repo, "09-hangs", "ARG BASE\nFROM ${BASE}\n", stage_toml('["/bin/sleep", "600"]', extra="timeout = 300"))

        def session_containers() -> list[object]:
            return client.containers.list(
                all=True, sparse=True, filters={"label": labels.selector(namespace=NAMESPACE) + [labels.SESSION]}
            )

        returncode, stderr = interrupt_invoke(
            repo,
            ["all", "--no-wire"],
            lambda: bool(session_containers()),
            signal.SIGINT,
            env=env,
            ready_within=900,
            exit_within=120,
        )
        assert returncode == 130, stderr
        made_by_project |= _recorded(repo, client)
        users_are_intact("an interrupted run")
        assert session_containers() == []

        # --dry-run lists, says why, removes nothing.
        before = _namespaces(repo, client)
        done = invoke(repo, "clean", "--namespace", NAMESPACE, "--dry-run", env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        lines = [line for line in done.stdout.splitlines() if line.startswith("would ") and "recorded" in line]
        assert lines and _namespaces(repo, client) == before
        assert not any(image_id.removeprefix("sha256:")[:12] in done.stdout for image_id in users.values())

        for arguments in (("--namespace", NAMESPACE), (), ("--bases",)):
            done = invoke(repo, "clean", *arguments, env=env, timeout=300)
            print(f"invoke clean {' '.join(arguments)}:", done.stdout)  # shown if the test fails
            assert done.returncode == 0, done.stderr
            users_are_intact(f"invoke clean {' '.join(arguments)}")

        # Everything the project made is gone: no image it recorded is listed, no tag of its namespace is left.
        assert made_by_project and not made_by_project & _listed(client)
        assert not [tag for image in client.images.list() for tag in image.tags if tag.startswith(f"{NAMESPACE}/")]
        assert not Ledger.open(repo, client.info()["ID"]).read().images
    finally:
        if user_container is not None:
            user_container.remove(force=True)
        for tag in USER_IMAGES:
            try:
                client.images.remove(tag)
            except docker.errors.ImageNotFound:
                pass
        invoke(repo, "clean", "--bases", env=env, timeout=300)


@pytest.mark.fault(
    "two checkouts run `invoke all` at once on one Engine, in two namespaces",
    "neither removes, re-tags or mis-measures the other's images",
)
@pytest.mark.docker
def test_two_checkouts_at_once_on_one_engine(engine: object, tmp_path: Path) -> None:
    client = docker.from_env()
    engine_id = client.info()["ID"]
    repos = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        repos.append(copy_repo(tmp_path / name, ("01-naive", "07-scratch-libs", "08-scratch-auto")))
    # A namespace each, as docs/design.md says: a namespace's tags are its own, whichever checkout set them.
    envs = [{"HELLO_LADDER_NAMESPACE": f"{NAMESPACE}-{name}"} for name in ("a", "b")]
    try:
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "invoke", "all", "--no-wire"],
                cwd=repo,
                env={**os.environ, **env},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for repo, env in zip(repos, envs, strict=True)
        ]
        outputs = [run.communicate(timeout=2400) for run in runs]
        for run, (stdout, stderr) in zip(runs, outputs, strict=True):
            assert run.returncode == 0, stdout[-3000:] + stderr[-3000:]
        ledgers = [Ledger.open(repo, engine_id) for repo in repos]
        assert ledgers[0].checkout != ledgers[1].checkout
        recorded = [{entry.image_id for entry in ledger.read().images if entry.role != ROLE_BASE} for ledger in ledgers]
        assert not recorded[0] & recorded[1]  # nothing made by one is claimed by the other
        for repo, env, own, other in zip(repos, envs, recorded, reversed(recorded), strict=True):
            results = json.loads((repo / "results" / "results.json").read_text())
            for stage in results["stages"]:
                image = client.images.get(stage["image_id"])  # still there, after both runs' sweeps
                assert stage["image_id"] in own and stage["image_id"] not in other
                assert image.attrs["Size"] == stage["size_bytes"]  # measured the image it built
                assert stage["image"].startswith(env["HELLO_LADDER_NAMESPACE"] + "/")
                assert client.images.get(stage["image"]).id == stage["image_id"]  # its tag names its own image
        # One checkout's clean leaves every image of the other, with its tags.
        survivors = {image_id: client.images.get(image_id).tags for image_id in recorded[1]}
        done = invoke(repos[0], "clean", env=envs[0], timeout=300)
        assert done.returncode == 0, done.stderr
        assert not recorded[0] & _listed(client)
        for image_id, tags in survivors.items():
            assert client.images.get(image_id).tags == tags
    finally:
        for repo, env in zip(repos, envs, strict=True):
            invoke(repo, "clean", env=env, timeout=300)


@pytest.mark.fault("a trace killed by SIGKILL leaves its volumes", "invoke clean removes them, and no one else's")
@pytest.mark.docker
def test_a_killed_traces_volumes_go_with_clean_and_no_one_elses(engine: DockerEngine, tmp_path: Path) -> None:
    client = docker.from_env()
    ledger = Ledger.open(tmp_path, engine.identity())
    ledger.record_session("killed-run", NAMESPACE)
    # What a trace makes before it starts its container (harness.engine.containers), with the run's labels.
    ours = [client.volumes.create(labels=labels.container("killed-run", NAMESPACE)) for _ in range(2)]
    theirs = client.volumes.create(labels=labels.container("another-checkouts-run", NAMESPACE))
    try:
        planned = ownership.clean(engine, ledger, Scope(namespace=NAMESPACE), dry_run=True)
        assert {r.ident for r in planned if r.kind == "volume"} == {v.name for v in ours}
        ownership.clean(engine, ledger, Scope(namespace=NAMESPACE))
        left = {v.name for v in client.volumes.list(filters={"label": labels.SESSION})}
        assert not left & {v.name for v in ours}
        assert theirs.name in left
    finally:
        for volume in (*ours, theirs):
            with contextlib.suppress(docker.errors.NotFound):
                volume.remove(force=True)
