"""What a slim image is asked to hold: the `[slim]` table of a stage.toml, or `invoke slim`'s arguments.

Only the spec: reading a stage.toml needs this and nothing of the resolver
(harness.slim.plan, harness.elf, pyelftools), which plans and writes the image.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from harness.records.errors import HarnessError


class SlimError(HarnessError):
    """A slim image that cannot be planned: a missing extra or bundle file."""


class Bundle(enum.Enum):
    """Files a program may need that no ELF reference shows (as distroless's static image ships them)."""

    CERTS = "certs"  # the CA bundle, and SSL_CERT_FILE pointing at it
    TZDATA = "tzdata"  # /usr/share/zoneinfo
    PASSWD = "passwd"  # root, nobody and nonroot users and groups
    TMP = "tmp"  # a world-writable /tmp (mode 1777)
    NSS = "nss"  # nsswitch.conf and the libnss_* modules with their closure

    @classmethod
    def parse_list(cls, text: str) -> tuple[Bundle, ...]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        try:
            return tuple(cls(name) for name in names)
        except ValueError:
            known = ", ".join(bundle.value for bundle in cls)
            raise SlimError(f"--with {text}: unknown bundle (known: {known})") from None


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SlimSpec:
    binary: PurePosixPath
    extras: tuple[PurePosixPath, ...] = ()
    bundles: tuple[Bundle, ...] = ()
    with_dlopen: bool = False
    # A file in the source image listing more extras, one path per line: what
    # the build found the program needs (an interpreter's imported modules).
    extras_from: PurePosixPath | None = None
    env: tuple[tuple[str, str], ...] = ()
    # distroless-style dpkg metadata and copyright files, so that SBOM scanners see the packages.
    metadata: bool = True
    # Run the command (or each probe) in the source image under a tracer and copy what it touched.
    trace: bool = False
    probes: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        for name, value in self.env:
            if not ENV_NAME.match(name) or "\n" in value:
                raise SlimError(f"env {name}={value!r}: names are letters, digits and _; values are one line")
