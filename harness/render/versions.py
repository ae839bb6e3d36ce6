"""The versions of the libraries that read and measure the images, recorded in results.json beside the Engine's."""

from __future__ import annotations

from importlib import metadata

# The SDK that talks to the Engine, the ELF reader of the resolver, the table renderer, the zstd reader of layers.
MEASURING = ("docker", "pyelftools", "tabulate", "zstandard")


def measuring_versions() -> tuple[tuple[str, str], ...]:
    """(distribution, version) of each of MEASURING, "not installed" where it is not."""
    found = []
    for name in MEASURING:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            found.append((name, "not installed"))
    return tuple(found)
