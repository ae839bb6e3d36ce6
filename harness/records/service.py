"""Long-running containers the harness starts and stops (a nested Docker Engine), and what it asks of them.

The records and the narrow interface live here, free of the SDK:
`harness/engine/services.py` implements them (`DockerEngine.run_service` and its
neighbours), `harness/nested/` uses them, and tests fake them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol


@dataclass(frozen=True)
class BindMount:
    """A host folder or file seen at `target` inside the container."""

    source: Path
    target: PurePosixPath
    read_only: bool = False


@dataclass(frozen=True)
class ServiceSpec:
    """A detached container that keeps running until it is stopped.

    Capabilities are added by name (never `privileged`, which asks for every
    capability, including ones a host's bounding set may lack).
    """

    name: str
    image: str
    command: tuple[str, ...]
    labels: dict[str, str]
    binds: tuple[BindMount, ...] = ()
    cap_add: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    device_cgroup_rules: tuple[str, ...] = ()
    network_mode: str = "bridge"
    sysctls: dict[str, str] = field(default_factory=dict)
    init: bool = True  # the Engine's own init as PID 1 reaps what the service leaves behind
    unmask_system_paths: bool = False  # /proc and /sys as they are: nothing masked, nothing read-only


@dataclass(frozen=True)
class ServiceState:
    """A service container as the Engine shows it."""

    name: str
    status: str  # the Engine's word: created, running, exited, ...
    labels: dict[str, str]

    @property
    def running(self) -> bool:
        return self.status == "running"


class ServiceHost(Protocol):
    """What `harness/nested/` needs from the Engine that hosts its services."""

    def identity(self) -> str: ...

    def has_image(self, ref: str) -> bool: ...

    def import_rootfs(self, tarball: Path, ref: str, labels: dict[str, str]) -> str: ...

    def run_service(self, spec: ServiceSpec) -> str: ...

    def service(self, name: str) -> ServiceState | None: ...

    def services(self, label_filter: list[str]) -> tuple[ServiceState, ...]: ...

    def service_log_tail(self, name: str, lines: int) -> str: ...

    def stop_service(self, name: str, timeout_s: float) -> bool: ...
