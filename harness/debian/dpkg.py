"""dpkg's package database: where its files are, and its status file read as deb822 paragraphs.

The save-stream reader captures the content of `/var/lib/dpkg/status` from every
layer that writes it; the analysis parses the copy the final merged view shows,
and the [slim] images' provenance reads the one in the source image.
"""

from __future__ import annotations

from dataclasses import dataclass

# Absolute paths in an image; the layer tars name them without the leading `/`.
DPKG_DIR = "/var/lib/dpkg"
DPKG_STATUS = f"{DPKG_DIR}/status"
DPKG_STATUS_D = f"{DPKG_DIR}/status.d"  # distroless's: one status file per package
DPKG_INFO = f"{DPKG_DIR}/info"  # each package's file list (<package>.list) and md5sums
DOC_DIR = "/usr/share/doc"  # each package's /usr/share/doc/<package>/copyright


@dataclass(frozen=True)
class Package:
    """One package of the status file; `installed_size_bytes` is `Installed-Size` (KiB) * 1024."""

    name: str
    version: str
    installed_size_bytes: int | None
    status: str
    architecture: str = ""


def paragraphs(text: str) -> list[str]:
    """deb822 paragraphs, each as its own text (lines joined by newlines, no trailing blank line)."""
    found, lines = [], []
    for line in text.splitlines():
        if line.strip():
            lines.append(line)
        elif lines:
            found.append("\n".join(lines))
            lines = []
    if lines:
        found.append("\n".join(lines))
    return found


def fields(paragraph: str) -> dict[str, str]:
    """A paragraph's fields by lower-case name; a continuation line is added to its field's value."""
    found: dict[str, str] = {}
    key = None
    for line in paragraph.splitlines():
        if line[0] in " \t":
            if key is not None:
                found[key] += "\n" + line.strip()
            continue
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            found[key] = value.strip()
    return found


def parse_status(status_text: str) -> tuple[Package, ...]:
    """Every paragraph with a `Package` field, whatever its status, in file order."""
    packages = []
    for paragraph in paragraphs(status_text):
        known = fields(paragraph)
        name = known.get("package")
        if not name:
            continue
        size_text = known.get("installed-size", "").strip()
        size = int(size_text) * 1024 if size_text.isdigit() else None
        packages.append(Package(name, known.get("version", ""), size, known.get("status", ""), known.get("architecture", "")))
    return tuple(packages)


def installed_packages(status_text: str) -> tuple[Package, ...]:
    """The packages whose Status is `<want> <flag> installed` (not config-files, half-installed, ...)."""
    return tuple(p for p in parse_status(status_text) if p.status.split()[-1:] == ["installed"])
