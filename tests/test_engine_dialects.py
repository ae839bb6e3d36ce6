"""What DockerEngine does differently on Podman's Docker-compatible API, against a small fake client."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from harness.engine import DockerEngine
from harness.records.buildlog import BuildSteps, StageTops
from harness.records.engine import BuildContext, RunPolicy
from harness.records.errors import BuildFailed
from harness.stages.context import DOCKERFILE_NAME, labels_in_dockerfile

# As Podman 4.3 (buildah 1.28) streams them through the compat API, one `stream` chunk per line.
BUILDAH_FIRST_BUILD = """\
[1/2] STEP 1/4: FROM debian:bookworm
[1/2] STEP 2/4: ADD main.c /
--> Using cache 2b6388ad6f06149afe0b3f275317c2c43d70297ab3795e3d4909166d9d1c2aad
--> 2b6388ad6f0
[1/2] STEP 3/4: ADD Makefile /
--> Using cache ad56221866e446ee1a7b37b84801f2437c047d7f4b507824bf8df375668e328f
--> ad56221866e
[1/2] STEP 4/4: RUN apt-get update -qq &&  apt-get install -y gcc make &&  make
--> 9dc655b956e
[2/2] STEP 1/3: FROM scratch
[2/2] STEP 2/3: COPY --from=0 /hello /hello
--> 4a9c273f5b2
[2/2] STEP 3/3: LABEL "hello-ladder.managed"="true"
[2/2] COMMIT localhost/hello-ladder/07-scratch-libs:debian-bookworm
--> d0c4fc9d4c0
Successfully tagged localhost/hello-ladder/07-scratch-libs:debian-bookworm
d0c4fc9d4c0f9b91d70b879b5f38cb5c9b81abef399887dd9b7973075c338efb
"""

BUILDAH_CACHED_BUILD = """\
STEP 1/3: FROM debian:bookworm
STEP 2/3: RUN echo hi > /x
--> Using cache fc6034655cf0748b5fdbc4c58de043fc86f76735938256ae40bb3086ccdd1900
--> fc6034655cf
STEP 3/3: LABEL "hello-ladder.managed"="true"
--> Using cache 4573212d0d87696f1d3c0136151270e370c34e7820796e2b60edc4b9844af338
COMMIT localhost/probe:b
--> 4573212d0d8
Successfully tagged localhost/probe:b
"""

CLASSIC_BUILD = """\
Step 1/3 : FROM debian:bookworm
 ---> 7464540ad829
Step 2/3 : RUN echo hi > /x
 ---> Running in 0123456789ab
Removing intermediate container 0123456789ab
 ---> 37e2eac336da
Step 3/3 : LABEL hello-ladder.managed=true
 ---> Using cache
 ---> 4573212d0d87
