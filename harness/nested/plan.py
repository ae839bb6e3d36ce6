"""A nested Engine as data: its name and store, its folders on the host, its daemon.json and its container.

All pure; harness/nested/__init__.py says why the container is made as it is.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harness.records import labels
from harness.records.errors import NestedEngineError
from harness.records.service import BindMount, ServiceSpec

RUN_ROOT = Path("/run/hello-ladder/engines")  # one folder per Engine: its socket and daemon.json
DATA_ROOT = Path("/var/lib/hello-ladder/engines")  # one folder per Engine: its /var/lib/docker
IMAGE = "hello-ladder-engine:trixie"
SUITE = "trixie"
PACKAGES = ("docker.io", "iptables", "ca-certificates", "procps")
CONTAINER_PREFIX = "hello-ladder-engine-"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0  # the inner Engine stops its own containers first (10 s each by default)
LOG_TAIL_LINES = 30
MMDEBSTRAP_TIMEOUT_S = 900
ENGINE_LABEL = "hello-ladder.engine"
STORE_LABEL = "hello-ladder.store"

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")

# Capability bits 0-37 by name.  Engine 20.10 knows no later ones: it refuses
# 38 (PERFMON) and after with "unknown capability".
CAPABILITY_BITS = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
)  # fmt: skip

# What an Engine inside a container needs: the default set its own containers
# get, plus namespaces and mounts (SYS_ADMIN), bridges and iptables
# (NET_ADMIN), and what runc uses to set up a process (SYS_PTRACE, SYS_NICE,
# SYS_RESOURCE, IPC_LOCK, DAC_READ_SEARCH, LINUX_IMMUTABLE).  Left out on
# purpose, since they reach past the container: SYS_MODULE, SYS_BOOT,
# SYS_TIME, SYS_RAWIO, the MAC and audit-control ones.
WANTED_CAPABILITIES = (
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYS_NICE", "SYS_RESOURCE", "IPC_LOCK", "IPC_OWNER",
    "DAC_READ_SEARCH", "LINUX_IMMUTABLE", "NET_BROADCAST",
)  # fmt: skip

SECURITY_OPT = ("seccomp=unconfined", "apparmor=unconfined")
DEVICE_CGROUP_RULES = ("a *:* rwm",)
CGROUP_ROOT = Path("/sys/fs/cgroup")


class Store(enum.Enum):
    """Where the inner Engine keeps images: its graph driver, or containerd's image store."""

    OVERLAY2 = "overlay2"
    CONTAINERD = "containerd"


@dataclass(frozen=True)
class NestedEngine:
    """One nested Engine: its name, its image store, and where its files are on the host."""

    name: str
    store: Store = Store.OVERLAY2
    run_root: Path = RUN_ROOT
    data_root: Path = DATA_ROOT

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise NestedEngineError(
                self.name, "not a valid name: use 1 to 32 of a-z, 0-9, - and _, starting with a letter or digit"
            )

    @property
    def container(self) -> str:
        return CONTAINER_PREFIX + self.name

    @property
    def run_dir(self) -> Path:
        return self.run_root / self.name

    @property
    def data_dir(self) -> Path:
        return self.data_root / self.name

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def labels(self) -> dict[str, str]:
        return {**labels.engine(), ENGINE_LABEL: self.name, STORE_LABEL: self.store.value}


def daemon_config(engine: NestedEngine, socket_gid: int = 0, mtu: int | None = None) -> dict[str, object]:
    """The inner /etc/docker/daemon.json.

    The socket's group is given by number: the image's own `docker` group has
    a number that means another group on the host.  `mtu` is the host's uplink's:
    behind two NATs a packet too large for it is dropped without a word, and a
    build's `apt-get update` hangs (seen here: eth0 at 1400, the bridges at 1500).
    """
    config: dict[str, object] = {
        "features": {"containerd-snapshotter": engine.store is Store.CONTAINERD},
        "group": str(socket_gid),
        # The host's cgroup hierarchies are shared: keep out of the host Engine's `docker` cgroups.
        "cgroup-parent": f"/hello-ladder-{engine.name}",
    }
    if mtu is not None:
        config["mtu"] = mtu
    if engine.store is Store.OVERLAY2:
        config["storage-driver"] = "overlay2"
    return config


def uplink_mtu(route_table: str, read_mtu: Callable[[str], str]) -> int | None:
    """The MTU of the interface the default route leaves by, from /proc/net/route's text; None if there is none."""
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000":
            try:
                return int(read_mtu(fields[0]).strip())
            except (OSError, ValueError):
                return None
    return None


def dockerd_command(engine: NestedEngine) -> tuple[str, ...]:
    return ("dockerd", "--host", engine.docker_host)


def bounding_set(status_text: str) -> frozenset[str]:
    """The capability names whose bits are set in `CapBnd:` of a /proc/PID/status text."""
    for line in status_text.splitlines():
        key, _, value = line.partition(":")
        if key == "CapBnd":
            mask = int(value.strip(), 16)
            return frozenset(name for bit, name in enumerate(CAPABILITY_BITS) if mask >> bit & 1)
    raise ValueError("no CapBnd line")


def capabilities(available: frozenset[str]) -> tuple[str, ...]:
    """The wanted capabilities the bounding set has; asking for one it lacks would stop the container starting."""
    return tuple(name for name in WANTED_CAPABILITIES if name in available)


def container_spec(engine: NestedEngine, caps: tuple[str, ...], image: str = IMAGE) -> ServiceSpec:
    return ServiceSpec(
        name=engine.container,
        image=image,
        command=dockerd_command(engine),
        labels=engine.labels,
        binds=(
            BindMount(engine.data_dir, PurePosixPath("/var/lib/docker")),
            BindMount(engine.run_dir, PurePosixPath(engine.run_dir)),
            BindMount(engine.run_dir / "daemon.json", PurePosixPath("/etc/docker/daemon.json"), read_only=True),
            BindMount(CGROUP_ROOT, PurePosixPath(CGROUP_ROOT)),
        ),
        cap_add=caps,
        security_opt=SECURITY_OPT,
        device_cgroup_rules=DEVICE_CGROUP_RULES,
        network_mode="bridge",
        unmask_system_paths=True,  # `systempaths=unconfined`: the inner runc mounts /proc and /sys afresh
        sysctls={"net.ipv4.ip_forward": "1"},
    )


def mmdebstrap_command(output: Path) -> list[str]:
    return ["mmdebstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(output)]
