"""scripts/nested-engine: a second Docker Engine inside a container of the host's (harness/nested/)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest

from harness import nested
from harness.engine import DockerEngine
from harness.nested import NestedEngine, Store, bounding_set, capabilities, container_spec, daemon_config
from harness.nested.cli import parse_args
from harness.nested.plan import uplink_mtu
from harness.records import labels
from harness.records.engine import EngineFacts
from harness.records.errors import EngineUnavailable, NestedEngineError
from harness.records.service import ServiceSpec, ServiceState

from .conftest import REPO_ROOT, of_this_namespace

# CapBnd on these machines: every capability up to 40 but CAP_SYS_RESOURCE (bit 24).
THIS_MACHINE_STATUS = "Name:\tbash\nCapPrm:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\n"


def test_start_defaults_to_the_overlay2_store() -> None:
    command = parse_args(["start", "one"])
    assert command.action == "start"
    assert command.engine == NestedEngine("one", Store.OVERLAY2)
    assert not command.fresh


def test_start_takes_the_store_and_fresh() -> None:
    command = parse_args(["start", "cd", "--store", "containerd", "--fresh"])
    assert command.engine is not None and command.engine.store is Store.CONTAINERD
    assert command.fresh


def test_stop_takes_purge_and_status_takes_nothing() -> None:
    assert parse_args(["stop", "cd", "--purge"]).purge
    assert not parse_args(["stop", "cd"]).purge
    assert parse_args(["status"]).action == "status"


def test_an_unknown_store_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse_args(["start", "cd", "--store", "btrfs"])


@pytest.mark.parametrize("name", ["../etc", "UPPER", "a/b", "", "-dash", "x" * 33])
def test_a_name_that_could_leave_its_folders_is_refused(name: str) -> None:
    with pytest.raises(NestedEngineError, match="not a valid name"):
        NestedEngine(name)


def test_paths_and_docker_host_follow_the_name() -> None:
    engine = NestedEngine("cd")
    assert engine.docker_host == "unix:///run/hello-ladder/engines/cd/docker.sock"
    assert engine.data_dir == Path("/var/lib/hello-ladder/engines/cd")
    assert engine.container == "hello-ladder-engine-cd"


def test_the_containerd_store_is_a_feature_of_daemon_json() -> None:
    config = daemon_config(NestedEngine("cd", Store.CONTAINERD), socket_gid=105)
    assert config["features"] == {"containerd-snapshotter": True}
    assert "storage-driver" not in config  # the snapshotter is containerd's default, overlayfs
    assert config["group"] == "105"
    assert config["cgroup-parent"] == "/hello-ladder-cd"  # not the host Engine's `docker`


def test_the_overlay2_store_turns_the_feature_off() -> None:
    config = daemon_config(NestedEngine("ov", Store.OVERLAY2))
    assert config["features"] == {"containerd-snapshotter": False}
    assert config["storage-driver"] == "overlay2"
    assert config["group"] == "0"


def test_the_bounding_set_is_read_from_capbnd() -> None:
    available = bounding_set(THIS_MACHINE_STATUS)
    assert "SYS_RESOURCE" not in available
    assert {"SYS_ADMIN", "NET_ADMIN", "MKNOD", "SETFCAP", "AUDIT_READ"} <= available
    assert "PERFMON" not in available  # bit 38: Engine 20.10 refuses its name


def test_only_capabilities_the_bounding_set_has_are_asked_for() -> None:
    caps = capabilities(bounding_set(THIS_MACHINE_STATUS))
    assert "SYS_RESOURCE" not in caps
    assert {"SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "MKNOD", "SETFCAP"} <= set(caps)
    assert not {"SYS_MODULE", "SYS_BOOT", "SYS_TIME"} & set(caps)  # never wanted: they reach past the container
    full = capabilities(bounding_set("CapBnd:\t000001ffffffffff\n"))
    assert "SYS_RESOURCE" in full


def test_the_container_spec() -> None:
    engine = NestedEngine("cd", Store.CONTAINERD)
    spec = container_spec(engine, ("SYS_ADMIN", "NET_ADMIN"))
    assert spec.name == "hello-ladder-engine-cd"
    assert spec.image == "hello-ladder-engine:trixie"
    assert spec.command == ("dockerd", "--host", "unix:///run/hello-ladder/engines/cd/docker.sock")
    assert spec.labels[labels.ROLE] == labels.ROLE_ENGINE
    assert spec.labels[nested.STORE_LABEL] == "containerd" and spec.labels[nested.ENGINE_LABEL] == "cd"
    binds = {bind.target: bind for bind in spec.binds}
    assert binds[PurePosixPath("/var/lib/docker")].source == engine.data_dir  # not on the container's overlayfs
    assert binds[PurePosixPath("/run/hello-ladder/engines/cd")].source == engine.run_dir  # the socket, seen on the host
    assert binds[PurePosixPath("/etc/docker/daemon.json")].read_only
    assert not binds[PurePosixPath("/sys/fs/cgroup")].read_only
    assert spec.cap_add == ("SYS_ADMIN", "NET_ADMIN")
    assert set(spec.security_opt) == {"seccomp=unconfined", "apparmor=unconfined"}
    assert spec.unmask_system_paths  # systempaths=unconfined, which the API takes as empty path lists
    assert spec.device_cgroup_rules == ("a *:* rwm",)
    assert spec.network_mode == "bridge"  # a network namespace of its own: the inner bridge stays off the host's


@dataclass
class FakeHost:
    """Implements harness.records.service.ServiceHost without an Engine; a started service answers at once unless told."""

    containers: dict[str, ServiceState] = field(default_factory=dict)
    started: list[ServiceSpec] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    dies_on_start: bool = False

    def identity(self) -> str:
        return f"FAKE:HOST:{os.getpid()}"

    def has_image(self, ref: str) -> bool:
        return True

    def import_rootfs(self, tarball: Path, ref: str, labels: dict[str, str]) -> str:
        raise AssertionError("the image is present")

    def run_service(self, spec: ServiceSpec) -> str:
        self.started.append(spec)
        self.containers[spec.name] = ServiceState(spec.name, "exited" if self.dies_on_start else "running", spec.labels)
        return spec.name

    def service(self, name: str) -> ServiceState | None:
        return self.containers.get(name)

    def services(self, label_filter: list[str]) -> tuple[ServiceState, ...]:
        return tuple(self.containers.values())

    def service_log_tail(self, name: str, lines: int) -> str:
        return 'level=error msg="failed to start daemon"'

    def stop_service(self, name: str, timeout_s: float) -> bool:
        self.stopped.append(name)
        return self.containers.pop(name, None) is not None

    def connect(self, docker_host: str) -> FakeProbe:
        running = any(state.running for state in self.containers.values())
        if not running:
            raise EngineUnavailable(f"{docker_host}: no such file")
        return FakeProbe()


class FakeProbe:
    def describe(self) -> EngineFacts:
        return EngineFacts(
            "Docker Engine",
            "26.1.5+dfsg1",
            "1.45",
            "containerd (overlayfs snapshotter)",
            "classic builder (API build, version 1)",
        )


def _engine(tmp_path: Path, store: Store = Store.CONTAINERD) -> NestedEngine:
    return NestedEngine("cd", store, run_root=tmp_path / "run", data_root=tmp_path / "lib")


def _start(host: FakeHost, engine: NestedEngine, fresh: bool = False) -> EngineFacts:
    return nested.start(host, engine, host.connect, lambda line: None, fresh=fresh, caps=("SYS_ADMIN",), timeout_s=2)


def test_start_writes_daemon_json_and_waits_for_the_engine(tmp_path: Path) -> None:
    host, engine = FakeHost(), _engine(tmp_path)
    facts = _start(host, engine)
    assert facts.containerd_store
    assert [spec.name for spec in host.started] == ["hello-ladder-engine-cd"]
    written = json.loads((engine.run_dir / "daemon.json").read_text())
    assert written["features"] == {"containerd-snapshotter": True}
    assert engine.data_dir.is_dir()


def test_start_is_idempotent(tmp_path: Path) -> None:
    host, engine = FakeHost(), _engine(tmp_path)
    _start(host, engine)
    _start(host, engine)
    assert len(host.started) == 1 and not host.stopped


def test_another_store_replaces_the_running_container(tmp_path: Path) -> None:
    host = FakeHost()
    _start(host, _engine(tmp_path, Store.OVERLAY2))
    _start(host, _engine(tmp_path, Store.CONTAINERD))
    assert host.stopped == ["hello-ladder-engine-cd"]
    assert host.started[-1].labels[nested.STORE_LABEL] == "containerd"


def test_fresh_empties_the_data_root(tmp_path: Path) -> None:
    host, engine = FakeHost(), _engine(tmp_path)
    _start(host, engine)
    (engine.data_dir / "image").mkdir()
    (engine.data_dir / "engine-id").write_text("x")
    _start(host, engine, fresh=True)
    assert host.stopped == ["hello-ladder-engine-cd"]  # never emptied under a running Engine
    assert list(engine.data_dir.iterdir()) == []


def test_an_engine_that_dies_is_reported_with_its_log(tmp_path: Path) -> None:
    host, engine = FakeHost(dies_on_start=True), _engine(tmp_path)
    with pytest.raises(NestedEngineError, match="its container stopped") as caught:
        _start(host, engine)
    assert "failed to start daemon" in caught.value.log_tail


def test_stop_purge_deletes_the_data_root(tmp_path: Path) -> None:
    host, engine = FakeHost(), _engine(tmp_path)
    _start(host, engine)
    nested.stop(host, engine, lambda line: None, purge=True)
    assert not engine.data_dir.exists() and not engine.run_dir.exists()
    nested.stop(host, engine, lambda line: None)  # stopping again is no error


def test_status_lists_each_engine_with_what_it_answers(tmp_path: Path) -> None:
    host, engine = FakeHost(), _engine(tmp_path)
    _start(host, engine)
    rows = nested.status_rows(host, host.connect, run_root=engine.run_root)
    assert rows == [
        ("cd", "containerd", "running", engine.docker_host, "Engine 26.1.5+dfsg1, API 1.45, containerd (overlayfs snapshotter)")
    ]


@pytest.mark.docker
def test_a_nested_engine_with_the_containerd_store(engine: DockerEngine) -> None:
    """The script as users call it: start, talk to the inner Engine, stop and purge."""
    name = of_this_namespace("pytest-containerd")  # another test run's Engine of the same purpose is its own
    script = ["bash", str(REPO_ROOT / "scripts" / "nested-engine")]
    try:
        started = subprocess.run(
            [*script, "start", name, "--store", "containerd", "--fresh"], capture_output=True, text=True, timeout=600
        )
        assert started.returncode == 0, started.stderr
        assert started.stdout.splitlines()[-1] == f"DOCKER_HOST=unix:///run/hello-ladder/engines/{name}/docker.sock"
        facts = DockerEngine.connect(started.stdout.strip().splitlines()[-1].partition("=")[2]).describe()
        assert int(facts.version.split(".")[0]) >= 26
        assert facts.containerd_store, facts
    finally:
        stopped = subprocess.run([*script, "stop", name, "--purge"], capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert not NestedEngine(name).data_dir.exists()


def test_the_inner_engine_takes_the_uplinks_mtu() -> None:
    """Behind two NATs a packet larger than the uplink's MTU is lost without a word: apt-get update hangs."""
    routes = "Iface\tDestination\tGateway\tFlags\ndocker0\t000011AC\t00000000\t0001\neth0\t00000000\t0100000A\t0003\n"
    mtus = {"eth0": "1400\n", "docker0": "1500\n"}
    assert uplink_mtu(routes, mtus.__getitem__) == 1400
    assert uplink_mtu(routes.splitlines()[0], mtus.__getitem__) is None
    config = daemon_config(NestedEngine("ov", Store.OVERLAY2), mtu=1400)
    assert config["mtu"] == 1400
    assert "mtu" not in daemon_config(NestedEngine("ov", Store.OVERLAY2))
