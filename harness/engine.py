"""The one module that talks to the Docker Engine.

Everything goes through the Docker SDK for Python (`docker.from_env()`, so
DOCKER_HOST and remote Engines work); nothing shells out to the CLI.  The
SDK's exceptions are converted to the harness's own here and nowhere else.
`Engine` is the narrow interface the rest of the harness uses; tests drive
the harness with a fake that implements it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors
import requests.exceptions
from docker.types import LogConfig

from harness import labels as labels_module
from harness.errors import BuildFailed, EngineError, EngineUnavailable, ImageInUse
from harness.model import BuildRecord, ImageInfo, LayerRecord, RunPolicy, RunResult
from harness.ownership import EngineContainer, EngineImage
from harness.redact import redact

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 15


class Engine(Protocol):
    """What the harness needs from a container engine."""

    def version(self) -> str: ...

    def has_image(self, ref: str) -> bool: ...

    def image_info(self, ref: str) -> ImageInfo: ...

    def pull(self, ref: str) -> None: ...

    def import_rootfs(self, tarball: Path, ref: str, labels: dict[str, str]) -> str: ...

    def build(
        self,
        stage: str,
        context: bytes,
        dockerfile: str,
        tag: str,
        build_args: dict[str, str],
        labels: dict[str, str],
        no_cache: bool = False,
        on_line: Callable[[str], None] | None = None,
    ) -> BuildRecord: ...

    def run(self, image: str, command: tuple[str, ...], policy: RunPolicy, labels: dict[str, str]) -> RunResult: ...

    def list_images(self) -> tuple[EngineImage, ...]: ...

    def tag_image(self, image_id: str, ref: str) -> None: ...

    def untag_image(self, image_id: str, ref: str) -> None: ...

    def remove_image(self, image_id: str) -> None: ...

    def export_filesystem(self, image: str, labels: dict[str, str]) -> contextlib.AbstractContextManager[Iterator[bytes]]: ...

    def save_image(self, image: str) -> Iterator[bytes]: ...

    def list_containers(self, label_key: str) -> tuple[EngineContainer, ...]: ...

    def remove_container(self, container_id: str) -> None: ...

    def identity(self) -> str: ...


@contextlib.contextmanager
def _converted(subject: str) -> Iterator[None]:
    """Turn the SDK's failures into one-line harness errors."""
    try:
        yield
    except (requests.exceptions.ConnectionError, ConnectionError) as error:
        raise EngineUnavailable(f"{subject}: {_first_line(error)}") from error
    except docker.errors.APIError as error:
        raise EngineError(f"{subject}: {error.explanation or error}") from error
    except docker.errors.DockerException as error:
        raise EngineUnavailable(f"{subject}: {_first_line(error)}") from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class DockerEngine:
    """`Engine` backed by a real Docker Engine."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._client = client

    @classmethod
    def from_env(cls) -> DockerEngine:
        with _converted("connecting"):
            client = docker.from_env()
            client.ping()
        return cls(client)

    def version(self) -> str:
        with _converted("version"):
            return str(self._client.version()["Version"])

    def has_image(self, ref: str) -> bool:
        with _converted(ref):
            try:
                self._client.images.get(ref)
            except docker.errors.ImageNotFound:
                return False
        return True

    def image_info(self, ref: str) -> ImageInfo:
        with _converted(ref):
            image = self._client.images.get(ref)
            history = image.history()
        layer_count = len(image.attrs.get("RootFS", {}).get("Layers", ()))
        # The Engine lists history newest first.
        layers = tuple(
            LayerRecord(int(entry["Size"]), entry.get("CreatedBy") or "")
            for entry in reversed(history)
            if _adds_layer(entry)
        )
        if len(layers) != layer_count:
            log.warning("%s: history shows %d layers, the root file system has %d", ref, len(layers), layer_count)
        return ImageInfo(image_id=image.id, size_bytes=int(image.attrs["Size"]), layer_count=layer_count, layers=layers)

    def pull(self, ref: str) -> None:
        repository, tag = split_reference(ref)
        with _converted(f"pulling {ref}"):
            self._client.images.pull(repository, tag=tag)

    def import_rootfs(self, tarball: Path, ref: str, labels: dict[str, str]) -> str:
        """Import a root file system as `ref`; return the new image's ID (what the ledger records)."""
        repository, tag = split_reference(ref)
        changes = [f'LABEL "{key}"="{value}"' for key, value in sorted(labels.items())]
        changes.append('CMD ["bash"]')  # as the official Debian images do
        with _converted(f"importing {ref}"):
            # The import's own answer names the image it made; reading the tag back could name another's.
            answer = self._client.api.import_image_from_file(str(tarball), repository=repository, tag=tag, changes=changes)
        image_id = _imported_id(answer)
        if image_id is None:
            # Never fall back on the tag: recording another's image as the project's would let `clean` remove it.
            raise EngineError(f"importing {ref}: the Engine's answer names no image: {str(answer).strip()[:200]}")
        return image_id

    def build(
        self,
        stage: str,
        context: bytes,
        dockerfile: str,
        tag: str,
        build_args: dict[str, str],
        labels: dict[str, str],
        no_cache: bool = False,
        on_line: Callable[[str], None] | None = None,
    ) -> BuildRecord:
        tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        instruction = "(before the first instruction)"
        image_id = ""
        fully_cached = True
        started = time.monotonic()
        with _converted(f"{stage}: build"):
            try:
                stream = self._client.api.build(
                    fileobj=io.BytesIO(context),
                    custom_context=True,
                    dockerfile=dockerfile,
                    tag=tag,
                    buildargs=build_args,
                    labels=labels,
                    rm=True,
                    forcerm=True,  # remove intermediate containers even when a step fails
                    nocache=no_cache,
                    pull=False,
                    decode=True,
                )
                for chunk in stream:
                    if "error" in chunk:
                        reason = redact(str(chunk.get("errorDetail", {}).get("message") or chunk["error"]).strip())
                        raise BuildFailed(stage, instruction, tuple(tail), reason)
                    image_id = _aux_id(chunk) or image_id
                    for line in str(chunk.get("stream", "")).splitlines():
                        if not line.strip():
                            continue
                        tail.append(redact(line.rstrip()))
                        if on_line is not None:
                            on_line(line.rstrip())
                        if line.startswith("Step "):
                            instruction = line.partition(" : ")[2] or line
                        elif line.strip().startswith("---> Running in"):
                            fully_cached = False
            except docker.errors.APIError as error:
                # The Engine refuses some Dockerfiles outright (a parse error, an unknown instruction).
                raise BuildFailed(stage, instruction, tuple(tail), str(error.explanation or error)) from error
            except KeyboardInterrupt:
                # Closing the connection is what tells the Engine to cancel the build
                # (and, with forcerm, to remove the step's container).
                self._client.api.close()
                raise
        if not image_id:
            raise BuildFailed(stage, instruction, tuple(tail), "the Engine reported no image id")
        return BuildRecord(image_id=image_id, seconds=time.monotonic() - started, fully_cached=fully_cached)

    def run(self, image: str, command: tuple[str, ...], policy: RunPolicy, labels: dict[str, str]) -> RunResult:
        # A label of its own finds the container even if an interrupt lands between
        # the Engine creating it and this process learning its id.
        run_label = {labels_module.RUN_ID: uuid.uuid4().hex}
        with _converted(f"running {image}"):
            try:
                container = self._create_locked_down(image, command, policy, {**labels, **run_label})
            except BaseException:
                for found in self.list_containers(labels_module.RUN_ID):
                    if found.own_label(labels_module.RUN_ID) == run_label[labels_module.RUN_ID]:
                        self.remove_container(found.container_id)
                raise
            try:
                return self._start_and_wait(container, policy)
            finally:
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True)

    def _create_locked_down(self, image: str, command: tuple[str, ...], policy: RunPolicy, labels: dict[str, str]) -> Any:
        return self._client.containers.create(
            image,
            command=list(command),
            labels=labels,
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=policy.memory_bytes,
            memswap_limit=policy.memory_bytes,
            pids_limit=policy.pids,
            user=policy.user,
            # Bound what a flooding program can write to the Engine's disk.
            log_config=LogConfig(
                type=LogConfig.types.JSON,
                # Two files: after a rotation the previous one is still there, so a
                # flood always reads back as more than the cap.
                config={"max-size": str(max(policy.output_cap_bytes * 4, 1024 * 1024)), "max-file": "2"},
            ),
        )

    def _start_and_wait(self, container: Any, policy: RunPolicy) -> RunResult:
        try:
            container.start()
        except docker.errors.APIError as error:
            return RunResult(stdout="", stderr="", exit_code=None, error=str(error.explanation or error))
        timed_out = False
        try:
            exit_code: int | None = int(container.wait(timeout=policy.timeout_s)["StatusCode"])
        except requests.exceptions.ReadTimeout:
            timed_out = True
            with contextlib.suppress(docker.errors.APIError):
                container.kill()
            exit_code = None
        except requests.exceptions.ConnectionError as error:
            # docker-py reports a read timeout on the wait as a ConnectionError on some urllib3 versions.
            if "timed out" not in str(error).lower():
                raise
            timed_out = True
            with contextlib.suppress(docker.errors.APIError):
                container.kill()
            exit_code = None
        stdout, out_cut = _capped(container.logs(stdout=True, stderr=False), policy.output_cap_bytes)
        stderr, err_cut = _capped(container.logs(stdout=False, stderr=True), policy.output_cap_bytes)
        error = f"killed after the {policy.timeout_s:g} s time limit" if timed_out else None
        return RunResult(stdout, stderr, exit_code, error=error, timed_out=timed_out, truncated=out_cut or err_cut)

    @contextlib.contextmanager
    def export_filesystem(self, image: str, labels: dict[str, str]) -> Iterator[Iterator[bytes]]:
        """The image's merged file system as a tar stream, from a container that is never started."""
        with _converted(f"exporting {image}"):
            # A command is required to create a container, even one never started.
            container = self._client.containers.create(image, command=["/nonexistent"], labels=labels, network_mode="none")
        try:
            with _converted(f"exporting {image}"):
                yield container.export(chunk_size=1024 * 1024)
        finally:
            with contextlib.suppress(docker.errors.NotFound), _converted(f"removing the export container of {image}"):
                container.remove(force=True)

    def save_image(self, image: str) -> Iterator[bytes]:
        """The image as `docker save` writes it (layer tars, config, manifest), as a stream of chunks."""
        with _converted(f"saving {image}"):
            chunks = self._client.images.get(image).save(chunk_size=1024 * 1024, named=False)
        with _converted(f"saving {image}"):
            yield from chunks

    def identity(self) -> str:
        """The Engine's own ID (`docker info`), which keys the ledger: two Engines never share one."""
        with _converted("identifying the Engine"):
            return str(self._client.info()["ID"])

    def list_images(self) -> tuple[EngineImage, ...]:
        """Every top-level image, with its tags."""
        with _converted("listing images"):
            return tuple(
                EngineImage(str(entry["Id"]), tuple(t for t in entry.get("RepoTags") or () if t != "<none>:<none>"))
                for entry in self._client.api.images()
            )

    def tag_image(self, image_id: str, ref: str) -> None:
        repository, tag = split_reference(ref)
        with _converted(f"tagging {image_id} as {ref}"):
            self._client.api.tag(image_id, repository, tag)

    def untag_image(self, image_id: str, ref: str) -> None:
        """Remove the tag `ref` if it still names `image_id` (another may have taken it since)."""
        with _converted(f"untagging {ref}"):
            try:
                if self._client.api.inspect_image(ref)["Id"] != image_id:
                    return
                self._client.api.remove_image(ref, force=False)
            except docker.errors.ImageNotFound:
                return
            except docker.errors.APIError as error:
                if error.status_code == 409:
                    raise ImageInUse(ref, str(error.explanation or error)) from error
                raise

    def remove_image(self, image_id: str) -> None:
        """Delete an image by ID (never forced: a child image or a container keeps it)."""
        with _converted(f"removing {image_id}"):
            try:
                self._client.api.remove_image(image_id, force=False)
            except docker.errors.ImageNotFound:
                return
            except docker.errors.APIError as error:
                if error.status_code == 409:
                    raise ImageInUse(image_id, str(error.explanation or error)) from error
                raise

    def list_containers(self, label_key: str) -> tuple[EngineContainer, ...]:
        """Every container carrying the label `label_key`, with its image's labels beside its own."""
        found: list[EngineContainer] = []
        image_labels: dict[str, dict[str, str]] = {}
        with _converted("listing containers"):
            for entry in self._client.api.containers(all=True, filters={"label": label_key}):
                image_id = str(entry.get("ImageID") or "")
                if image_id not in image_labels:
                    try:
                        config = self._client.api.inspect_image(image_id).get("Config") or {}
                        image_labels[image_id] = dict(config.get("Labels") or {})
                    except docker.errors.ImageNotFound:
                        image_labels[image_id] = {}
                names = entry.get("Names") or ["?"]
                found.append(EngineContainer(str(entry["Id"]), names[0].lstrip("/"), dict(entry.get("Labels") or {}), image_labels[image_id]))
        return tuple(found)

    def remove_container(self, container_id: str) -> None:
        with _converted(f"removing container {container_id[:12]}"):
            with contextlib.suppress(docker.errors.NotFound):
                self._client.api.remove_container(container_id, force=True)


