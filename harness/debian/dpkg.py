"""dpkg's package database (`/var/lib/dpkg/status`) of an image's final file system.

The save-stream reader captures the content of `/var/lib/dpkg/status` from every
layer that writes it; the analysis parses the copy the final merged view shows.
"""

from __future__ import annotations

from dataclasses import dataclass

DPKG_STATUS = "/var/lib/dpkg/status"


@dataclass(frozen=True)
class Package:
    """One package of the status file; `installed_size_bytes` is `Installed-Size` (KiB) * 1024."""

    name: str
    version: str
    installed_size_bytes: int | None
    status: str
    architecture: str = ""


def _paragraphs(text: str) -> list[dict[str, str]]:
    paragraphs: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                paragraphs.append(fields)
            fields, key = {}, None
        elif line[0] in " \t":
            if key is not None:
                fields[key] += "\n" + line.strip()
        else:
            name, sep, value = line.partition(":")
            if sep:
                key = name.strip().lower()
                fields[key] = value.strip()
    if fields:
        paragraphs.append(fields)
    return paragraphs


def parse_status(status_text: str) -> tuple[Package, ...]:
    """Every paragraph with a `Package` field, whatever its status, in file order."""
    packages = []
    for fields in _paragraphs(status_text):
        name = fields.get("package")
        if not name:
            continue
        size_text = fields.get("installed-size", "").strip()
        size = int(size_text) * 1024 if size_text.isdigit() else None
        packages.append(Package(name, fields.get("version", ""), size, fields.get("status", ""), fields.get("architecture", "")))
    return tuple(packages)


def installed_packages(status_text: str) -> tuple[Package, ...]:
    """The packages whose Status is `<want> <flag> installed` (not config-files, half-installed, ...)."""
    return tuple(p for p in parse_status(status_text) if p.status.split()[-1:] == ["installed"])
