"""Services: long-running containers, such as a nested Engine (harness/nested), started, watched and stopped."""

from __future__ import annotations

import contextlib

import docker.errors
from docker.models.containers import Container

from harness.engine.connection import Connection, converted
from harness.records.service import ServiceSpec, ServiceState


class Services(Connection):
    def run_service(self, spec: ServiceSpec) -> str:
        """Create and start `spec`'s container, detached; its id."""
        with converted(f"starting {spec.name}"):
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
        with converted(name):
            try:
                container = self._client.containers.get(name)
            except docker.errors.NotFound:
                return None
        return _service_state(container)

    def services(self, label_filter: list[str]) -> tuple[ServiceState, ...]:
        with converted("listing services"):
            found = self._client.containers.list(all=True, filters={"label": label_filter})
        return tuple(sorted((_service_state(container) for container in found), key=lambda state: state.name))

    def service_log_tail(self, name: str, lines: int) -> str:
        with converted(f"{name}: log"):
            try:
                raw = self._client.containers.get(name).logs(stdout=True, stderr=True, tail=lines)
            except docker.errors.NotFound:
                return ""
        return raw.decode("utf-8", errors="replace")

    def stop_service(self, name: str, timeout_s: float) -> bool:
        """Stop (SIGTERM, then SIGKILL after `timeout_s`) and remove; False if there was no such container."""
        with converted(f"stopping {name}"):
            try:
                container = self._client.containers.get(name)
            except docker.errors.NotFound:
                return False
            with contextlib.suppress(docker.errors.NotFound):
                if container.status == "running":
                    container.stop(timeout=int(timeout_s))
                container.remove(force=True)
        return True


def _service_state(container: Container) -> ServiceState:
    return ServiceState(name=str(container.name), status=str(container.status), labels=dict(container.labels or {}))
