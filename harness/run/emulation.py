"""Whether this machine can run another platform's programs: qemu registered in binfmt_misc."""

from __future__ import annotations

import functools
from pathlib import Path

from harness.records.platform import Platform, UnknownPlatform

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")


def emulation_missing(target: Platform, binfmt_dir: Path = BINFMT_DIR) -> str | None:
    """Why this machine cannot run `target`'s programs, or None when it can (natively or under qemu).

    qemu must be registered with the F flag (the interpreter opened at
    registration), or a container, which has no qemu in its file system,
    could not start it.
    """
    if target.is_host:
        return None
    return _binfmt_missing(target.arch.machine, binfmt_dir)


def architecture_missing(architecture: str, binfmt_dir: Path = BINFMT_DIR) -> str | None:
    """`emulation_missing` for an architecture as an image config names it (`arm64`)."""
    try:
        return emulation_missing(Platform.parse(architecture), binfmt_dir)
    except UnknownPlatform as error:
        return str(error)


@functools.lru_cache(maxsize=None)
def _binfmt_missing(machine: str, binfmt_dir: Path) -> str | None:
    fix = "run `bash scripts/setup` as root (it mounts binfmt_misc and installs qemu-user-static)"
    if not (binfmt_dir / "status").exists():
        return f"no emulation for {machine}: binfmt_misc is not mounted at {binfmt_dir}; {fix}"
    entry = binfmt_dir / f"qemu-{machine}"
    if not entry.exists():
        return f"no emulation for {machine}: qemu-{machine} is not registered in {binfmt_dir}; {fix}"
    lines = entry.read_text(encoding="utf-8", errors="replace").splitlines()
    if "enabled" not in lines:
        return f"no emulation for {machine}: {entry} is disabled"
    flags = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("flags:")), "")
    if "F" not in flags:
        return (
            f"no emulation for {machine}: qemu-{machine} is registered without the F flag, so containers "
            f"cannot start it; install qemu-user-static (its registration has F)"
        )
    return None
