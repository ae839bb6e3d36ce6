"""Base images without a registry.

Every base a stage starts from must exist before the build: present in the
Engine, else pulled, else, for Debian suites, bootstrapped from Debian's own
packages with `mmdebstrap` and imported.  The bootstrap mimics the official
images: a minbase system (Priority: required, plus apt) with merged /usr,
apt's lists and caches removed; `-slim` also keeps dpkg from installing
documentation, man pages and locales, as the official slim images do.
"""

from __future__ import annotations

import enum
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.custody.enginelock import EngineLocks
from harness.custody.ledger import ROLE_BASE, Ledger
from harness.debian.release import DebianBase
from harness.layers.cache import LayerCache
from harness.records.engine import Engine
from harness.records.errors import BaseUnavailable, EngineError
from harness.records.units import parse_size
from harness.run.measure import headline_size
from harness.slim.imagewrite import rootfs_archive

log = logging.getLogger(__name__)

# Sizes `docker images` showed for the official images (linux/amd64), to
# check that a bootstrapped base is a fair stand-in for the real one.
OFFICIAL_SIZES = {
    "debian:bullseye": "124MB",
    "debian:bookworm": "117MB",
    "debian:bookworm-slim": "74.8MB",
}
SIZE_TOLERANCE = 0.05

# Older suites were published without merged /usr, and their packages do not
# ask for it: they bootstrap as they are, with no hook.
UNMERGED_USR_SUITES = frozenset({"stretch", "buster", "bullseye"})

# What the official slim images exclude (debuerreotype's `debuerreotype-slimify`).
SLIM_DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/groff/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/share/linda/*",
    "path-exclude=/usr/share/locale/*",
)

MMDEBSTRAP_TIMEOUT_S = 1800


class BaseSource(enum.Enum):
    PRESENT = "present"
    PULLED = "pulled"
    BOOTSTRAPPED = "bootstrapped"


@dataclass(frozen=True)
class BaseStatus:
    ref: str
    source: BaseSource
    size_bytes: int

    @property
    def official_size(self) -> str | None:
        return OFFICIAL_SIZES.get(self.ref)

    @property
    def deviation(self) -> float | None:
        """(size - official) / official, for bases with a known official size."""
        if self.official_size is None:
            return None
        official = parse_size(self.official_size)
        return (self.size_bytes - official) / official


def mmdebstrap_command(base: DebianBase, output: Path) -> list[str]:
    """The mmdebstrap call that bootstraps `base` into the tarball `output`."""
    command = ["mmdebstrap", "--variant=minbase", "--format=tar"]
    if base.arch is not None:
        # Another architecture's maintainer scripts run under qemu (binfmt_misc), as mmdebstrap arranges.
        command.append(f"--arch={base.arch.debian}")
    if base.suite not in UNMERGED_USR_SUITES:
        # Merged /usr from the start, as the official images are; without the
        # hook, mmdebstrap converts with the `usrmerge` package, which pulls in perl.
        command.append("--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr")
    if base.slim:
        command += [f"--dpkgopt={option}" for option in SLIM_DPKG_OPTIONS]
    # mmdebstrap empties /var/lib/apt/lists and /var/cache/apt itself.
    return [*command, base.suite, str(output)]


def ensure_base(
    engine: Engine,
    ref: str,
    ledger: Ledger | None = None,
    cache: LayerCache | None = None,
    announce: Callable[[str], None] = log.info,
) -> BaseStatus:
    """Make sure `ref` exists in the Engine, by the cheapest means that works; a bootstrap is recorded in `ledger`.

    Its size is read from its layers (with `cache`, not saved again once read).  A bootstrap takes half
    a minute or more: `announce` says so before it starts.
    """
    if not engine.has_image(ref):
        # Another run on this Engine (another checkout, the other test suite) may be making it too: one makes it, the
        # others wait and find it, rather than import it again and leave the first import untagged and unrecorded.
        with EngineLocks.for_engine(engine.identity()).making(ref):
            if not engine.has_image(ref):
                return _provide(engine, ref, ledger, cache, announce)
    return BaseStatus(ref, BaseSource.PRESENT, headline_size(engine, ref, cache))


def _provide(
    engine: Engine, ref: str, ledger: Ledger | None, cache: LayerCache | None, announce: Callable[[str], None]
) -> BaseStatus:
    """A pull, or else a bootstrap with mmdebstrap: `ensure_base` once it holds the lock of `ref`."""
    attempts = ["not present in the Engine"]
    try:
        engine.pull(ref)
        return BaseStatus(ref, BaseSource.PULLED, headline_size(engine, ref, cache))
    except EngineError as error:
        log.info("%s: pull failed: %s", ref, error)
        attempts.append("no registry could serve it")
    debian = DebianBase.parse(ref)
    if debian is None:
        raise BaseUnavailable(
            ref,
            tuple(attempts),
            f"Only Debian bases can be bootstrapped here; provide it with `docker load -i IMAGE.tar` "
            f"(an image saved elsewhere and tagged {ref}).",
        )
    if shutil.which("mmdebstrap") is None:
        attempts.append("mmdebstrap is not installed")
        raise BaseUnavailable(
            ref,
            tuple(attempts),
            "Install it (as root: `apt-get install -y mmdebstrap`) and run `invoke bases` again, "
            f"or `docker load -i IMAGE.tar` an image tagged {ref}.",
        )
    announce(
        f"{ref}: not in the Engine, and no registry serves it: bootstrapping it from Debian's packages with mmdebstrap (half a minute or more)"
    )
    image_id = bootstrap_debian(engine, debian, ref)
    if ledger is not None:
        ledger.record_image(image_id, ROLE_BASE, (ref,))
    return BaseStatus(ref, BaseSource.BOOTSTRAPPED, headline_size(engine, ref, cache))


def bootstrap_debian(engine: Engine, base: DebianBase, ref: str) -> str:
    """Bootstrap `base` with mmdebstrap, import it into the Engine as `ref`, and return its image ID.

    The image carries no label, as the official images carry none: whatever
    marked it would be copied into every image anyone builds `FROM` it.  That
    the project made it is recorded by its ID, in the checkout's ledger.
    """
    with tempfile.TemporaryDirectory(prefix="hello-ladder-base-") as scratch:
        tarball = Path(scratch) / "rootfs.tar"
        command = mmdebstrap_command(base, tarball)
        log.info("bootstrapping %s: %s", ref, " ".join(command))
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=MMDEBSTRAP_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise BaseUnavailable(
                ref, ("mmdebstrap did not finish",), f"It ran past {MMDEBSTRAP_TIMEOUT_S} s; check the package mirror."
            ) from None
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            last = " | ".join([line for line in lines if line.startswith("E:")][:3] or lines[-3:])
            raise BaseUnavailable(
                ref,
                (f"mmdebstrap failed with exit code {done.returncode}: {last}",),
                "Check that the suite exists and Debian's packages are reachable, then run `invoke bases` again.",
            )
        if base.arch is None:
            return engine.import_rootfs(tarball, ref, {})
        archive = rootfs_archive(
            tarball.read_bytes(), base.arch.oci, base.arch.variant, ref, int(time.time()), created_by=" ".join(command[:-1])
        )
        return engine.load_image(archive.data)
