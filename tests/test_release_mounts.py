"""scripts/release-mounts: what a killed Engine left mounted under its data root no longer stops CI emptying it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, in_ci

SCRIPT = REPO_ROOT / "scripts" / "release-mounts"


def mount_points_under(root: Path) -> list[str]:
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [point for point in points if point == str(root) or point.startswith(f"{root}/")]


@pytest.fixture()
def root_only() -> None:
    if os.geteuid() != 0:
        if in_ci():
            pytest.fail("CI runs as root, and this test mounts")
        pytest.skip("mounting needs root")


def test_a_data_root_left_mounted_can_be_deleted_once_released(tmp_path: Path, root_only: None) -> None:
    # What a killed dockerd leaves: its data root bind-mounted onto itself, and a layer mounted inside it.
    data_root = tmp_path / "data-root"
    merged = data_root / "overlay2" / "layer" / "merged"
    merged.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(data_root), str(data_root)], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(merged)], check=True)
    try:
        assert len(mount_points_under(data_root)) == 2
        removed = subprocess.run(["rm", "-rf", str(data_root)], capture_output=True, text=True, check=False)
        assert "busy" in removed.stderr  # what CI met

        subprocess.run(["bash", str(SCRIPT), str(data_root)], check=True, timeout=60)

        assert mount_points_under(data_root) == []
        subprocess.run(["rm", "-rf", str(data_root)], check=True)
        assert not data_root.exists()
    finally:
        for point in mount_points_under(data_root):
            subprocess.run(["umount", "-l", point], check=False)


def test_nothing_mounted_is_nothing_to_do(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "absent")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_root_folder_is_refused() -> None:
    done = subprocess.run(["bash", str(SCRIPT), "/"], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "other than /" in done.stderr
