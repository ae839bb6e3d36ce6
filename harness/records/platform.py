"""Target platforms: what a stage built for another architecture needs to know about it.

A platform is named as the Engine names one (`linux/arm64`).  Each known
architecture carries the names the ladder's files use for it: Debian's
architecture (what `mmdebstrap --arch` takes), the multiarch triplet of its
library folders, its dynamic loader, the per-architecture namespace of the
official images (`arm64v8/debian:bookworm` is Debian for arm64, so a base
for another platform never takes the tag of the Engine's own), and what
`uname -m` prints there (the name binfmt_misc registers qemu under).
"""

from __future__ import annotations

import platform as host_platform
from dataclasses import dataclass

from harness.records.errors import HarnessError


class UnknownPlatform(HarnessError):
    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(f"platform {text!r}: not one the ladder knows (known: {', '.join(KNOWN)})")


@dataclass(frozen=True)
class Architecture:
    """The names one architecture goes by, in Docker, Debian, glibc and the kernel."""

    oci: str  # `amd64`, `arm64`: the image config's Architecture
    debian: str  # dpkg's architecture, mmdebstrap --arch
    triplet: str  # Debian's multiarch folder: /lib/<triplet>
    loader: str  # PT_INTERP of its programs
    namespace: str  # the official images' per-architecture namespace
    machine: str  # uname -m, and qemu-<machine> in binfmt_misc
    variant: str | None = None


KNOWN = {
    "amd64": Architecture("amd64", "amd64", "x86_64-linux-gnu", "/lib64/ld-linux-x86-64.so.2", "amd64", "x86_64"),
    "arm64": Architecture("arm64", "arm64", "aarch64-linux-gnu", "/lib/ld-linux-aarch64.so.1", "arm64v8", "aarch64", "v8"),
}
_ALIASES = {"x86_64": "amd64", "aarch64": "arm64", "arm64/v8": "arm64"}


@dataclass(frozen=True)
class Platform:
    """`linux/arm64`: the platform images are built for and run on."""

    os: str
    arch: Architecture

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`linux/arm64`, `linux/arm64/v8`, `arm64`, `aarch64` -> Platform("linux", arm64)."""
        parts = text.strip().lower().split("/")
        os_name, rest = (parts[0], "/".join(parts[1:])) if len(parts) > 1 else ("linux", parts[0])
        name = _ALIASES.get(rest, rest)
        if os_name != "linux" or name not in KNOWN:
            raise UnknownPlatform(text)
        return cls(os_name, KNOWN[name])

    @classmethod
    def host(cls) -> Platform | None:
        """This machine's platform, if the ladder knows it."""
        try:
            return cls.parse(host_platform.machine())
        except UnknownPlatform:
            return None

    def __str__(self) -> str:
        return f"{self.os}/{self.arch.oci}"

    @property
    def slug(self) -> str:
        """What tags and result folders carry: `arm64`."""
        return self.arch.oci

    def base_ref(self, ref: str) -> str:
        """`debian:bookworm` for this platform: `arm64v8/debian:bookworm`, the official images' spelling."""
        return f"{self.arch.namespace}/{ref}"

    @property
    def build_args(self) -> dict[str, str]:
        """What Dockerfiles naming architecture-specific paths read (their defaults are amd64's, the tutorial's)."""
        return {"TRIPLET": self.arch.triplet, "LOADER": self.arch.loader}

    @property
    def is_host(self) -> bool:
        return _ALIASES.get(host_platform.machine().lower(), host_platform.machine().lower()) == self.arch.oci


def architecture_of_namespace(namespace: str) -> Architecture | None:
    """`arm64v8` -> arm64's names; None for a namespace that is not an architecture's."""
    return next((arch for arch in KNOWN.values() if arch.namespace == namespace), None)
