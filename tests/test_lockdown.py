"""Every lockdown option of a stage's container, seen from inside it on the real Engine."""

from __future__ import annotations

import pytest

from harness.custody.made import Made
from harness.engine import DockerEngine
from harness.records.engine import RunPolicy
from harness.run.bases import ensure_base

pytestmark = pytest.mark.docker

BASE = "debian:bookworm"
# What the container reports about itself: one `key=value` a line.
PROBE = r"""
echo "user=$(id -u):$(id -g)"
echo "nonewprivs=$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' /proc/self/status)"
echo "capeff=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)"
echo "capbnd=$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status)"
# /tmp is writable by anyone: only a read-only root file system stops `nobody` there.
if touch /tmp/written 2>/dev/null; then echo "rootfs=writable"; else echo "rootfs=read-only"; fi
echo "interfaces=$(ls /sys/class/net | tr '\n' ' ' | sed 's/ $//')"
echo "memory=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
echo "pids=$(cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max)"
"""


def test_a_stage_runs_locked_down(engine: DockerEngine, made: Made) -> None:
    ensure_base(engine, BASE, made.ledger)
    policy = RunPolicy(timeout_s=30, user="65534:65534", memory_bytes=48 * 1024 * 1024, pids=32)
    result = engine.run(BASE, ("/bin/sh", "-c", PROBE), policy, made.container_labels())
    assert result.exit_code == 0, result.failure_text()
    seen = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert seen["user"] == "65534:65534"  # the policy's user, not root
    assert seen["nonewprivs"] == "1"  # no-new-privileges
    assert int(seen["capeff"], 16) == 0 and int(seen["capbnd"], 16) == 0  # every capability dropped
    assert seen["rootfs"] == "read-only"
    assert seen["interfaces"] == "lo"  # network_mode none
    assert int(seen["memory"]) == policy.memory_bytes
    assert int(seen["pids"]) == policy.pids


def test_a_flood_of_output_is_cut_at_the_cap(engine: DockerEngine, made: Made) -> None:
    ensure_base(engine, BASE, made.ledger)
    policy = RunPolicy(timeout_s=30, user="65534:65534", output_cap_bytes=1000)
    result = engine.run(BASE, ("/bin/sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x"), policy, made.container_labels())
    assert result.truncated and len(result.stdout) == 1000


def test_a_program_past_its_time_limit_is_killed(engine: DockerEngine, made: Made) -> None:
    ensure_base(engine, BASE, made.ledger)
    result = engine.run(BASE, ("/bin/sleep", "60"), RunPolicy(timeout_s=2, user="65534:65534"), made.container_labels())
    assert result.timed_out and result.exit_code is None and "time limit" in str(result.error)
