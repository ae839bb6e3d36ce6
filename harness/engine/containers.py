"""Containers: a program run locked down (and, instrumented, with tools beside it), and the run's containers found again."""

from __future__ import annotations

import contextlib
import io
import tarfile
import uuid
from typing import Any

import docker.errors
import requests.exceptions
from docker.models.containers import Container
from docker.models.volumes import Volume
from docker.types import LogConfig, Ulimit

from harness.engine.connection import Connection, converted
from harness.records import labels as labels_module
from harness.records.engine import (
    OUTPUT_FOLDER,
    EngineContainer,
    EngineVolume,
    Instrumentation,
    InstrumentedRun,
    RunPolicy,
    RunResult,
)


class Containers(Connection):
    def run(self, image: str, command: tuple[str, ...], policy: RunPolicy, labels: dict[str, str]) -> RunResult:
        # A label of its own finds the container even if an interrupt lands between
        # the Engine creating it and this process learning its id.
        run_label = {labels_module.RUN_ID: uuid.uuid4().hex}
        with converted(f"running {image}"):
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
        volumes: list[Volume] = []
        try:
            with converted(f"preparing the tools for {image}"):
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
            with converted(f"running {image} with its tools"):
                result = self._start_and_wait(container, policy, tools.stop_signal)
            with converted(f"reading the tools' output from {image}"):
                outputs = _read_folder(container, f"{tools.output_at}/{OUTPUT_FOLDER}", tools.output_cap_bytes)
            return InstrumentedRun(result, outputs)
        finally:
            # Found by the run's own label, so that an interrupt between the Engine creating a
            # container and this process learning its id leaves none behind (nor a volume in use).
            for found in self.list_containers(labels_module.RUN_ID):
                if found.own_label(labels_module.RUN_ID) == run_id:
                    self.remove_container(found.container_id)
            for volume in volumes:
                with contextlib.suppress(docker.errors.NotFound), converted(f"removing volume {volume.name}"):
                    volume.remove(force=True)

    def _create_locked_down(
        self, image: str, command: tuple[str, ...], policy: RunPolicy, labels: dict[str, str], **more: Any
    ) -> Container:
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

    def _start_and_wait(self, container: Container, policy: RunPolicy, stop_signal: str | None = None) -> RunResult:
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
        failure = f"killed after the {policy.timeout_s:g} s time limit" if timed_out else None
        return RunResult(stdout, stderr, exit_code, error=failure, timed_out=timed_out, truncated=out_cut or err_cut)

    def list_containers(self, label_key: str) -> tuple[EngineContainer, ...]:
        """Every container carrying the label `label_key`, with its image's labels beside its own."""
        return self._containers({"label": label_key})

    def find_containers(self, container_ids: tuple[str, ...]) -> tuple[EngineContainer, ...]:
        """The containers these IDs (whole or short) name, of those the Engine still has."""
        return self._containers({"id": list(container_ids)}) if container_ids else ()

    def _containers(self, filters: dict[str, object]) -> tuple[EngineContainer, ...]:
        found: list[EngineContainer] = []
        image_labels: dict[str, dict[str, str]] = {}
        with converted("listing containers"):
            for entry in self._client.api.containers(all=True, filters=filters):
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
        with converted(f"removing container {container_id[:12]}"):
            try:
                self._client.api.remove_container(container_id, force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as error:
                # Another removal under way (a cancelled build's own clean-up) ends as this one would.
                if "already in progress" not in str(error.explanation):
                    raise

    def list_volumes(self, label_key: str) -> tuple[EngineVolume, ...]:
        """Every volume carrying the label `label_key` (a trace's, left by a run that was killed)."""
        with converted("listing volumes"):
            found = self._client.api.volumes(filters={"label": label_key}).get("Volumes") or []
        return tuple(EngineVolume(str(entry["Name"]), dict(entry.get("Labels") or {})) for entry in found)

    def remove_volume(self, name: str) -> None:
        with converted(f"removing volume {name[:12]}"):
            with contextlib.suppress(docker.errors.NotFound):
                self._client.api.remove_volume(name, force=True)


STOP_GRACE_S = 10.0


def _wait(container: Container, timeout_s: float) -> int | None:
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


def _read_folder(container: Container, path: str, cap: int) -> tuple[tuple[str, bytes], ...]:
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


def _capped(raw: bytes, cap: int) -> tuple[str, bool]:
    return raw[:cap].decode("utf-8", errors="replace"), len(raw) > cap
