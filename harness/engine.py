"""The one module that talks to the Docker Engine.

Everything goes through the Docker SDK for Python (`docker.from_env()`, so
DOCKER_HOST and remote Engines work); nothing shells out to the CLI.  The
SDK's exceptions are converted to the harness's own here and nowhere else.
`DockerEngine` implements `harness.engine_protocol.Engine`, the narrow
interface the rest of the harness uses (and imports from there, not here).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import socket
import tarfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.types import LogConfig, Ulimit

from harness import labels as labels_module
from harness.buildlog import BuildOutput
from harness.context import labels_in_dockerfile

# `Engine` is imported here too, so that `from harness.engine import Engine` keeps working.
from harness.engine_protocol import (  # noqa: F401
    OUTPUT_FOLDER,
    BuildRecord,
    Engine,
    EngineContainer,
    EngineFacts,
    EngineImage,
    ImageInfo,
    ImageOrigin,
    Instrumentation,
    InstrumentedRun,
    LayerRecord,
    RunPolicy,
    RunResult,
)
from harness.errors import EngineError, EngineUnavailable, ImageInUse
from harness.imagewrite import parse_created, parse_env
from harness.service import ServiceSpec, ServiceState

log = logging.getLogger(__name__)


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
        self._building: set[Any] = set()  # the responses of the builds under way (see `close`)

    @classmethod
    def from_env(cls) -> DockerEngine:
        with _converted("connecting"):
            client = docker.from_env()
            client.ping()
        return cls(client)

    @classmethod
    def connect(cls, host: str, timeout_s: float = 60) -> DockerEngine:
        """An Engine at `host`, as DOCKER_HOST names one: `unix:///path`, `tcp://host:port` or `ssh://user@host`."""
        with _converted(f"connecting to {host}"):
            client = docker.DockerClient(base_url=host, timeout=int(timeout_s))
            client.ping()
        return cls(client)

    def close(self) -> None:
        """Cancel the builds under way in other threads, and close the connections.

        Closing a session leaves the connections in use open, and closing a socket
        does not wake a thread blocked reading it: each build's connection is shut
        down instead, which ends the reading thread's wait and, as for Ctrl-C in a
        serial run, tells the Engine to cancel the build.
        """
        for response in list(self._building):
            _shut_down(response)
        self._client.api.close()

    def describe(self) -> EngineFacts:
        with _converted("version"):
            version = self._client.version()
            info = self._client.info()
        return engine_facts(version, info)

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
        # The Engine lists history newest first, one entry per entry of the config's history; which
        # of them added a layer only the config's `empty_layer` flags say (ImageInfo.aligned).
        entries = tuple(LayerRecord(int(entry.get("Size") or 0), entry.get("CreatedBy") or "") for entry in reversed(history))
        return ImageInfo(
            image_id=image.id,
            engine_size_bytes=int(image.attrs["Size"]),
            listed_size_bytes=self._listed_size(ref, image.id),
            layer_count=layer_count,
            layers=(),
            history=entries,
        )

    def _listed_size(self, ref: str, image_id: str) -> int | None:
        """The size `docker images` prints: the list endpoint's, which differs from inspect's on some stores."""
        with _converted(ref):
            listed = self._client.api.images(filters={"reference": ref}) if ":" in ref else []
            if not any(entry.get("Id") == image_id for entry in listed):
                listed = self._client.api.images()
        return next((int(entry["Size"]) for entry in listed if entry.get("Id") == image_id and "Size" in entry), None)

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
            # The whole reference goes in `repo`, as the docker CLI sends it: Podman's compat import
            # ignores the separate `tag` parameter and would name the image `:latest`.
            answer = self._client.api.import_image_from_file(str(tarball), repository=f"{repository}:{tag}", changes=changes)
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
        target: str | None = None,
        platform: str | None = None,
    ) -> BuildRecord:
        output = BuildOutput(stage, on_line)
        response: Any = None
        started = time.monotonic()
        if self._is_podman:
            context, labels = labels_in_dockerfile(context, dockerfile, labels), {}
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
                    target=target,  # stop at this named stage: its image is the answer
                    decode=True,
                    # The Engine then refuses a base of another platform instead of building on it.
                    platform=platform,
                )
                # The SDK's stream generator holds the HTTP response (its `response` argument): kept, so that
                # `close` can shut a build's connection down from another thread.
                response = getattr(getattr(stream, "gi_frame", None), "f_locals", {}).get("response")
                if response is not None:
                    self._building.add(response)
                for chunk in stream:
                    output.read(chunk)
            except docker.errors.APIError as error:
                # The Engine refuses some Dockerfiles outright (a parse error, an unknown instruction).
                raise output.failed(str(error.explanation or error)) from error
            except KeyboardInterrupt:
                # Closing the connection is what tells the Engine to cancel the build
                # (and, with forcerm, to remove the step's container).  Podman 4.3 does not
                # notice: it finishes the running step, then drops the build.
                self._client.api.close()
                raise
            finally:
                self._building.discard(response)
        return output.record(time.monotonic() - started)

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

    def run_instrumented(
        self, image: str, command: tuple[str, ...], policy: RunPolicy, labels: dict[str, str], tools: Instrumentation
    ) -> InstrumentedRun:
        """`run`, with `tools` mounted read-only and a writable output folder read back after the run.

        The tools reach the Engine as an archive, not a bind mount, so that this works
        on an Engine of another machine (or a nested one) too: they are written into a
        fresh volume through a container that is never started, and both volumes are
        removed afterwards, whatever happened.
        """
        run_id = uuid.uuid4().hex
        run_labels = {**labels, labels_module.RUN_ID: run_id}
        volumes: list[Any] = []
        try:
            with _converted(f"preparing the tools for {image}"):
                for _ in range(2):
                    volumes.append(self._client.volumes.create(labels=run_labels))
                mounts = {
                    volumes[0].name: {"bind": tools.tools_at, "mode": "rw"},
                    volumes[1].name: {"bind": tools.output_at, "mode": "rw"},
                }
                writer = self._client.containers.create(
                    image, command=["/nonexistent"], labels=run_labels, network_mode="none", volumes=mounts
                )
                writer.put_archive(tools.tools_at, tools.tools)
                writer.put_archive(tools.output_at, _open_folder(OUTPUT_FOLDER))
                writer.remove(force=True)
                mounts[volumes[0].name]["mode"] = "ro"
                container = self._create_locked_down(image, command, policy, run_labels, volumes=mounts)
            result = self._start_and_wait(container, policy, tools.stop_signal)
            with _converted(f"reading the tools' output from {image}"):
                outputs = _read_folder(container, f"{tools.output_at}/{OUTPUT_FOLDER}", tools.output_cap_bytes)
            return InstrumentedRun(result, outputs)
        finally:
            # Found by the run's own label, so that an interrupt between the Engine creating a
            # container and this process learning its id leaves none behind (nor a volume in use).
            for found in self.list_containers(labels_module.RUN_ID):
                if found.own_label(labels_module.RUN_ID) == run_id:
                    self.remove_container(found.container_id)
            for volume in volumes:
                with contextlib.suppress(docker.errors.NotFound), _converted(f"removing volume {volume.name}"):
                    volume.remove(force=True)

    def _create_locked_down(
        self, image: str, command: tuple[str, ...], policy: RunPolicy, labels: dict[str, str], **more: Any
    ) -> Any:
        # A tmpfs is bounded, private to the container and gone with it: a place to write, the root staying read-only.
        tmpfs = {path: "rw,nosuid,nodev,size=64m,mode=1777" for path in policy.tmpfs}
        return self._client.containers.create(
            image,
            tmpfs=tmpfs or None,
            **more,
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
            ulimits=self._ulimits(),
            # Bound what a flooding program can write to the Engine's disk.
            log_config=LogConfig(
                type=LogConfig.types.JSON,
                # Two files: after a rotation the previous one is still there, so a
                # flood always reads back as more than the cap.
                config={"max-size": str(max(policy.output_cap_bytes * 4, 1024 * 1024)), "max-file": "2"},
            ),
        )

    def _ulimits(self) -> list[Ulimit] | None:
        """Explicit limits on Podman, which otherwise asks for 1048576 open files and 4194304
        processes whatever its own limits: where root lacks CAP_SYS_RESOURCE (inside
        another container, some CI sandboxes) every start then fails with `error setting
        rlimit type 7: operation not permitted`.  The Engine passes on its own limits.
        """
        if not self._is_podman:
            return None
        return [Ulimit(name="nofile", soft=1024, hard=1024), Ulimit(name="nproc", soft=4096, hard=4096)]

    @functools.cached_property
    def _is_podman(self) -> bool:
        return self.describe().product == "Podman"

    def _start_and_wait(self, container: Any, policy: RunPolicy, stop_signal: str | None = None) -> RunResult:
        try:
            container.start()
        except docker.errors.APIError as error:
            return RunResult(stdout="", stderr="", exit_code=None, error=str(error.explanation or error))
        exit_code = _wait(container, policy.timeout_s)
        timed_out = exit_code is None
        if timed_out and stop_signal is not None:
            # A tracer asked to stop writes what it saw so far; it gets a few seconds for that.
            with contextlib.suppress(docker.errors.APIError):
                container.kill(signal=stop_signal)
            _wait(container, STOP_GRACE_S)
        if timed_out:
            with contextlib.suppress(docker.errors.APIError):
                container.kill()
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

    def load_image(self, archive: bytes | Iterable[bytes]) -> str:
        """Load a `docker save` archive (POST /images/load), whole or streamed as chunks; the id of its one image.

        The Engine answers `Loaded image: <ref>` for a tagged image and `Loaded
        image ID: <id>` for an untagged one; a reference is looked up for its id
        (on the containerd store that is the manifest's digest).
        """
        loaded: list[str] = []
        with _converted("loading an image"):
            for message in self._client.api.load_image(archive):
                if "error" in message:
                    raise EngineError(f"loading an image: {message.get('error')}")
                for line in str(message.get("stream", "")).splitlines():
                    for prefix in ("Loaded image ID: ", "Loaded image: "):
                        if line.startswith(prefix):
                            loaded.append(line.removeprefix(prefix).strip())
                            break
            ids = {ref if ref.startswith("sha256:") else str(self._client.images.get(ref).id) for ref in loaded}
        if len(ids) != 1:
            raise EngineError(f"loading an image: expected one image, the Engine loaded {len(ids)}: {sorted(loaded)}")
        return ids.pop()

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
        with _converted(f"untagging {ref}"), _never_forced(ref):
            if self._client.api.inspect_image(ref)["Id"] != image_id:
                return
            self._client.api.remove_image(ref, force=False)

    def remove_image(self, image_id: str) -> None:
        """Delete an image by ID (never forced: a child image or a container keeps it)."""
        with _converted(f"removing {image_id}"), _never_forced(image_id):
            self._client.api.remove_image(image_id, force=False)

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
                found.append(
                    EngineContainer(
                        str(entry["Id"]), names[0].lstrip("/"), dict(entry.get("Labels") or {}), image_labels[image_id]
                    )
                )
        return tuple(found)

    def remove_container(self, container_id: str) -> None:
        with _converted(f"removing container {container_id[:12]}"):
            with contextlib.suppress(docker.errors.NotFound):
                self._client.api.remove_container(container_id, force=True)

    def image_origin(self, ref: str) -> ImageOrigin:
        with _converted(ref):
            attrs = self._client.images.get(ref).attrs
        return ImageOrigin(
            parse_created(str(attrs["Created"])),
            str(attrs.get("Architecture") or "amd64"),
            str(attrs.get("Os") or "linux"),
            parse_env((attrs.get("Config") or {}).get("Env")),
        )

    # --- Services: long-running containers, such as a nested Engine (harness/nested.py) ---

    def run_service(self, spec: ServiceSpec) -> str:
        """Create and start `spec`'s container, detached; its id."""
        with _converted(f"starting {spec.name}"):
            host_config = self._client.api.create_host_config(
                binds={
                    str(bind.source): {"bind": str(bind.target), "mode": "ro" if bind.read_only else "rw"} for bind in spec.binds
                },
                init=spec.init,
                cap_add=list(spec.cap_add),
                security_opt=list(spec.security_opt),
                device_cgroup_rules=list(spec.device_cgroup_rules),
                network_mode=spec.network_mode,
                sysctls=spec.sysctls or None,
            )
            if spec.unmask_system_paths:
                # The CLI's `--security-opt systempaths=unconfined`: the API takes it as
                # empty lists (the Engine refuses it as a security option).
                host_config["MaskedPaths"] = []
                host_config["ReadonlyPaths"] = []
            created = self._client.api.create_container(
                spec.image, command=list(spec.command), name=spec.name, labels=spec.labels, host_config=host_config, detach=True
            )
            try:
                self._client.api.start(created["Id"])
            except docker.errors.APIError:
                with contextlib.suppress(docker.errors.NotFound):
                    self._client.api.remove_container(created["Id"], force=True)
                raise
        return str(created["Id"])

    def service(self, name: str) -> ServiceState | None:
        with _converted(name):
            try:
                container = self._client.containers.get(name)
            except docker.errors.NotFound:
                return None
        return _service_state(container)

    def services(self, label_filter: list[str]) -> tuple[ServiceState, ...]:
        with _converted("listing services"):
            found = self._client.containers.list(all=True, filters={"label": label_filter})
        return tuple(sorted((_service_state(container) for container in found), key=lambda state: state.name))

    def service_log_tail(self, name: str, lines: int) -> str:
        with _converted(f"{name}: log"):
            try:
                raw = self._client.containers.get(name).logs(stdout=True, stderr=True, tail=lines)
            except docker.errors.NotFound:
                return ""
        return raw.decode("utf-8", errors="replace")

    def stop_service(self, name: str, timeout_s: float) -> bool:
        """Stop (SIGTERM, then SIGKILL after `timeout_s`) and remove; False if there was no such container."""
        with _converted(f"stopping {name}"):
            try:
                container = self._client.containers.get(name)
            except docker.errors.NotFound:
                return False
            with contextlib.suppress(docker.errors.NotFound):
                if container.status == "running":
                    container.stop(timeout=int(timeout_s))
                container.remove(force=True)
        return True


STOP_GRACE_S = 10.0


def _wait(container: Any, timeout_s: float) -> int | None:
    """The container's exit code, or None at the time limit (the container still running)."""
    try:
        return int(container.wait(timeout=timeout_s)["StatusCode"])
    except requests.exceptions.ReadTimeout:
        return None
    except requests.exceptions.ConnectionError as error:
        # docker-py reports a read timeout on the wait as a ConnectionError on some urllib3 versions.
        if "timed out" not in str(error).lower():
            raise
        return None


def _open_folder(name: str) -> bytes:
    """A tar archive of one empty folder anyone may write to (mode 1777, like /tmp)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, 0o1777
        tar.addfile(info)
    return buffer.getvalue()


def _read_folder(container: Any, path: str, cap: int) -> tuple[tuple[str, bytes], ...]:
    """The regular files of a folder of a (stopped) container, by name; at most `cap` bytes are kept in all."""
    stream, _ = container.get_archive(path)
    buffer = io.BytesIO()
    for chunk in stream:
        buffer.write(chunk)
    buffer.seek(0)
    found = []
    left = cap
    with tarfile.open(fileobj=buffer, mode="r") as tar:
        for member in tar:
            if not member.isfile() or left <= 0:
                continue
            handle = tar.extractfile(member)
            data = handle.read(left) if handle is not None else b""
            left -= len(data)
            found.append((member.name.rsplit("/", 1)[-1], data))
    return tuple(found)


def _shut_down(response: Any) -> None:
    """Shut a streamed response's socket down (waking a thread blocked reading it), then close it."""
    raw = getattr(response, "raw", None)
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    if sock is None:
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    with contextlib.suppress(OSError, AttributeError):
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        response.close()


@contextlib.contextmanager
def _never_forced(ref: str) -> Iterator[None]:
    """A removal of `ref`: gone already is done; in use (409: a child image, a container) is ImageInUse."""
    try:
        yield
    except docker.errors.ImageNotFound:
        return
    except docker.errors.APIError as error:
        if error.status_code == 409:
            raise ImageInUse(ref, str(error.explanation or error)) from error
        raise


def _imported_id(answer: object) -> str | None:
    """The image ID in an import's answer: JSON lines, the last of which says `{"status": "sha256:..."}`."""
    for line in reversed(str(answer).splitlines()):
        with contextlib.suppress(ValueError):
            status = str(json.loads(line).get("status", ""))
            if status.startswith("sha256:"):
                return status
    return None


def _service_state(container: Any) -> ServiceState:
    return ServiceState(name=str(container.name), status=str(container.status), labels=dict(container.labels or {}))


def engine_facts(version: dict[str, Any], info: dict[str, Any]) -> EngineFacts:
    """Name the Engine, its image store and its builder from GET /version and GET /info."""
    components = [str(c.get("Name", "")) for c in version.get("Components") or ()]
    podman = any("podman" in name.lower() for name in components)
    driver = str(info.get("Driver") or "unknown")
    status = {str(key): str(value) for key, value in info.get("DriverStatus") or () if key}
    if "io.containerd.snapshotter" in status.get("driver-type", ""):
        # Docker's containerd image store (the default from Engine 29): Driver names the snapshotter.
        store = f"containerd ({driver} snapshotter)"
    elif podman:
        store = f"containers/storage ({driver})"
    else:
        store = driver
    return EngineFacts(
        product="Podman" if podman else "Docker Engine",
        version=str(version.get("Version") or "unknown"),
        api_version=str(version.get("ApiVersion") or "unknown"),
        image_store=store,
        # The SDK's build call is the API's classic build (no BuildKit session); Podman serves it with Buildah.
        builder="Buildah (Podman's Docker-compatible API)" if podman else "classic builder (API build, version 1)",
    )


def split_reference(ref: str) -> tuple[str, str]:
    """`debian:bookworm` -> (`debian`, `bookworm`); a reference without a tag means `latest`."""
    name, _, last = ref.rpartition("/")
    if ":" not in last:
        return ref, "latest"
    repository, _, tag = ref.rpartition(":")
    return repository, tag


def _capped(raw: bytes, cap: int) -> tuple[str, bool]:
    return raw[:cap].decode("utf-8", errors="replace"), len(raw) > cap