def _imported_id(answer: object) -> str | None:
    """The image ID in an import's answer: JSON lines, the last of which says `{"status": "sha256:..."}`."""
    for line in reversed(str(answer).splitlines()):
        with contextlib.suppress(ValueError):
            status = str(json.loads(line).get("status", ""))
            if status.startswith("sha256:"):
                return status
    return None


def _adds_layer(entry: dict[str, Any]) -> bool:
    """Whether a history entry added a file system layer.

    The API's history does not carry the image config's `empty_layer` flag.
    A layer can be empty (`RUN mkdir /src` adds a folder, zero bytes of files),
    so size alone cannot tell: RUN, ADD and COPY always commit a layer, while
    the other instructions (`#(nop) ENV ...`, `LABEL`, `CMD`) only change the config.
    """
    if int(entry.get("Size") or 0) > 0:
        return True
    created_by = " ".join(str(entry.get("CreatedBy") or "").split())
    if not created_by.startswith("/bin/sh -c #(nop)"):
        return bool(created_by)  # a RUN instruction
    instruction = created_by.removeprefix("/bin/sh -c #(nop)").split()
    return bool(instruction) and instruction[0] in ("ADD", "COPY")


def split_reference(ref: str) -> tuple[str, str]:
    """`debian:bookworm` -> (`debian`, `bookworm`); a reference without a tag means `latest`."""
    name, _, last = ref.rpartition("/")
    if ":" not in last:
        return ref, "latest"
    repository, _, tag = ref.rpartition(":")
    return repository, tag


def _aux_id(chunk: dict[str, Any]) -> str | None:
    aux = chunk.get("aux")
    return str(aux["ID"]) if isinstance(aux, dict) and "ID" in aux else None


def _capped(raw: bytes, cap: int) -> tuple[str, bool]:
    return raw[:cap].decode("utf-8", errors="replace"), len(raw) > cap
