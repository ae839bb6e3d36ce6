"""Starting, waiting for, stopping and listing nested Engines, through the host Engine's `ServiceHost`."""

from __future__ import annotations

import grp
import json
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from harness.custody.enginelock import EngineLocks
from harness.nested.plan import (
    ENGINE_LABEL,
    IMAGE,
    LOG_TAIL_LINES,
    MMDEBSTRAP_TIMEOUT_S,
    RUN_ROOT,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    STORE_LABEL,
    SUITE,
    NestedEngine,
    bounding_set,
    capabilities,
    container_spec,
    daemon_config,
    mmdebstrap_command,
    uplink_mtu,
)
from harness.records import labels
from harness.records.engine import EngineFacts
from harness.records.errors import EngineError, EngineUnavailable, HarnessError, NestedEngineError
from harness.records.service import ServiceHost, ServiceState

log = logging.getLogger(__name__)


class Probe(Protocol):
    def describe(self) -> EngineFacts: ...


Connect = Callable[[str], Probe]
Say = Callable[[str], None]


def ensure_image(host: ServiceHost, say: Say) -> bool:
    """Make sure the engine image exists, bootstrapping it with mmdebstrap; True if it was made now."""
    if host.has_image(IMAGE):
        return False
    # Two suites starting nested Engines at once: one makes the image, the other waits and finds it (an import
    # of its own would take the tag, and leave the first image with no tag and no record).
    with EngineLocks.for_engine(host.identity()).making(IMAGE):
        return False if host.has_image(IMAGE) else _bootstrap(host, say)


def _bootstrap(host: ServiceHost, say: Say) -> bool:
    if shutil.which("mmdebstrap") is None:
        raise NestedEngineError("image", f"{IMAGE} is missing and mmdebstrap is not installed: apt-get install -y mmdebstrap")
    with tempfile.TemporaryDirectory(prefix="hello-ladder-engine-") as scratch:
        tarball = Path(scratch) / "rootfs.tar"
        command = mmdebstrap_command(tarball)
        say(f"{IMAGE}: bootstrapping: {' '.join(command)}")
        started = time.monotonic()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=MMDEBSTRAP_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise NestedEngineError("image", f"mmdebstrap ran past {MMDEBSTRAP_TIMEOUT_S} s") from None
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-10:])
            raise NestedEngineError("image", f"mmdebstrap failed with exit code {done.returncode}", tail)
        host.import_rootfs(tarball, IMAGE, labels.engine(suite=SUITE))
        say(f"{IMAGE}: bootstrapped and imported in {time.monotonic() - started:.0f} s")
    return True


def start(
    host: ServiceHost,
    engine: NestedEngine,
    connect: Connect,
    say: Say,
    fresh: bool = False,
    caps: tuple[str, ...] | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> EngineFacts:
    """Start `engine` unless it already runs as asked; its facts once it answers."""
    state = host.service(engine.container)
    if state is not None and state.running and not fresh and state.labels.get(STORE_LABEL) == engine.store.value:
        say(f"{engine.name}: already running ({engine.store.value} store)")
        return wait_until_answering(host, engine, connect, timeout_s)
    if state is not None:
        reason = "emptying its data root" if fresh else f"{state.status}, store {state.labels.get(STORE_LABEL)}"
        say(f"{engine.name}: removing the old container ({reason})")
        host.stop_service(engine.container, STOP_TIMEOUT_S)
    ensure_image(host, say)
    if fresh and engine.data_dir.exists():
        say(f"{engine.name}: emptying {engine.data_dir}")
        _empty(engine.data_dir)
    engine.data_dir.mkdir(parents=True, exist_ok=True)
    engine.run_dir.mkdir(parents=True, exist_ok=True)
    engine.socket.unlink(missing_ok=True)  # a stale socket would look like an Engine that refuses connections
    config = daemon_config(engine, socket_gid=_host_docker_gid(), mtu=_host_uplink_mtu())
    (engine.run_dir / "daemon.json").write_text(json.dumps(config, indent=2) + "\n")
    if caps is None:
        caps = capabilities(bounding_set(Path("/proc/self/status").read_text()))
    say(f"{engine.name}: starting {engine.container} ({engine.store.value} store, data root {engine.data_dir})")
    host.run_service(container_spec(engine, caps))
    return wait_until_answering(host, engine, connect, timeout_s)


def wait_until_answering(
    host: ServiceHost, engine: NestedEngine, connect: Connect, timeout_s: float, poll_s: float = 0.5
) -> EngineFacts:
    """Ping the inner Engine until it answers; fail with its log tail if it stops or the time runs out."""
    started = time.monotonic()
    while True:
        try:
            facts = connect(engine.docker_host).describe()
        except (EngineUnavailable, EngineError):
            pass
        else:
            log.info("%s: answered after %.1f s", engine.name, time.monotonic() - started)
            return facts
        state = host.service(engine.container)
        if state is None or not state.running:
            status = state.status if state else "gone"
            raise NestedEngineError(engine.name, f"its container stopped ({status})", _log_tail(host, engine))
        if time.monotonic() - started > timeout_s:
            raise NestedEngineError(engine.name, f"did not answer within {timeout_s:g} s", _log_tail(host, engine))
        time.sleep(poll_s)


def stop(host: ServiceHost, engine: NestedEngine, say: Say, purge: bool = False) -> None:
    if host.stop_service(engine.container, STOP_TIMEOUT_S):
        say(f"{engine.name}: stopped and removed {engine.container}")
    else:
        say(f"{engine.name}: not running")
    engine.socket.unlink(missing_ok=True)
    if purge:
        for folder in (engine.data_dir, engine.run_dir):
            if folder.exists():
                shutil.rmtree(folder)
                say(f"{engine.name}: deleted {folder}")


def status_rows(host: ServiceHost, connect: Connect, run_root: Path = RUN_ROOT) -> list[tuple[str, ...]]:
    """One row per nested Engine container: name, store, state, DOCKER_HOST, what it answers."""
    rows: list[tuple[str, ...]] = []
    for state in host.services(labels.selector(role=labels.ROLE_ENGINE)):
        name = state.labels.get(ENGINE_LABEL, state.name)
        docker_host = f"unix://{run_root / name / 'docker.sock'}"
        rows.append((name, state.labels.get(STORE_LABEL, "?"), state.status, docker_host, _answer(state, docker_host, connect)))
    return rows


def _answer(state: ServiceState, docker_host: str, connect: Connect) -> str:
    if not state.running:
        return "-"
    try:
        facts = connect(docker_host).describe()
    except HarnessError as error:
        return f"not answering: {error}"
    return f"Engine {facts.version}, API {facts.api_version}, {facts.image_store}"


def _host_uplink_mtu() -> int | None:
    try:
        routes = Path("/proc/net/route").read_text()
    except OSError:
        return None
    return uplink_mtu(routes, lambda name: Path(f"/sys/class/net/{name}/mtu").read_text())


def _host_docker_gid() -> int:
    """The host's `docker` group, so that whoever may use the host's Engine may use the nested one; else root's."""
    try:
        return grp.getgrnam("docker").gr_gid
    except KeyError:
        return 0


def _log_tail(host: ServiceHost, engine: NestedEngine) -> str:
    return host.service_log_tail(engine.container, LOG_TAIL_LINES)


def _empty(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
