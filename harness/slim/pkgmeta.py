"""Package metadata for a scratch image, as distroless writes it, so that SBOM scanners see the packages.

A scanner such as syft or trivy finds Debian packages only through dpkg's
database; a scratch image has none, so it reports nothing even when glibc's
files are there.  distroless writes one deb822 file per package under
`/var/lib/dpkg/status.d/` with a `<package>.md5sums` beside it, and keeps each
package's `/usr/share/doc/<package>/copyright`.  Here the md5sums list only
the files actually copied, hashed from the copied bytes.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harness.debian.dpkg import DOC_DIR, DPKG_STATUS_D
from harness.elf import RootFS
from harness.slim.provenance import Provenance

log = logging.getLogger(__name__)

STATUS_D = PurePosixPath(DPKG_STATUS_D)
DOC = PurePosixPath(DOC_DIR)


@dataclass(frozen=True)
class MetadataFile:
    path: PurePosixPath
    content: bytes


@dataclass(frozen=True)
class PackageMetadata:
    """What the image gets so that scanners see its packages: generated files, and copyright files to copy."""

    files: tuple[MetadataFile, ...]  # status.d/<package> and status.d/<package>.md5sums
    copies: tuple[PurePosixPath, ...]  # each package's copyright file, with the links on the way to it
    copyright_bytes: int
    missing_copyright: tuple[str, ...] = ()

    @property
    def added_bytes(self) -> int:
        """What the metadata and the licences add to the image's files."""
        return sum(len(item.content) for item in self.files) + self.copyright_bytes


def package_metadata(root: Path, provenance: Provenance) -> PackageMetadata:
    fs = RootFS(root)
    files: list[MetadataFile] = []
    copies: list[PurePosixPath] = []
    copyright_bytes = 0
    missing: list[str] = []
    for package in provenance.packages:
        files.append(MetadataFile(STATUS_D / package.name, package.paragraph.encode() + b"\n"))
        files.append(MetadataFile(STATUS_D / f"{package.name}.md5sums", md5sums(fs, provenance.files_of(package.name))))
        # The folder may be a link to another package's (libgcc-s1 -> gcc-12-base): copying the
        # links on the way keeps /usr/share/doc/<package>/copyright readable under the package's name.
        found = fs.resolve(DOC / package.name / "copyright")
        if found is None or not found.is_file:
            log.warning("%s: %s: not in the source image", package.name, DOC / package.name / "copyright")
            missing.append(package.name)
            continue
        copies += found.files
        copyright_bytes += fs.host_path(found.real).stat().st_size
    return PackageMetadata(tuple(files), tuple(dict.fromkeys(copies)), copyright_bytes, tuple(missing))


def md5sums(fs: RootFS, paths: tuple[PurePosixPath, ...]) -> bytes:
    """dpkg's md5sums format (`<md5>  <path without the leading slash>`) for the regular files among `paths`."""
    lines = []
    for path in sorted(paths):
        host = fs.host_path(path)
        if host.is_symlink() or not host.is_file():
            continue
        digest = hashlib.md5(host.read_bytes(), usedforsecurity=False).hexdigest()
        lines.append(f"{digest}  {str(path).lstrip('/')}\n")
    return "".join(lines).encode()