Successfully built 4573212d0d87
"""


def fed(transcript: str, upto: int | None = None) -> BuildSteps:
    steps = BuildSteps()
    for line in transcript.splitlines()[:upto]:
        steps.feed(line)
    return steps


def test_a_buildah_step_without_using_cache_was_built() -> None:
    steps = fed(BUILDAH_FIRST_BUILD)
    assert not steps.fully_cached
    assert steps.instruction == 'LABEL "hello-ladder.managed"="true"'


def test_a_buildah_build_is_cached_when_every_step_after_from_says_so() -> None:
    assert fed(BUILDAH_CACHED_BUILD).fully_cached


def test_the_last_buildah_step_counts_even_without_a_commit_line() -> None:
    # The stream can stop (an error) right after a step that ran.
    assert not fed("STEP 1/2: FROM scratch\nSTEP 2/2: COPY a /a\n").fully_cached


def test_the_multi_stage_prefix_is_not_part_of_the_instruction() -> None:
    assert fed(BUILDAH_FIRST_BUILD, upto=8).instruction == "RUN apt-get update -qq &&  apt-get install -y gcc make &&  make"


def test_the_classic_builders_lines_still_read_as_before() -> None:
    steps = fed(CLASSIC_BUILD)
    assert steps.instruction == "LABEL hello-ladder.managed=true"
    assert not steps.fully_cached
    assert fed(CLASSIC_BUILD.replace(" ---> Running in 0123456789ab\n", "")).fully_cached


def test_the_step_container_a_build_is_cut_off_in_is_named_until_the_builder_removes_it() -> None:
    def container_after(transcript: str, upto: int | None = None) -> str | None:
        tops = StageTops()
        for line in transcript.splitlines()[:upto]:
            tops.read(line)
        return tops.step_container

    assert container_after(CLASSIC_BUILD, upto=4) == "0123456789ab"  # cut off while `RUN echo hi` runs
    assert container_after(CLASSIC_BUILD) is None  # removed by the builder once the step was committed
    later_engines = CLASSIC_BUILD.replace("Removing intermediate container", " ---> Removed intermediate container")
    assert container_after(later_engines) is None
    assert container_after(BUILDAH_FIRST_BUILD) is None  # buildah names no step container


def test_both_dialects_name_each_compile_stages_last_image() -> None:
    """Podman's buildah prints `--> <id>` where the classic builder prints ` ---> <id>`: both name the image each step
    committed, so one build request tells which image each compile stage ended with."""
    tops = StageTops()
    for line in BUILDAH_FIRST_BUILD.splitlines():
        tops.read(line)
    assert tops.compile_tops() == ("9dc655b956e",)
    assert tops.made(finished=True) == ("9dc655b956e",)  # its RUN step was built, not taken from the cache
    cached = StageTops()
    for line in BUILDAH_FIRST_BUILD.replace("--> 9dc655b956e", "--> Using cache 9dc655b956e00\n--> 9dc655b956e").splitlines():
        cached.read(line)
    assert cached.compile_tops() == ("9dc655b956e",) and cached.made(finished=True) == ()


def context_of(files: dict[str, bytes]) -> BinaryIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def files_of(context: BinaryIO) -> dict[str, bytes]:
    with tarfile.open(fileobj=context) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}  # type: ignore[union-attr]


def test_labels_become_one_sorted_instruction_at_the_end_of_the_dockerfile() -> None:
    context = context_of({"main.c": b"int main;\n", DOCKERFILE_NAME: b"FROM scratch\nCOPY main.c /"})
    one = labels_in_dockerfile(context, DOCKERFILE_NAME, {"b.role": "stage", "a.managed": "true"}).read()
    context.seek(0)
    other = labels_in_dockerfile(context, DOCKERFILE_NAME, {"a.managed": "true", "b.role": "stage"}).read()
    assert one == other  # the same context whatever the order: the build cache can match it
    files = files_of(io.BytesIO(one))
    assert files["main.c"] == b"int main;\n"
    assert files[DOCKERFILE_NAME] == b'FROM scratch\nCOPY main.c /\nLABEL "a.managed"="true" "b.role"="stage"\n'


def test_no_labels_leave_the_context_as_it_was() -> None:
    context = context_of({DOCKERFILE_NAME: b"FROM scratch\n"})
    assert labels_in_dockerfile(context, DOCKERFILE_NAME, {}) is context


# ---------------------------------------------------------------- DockerEngine against a fake client


@dataclass
class FakeImage:
    id: str = "sha256:feed"


@dataclass
class FakeApi:
    transcript: str = BUILDAH_CACHED_BUILD
    builds: list[dict[str, Any]] = field(default_factory=list)
    hooks: dict[str, list[Any]] = field(default_factory=lambda: {"response": []})  # a requests Session's
    imports: list[dict[str, Any]] = field(default_factory=list)

    def build(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        # Read as the Engine reads it, while the build runs: the stream is closed once it returns.
        self.builds.append({**kwargs, "fileobj": io.BytesIO(kwargs["fileobj"].read())})
        for line in self.transcript.splitlines():
            if line.startswith("ERROR "):
                yield {"error": line.removeprefix("ERROR "), "errorDetail": {"message": line.removeprefix("ERROR ")}}
                return
            yield {"stream": line + "\n"}
        yield {"aux": {"ID": "sha256:feed"}}

    def import_image_from_file(self, filename: str, **kwargs: Any) -> str:
        self.imports.append(kwargs)
        # Podman 4.3's answer, as it gives it
        return '{"status":"sha256:feed","progress":"","progressDetail":{},"id":"sha256:feed"}\n'


@dataclass
class FakeImages:
    def get(self, ref: str) -> FakeImage:
        return FakeImage()


@dataclass
class FakeContainers:
    created: list[dict[str, Any]] = field(default_factory=list)

    def create(self, image: str, **kwargs: Any) -> Any:
        self.created.append(kwargs)
        raise RuntimeError("enough: the options are recorded")


@dataclass
class FakeClient:
    """The few calls of docker.DockerClient the tested methods make."""

    engine_name: str
    api: FakeApi = field(default_factory=FakeApi)
    images: FakeImages = field(default_factory=FakeImages)
    containers: FakeContainers = field(default_factory=FakeContainers)

    def version(self) -> dict[str, Any]:
        return {"Version": "4.3.1", "ApiVersion": "1.41", "Components": [{"Name": self.engine_name, "Version": "4.3.1"}]}

    def info(self) -> dict[str, Any]:
        return {"Driver": "overlay", "DriverStatus": [["Backing Filesystem", "extfs"]]}


PODMAN = "Podman Engine"
DOCKER = "Engine"
LABELS = {"hello-ladder.managed": "true", "hello-ladder.role": "stage"}


def build(client: FakeClient, source: Path) -> None:
    context = BuildContext(source, "FROM scratch\n")
    DockerEngine(client).build("07", context, tag="t:1", build_args={}, labels=dict(LABELS))  # type: ignore[arg-type]


def test_on_podman_the_labels_travel_in_the_dockerfile(tmp_path: Path) -> None:
    client = FakeClient(PODMAN)
    build(client, tmp_path)
    [sent] = client.api.builds
    assert sent["labels"] == {}
    dockerfile = files_of(sent["fileobj"])[DOCKERFILE_NAME].decode()
    assert dockerfile.endswith('LABEL "hello-ladder.managed"="true" "hello-ladder.role"="stage"\n')


def test_on_the_engine_the_labels_stay_a_build_parameter(tmp_path: Path) -> None:
    client = FakeClient(DOCKER)
    build(client, tmp_path)
    [sent] = client.api.builds
    assert sent["labels"] == LABELS
    assert files_of(sent["fileobj"])[DOCKERFILE_NAME] == b"FROM scratch\n"


def test_a_failed_buildah_step_is_named_in_the_error(tmp_path: Path) -> None:
    client = FakeClient(
        PODMAN,
        api=FakeApi(
            "STEP 1/2: FROM debian:bookworm\nSTEP 2/2: RUN false\n"
            'ERROR building at STEP "RUN false": while running runtime: exit status 1'
        ),
    )
    with pytest.raises(BuildFailed) as failed:
        build(client, tmp_path)
    assert failed.value.instruction == "RUN false"
    assert "exit status 1" in failed.value.reason


@pytest.mark.parametrize(("engine_name", "limited"), [(PODMAN, True), (DOCKER, False)])
def test_podman_gets_explicit_rlimits(engine_name: str, limited: bool) -> None:
    client = FakeClient(engine_name)
    with pytest.raises(RuntimeError):
        DockerEngine(client)._create_locked_down("img", ("/hello",), RunPolicy(30, "65534:65534"), {})  # type: ignore[arg-type]
    [options] = client.containers.created
    names = {limit["Name"] for limit in options["ulimits"] or ()}
    assert names == ({"nofile", "nproc"} if limited else set())


def test_an_import_names_the_image_with_its_tag_in_one_reference(tmp_path: Path) -> None:
    client = FakeClient(PODMAN)
    DockerEngine(client).import_rootfs(tmp_path / "rootfs.tar", "debian:bookworm", {"a": "b"})  # type: ignore[arg-type]
    [sent] = client.api.imports
    assert sent["repository"] == "debian:bookworm"
    assert "tag" not in sent or sent["tag"] is None


def test_on_podman_a_build_without_labels_sends_its_context_as_it_is(tmp_path: Path) -> None:
    client = FakeClient(PODMAN)
    DockerEngine(client).build("07", BuildContext(tmp_path, "FROM scratch\n"), tag="t:1", build_args={}, labels={})  # type: ignore[arg-type]
    [sent] = client.api.builds
    assert files_of(sent["fileobj"])[DOCKERFILE_NAME] == b"FROM scratch\n"
