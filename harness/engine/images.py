"""Images: asking the Engine about them, and pulling, importing, saving, loading, tagging and removing them."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import cast

import docker.errors

from harness.engine.connection import Connection, converted
from harness.records.engine import EngineImage, ImageInfo, ImageOrigin, LayerRecord
from harness.records.errors import EngineError, ImageInUse
from harness.slim.imagewrite import parse_created, parse_env


class Images(Connection):
    def has_image(self, ref: str) -> bool:
        with converted(ref):
            try:
                self._client.images.get(ref)
            except docker.errors.ImageNotFound:
                return False
        return True

    def image_info(self, ref: str) -> ImageInfo:
        with converted(ref):
            image = self._client.images.get(ref)
            history = image.history()
        layer_count = len(image.attrs.get("RootFS", {}).get("Layers", ()))
        # The Engine lists history newest first, one entry per entry of the config's history; which
        # of them added a layer only the config's `empty_layer` flags say (ImageInfo.aligned).
        entries = tuple(LayerRecord(int(entry.get("Size") or 0), entry.get("CreatedBy") or "") for entry in reversed(history))
        return ImageInfo(
            image_id=str(image.id),
            engine_size_bytes=int(image.attrs["Size"]),
            listed_size_bytes=self._listed_size(ref, str(image.id)),
            layer_count=layer_count,
            layers=(),
            history=entries,
        )

    def _listed_size(self, ref: str, image_id: str) -> int | None:
        """The size `docker images` prints: the list endpoint's, which differs from inspect's on some stores."""
        with converted(ref):
            listed = self._client.api.images(filters={"reference": ref}) if ":" in ref else []
            if not any(entry.get("Id") == image_id for entry in listed):
                listed = self._client.api.images()
        return next((int(entry["Size"]) for entry in listed if entry.get("Id") == image_id and "Size" in entry), None)

    def pull(self, ref: str) -> None:
        repository, tag = split_reference(ref)
        with converted(f"pulling {ref}"):
            self._client.images.pull(repository, tag=tag)

    def import_rootfs(self, tarball: Path, ref: str, labels: dict[str, str]) -> str:
        """Import a root file system as `ref`; return the new image's ID (what the ledger records)."""
        repository, tag = split_reference(ref)
        changes = [f'LABEL "{key}"="{value}"' for key, value in sorted(labels.items())]
        changes.append('CMD ["bash"]')  # as the official Debian images do
        with converted(f"importing {ref}"):
            # The import's own answer names the image it made; reading the tag back could name another's.
            # The whole reference goes in `repo`, as the docker CLI sends it: Podman's compat import
            # ignores the separate `tag` parameter and would name the image `:latest`.
            answer = self._client.api.import_image_from_file(str(tarball), repository=f"{repository}:{tag}", changes=changes)
        image_id = _imported_id(answer)
        if image_id is None:
            # Never fall back on the tag: recording another's image as the project's would let `clean` remove it.
            raise EngineError(f"importing {ref}: the Engine's answer names no image: {str(answer).strip()[:200]}")
        return image_id

    @contextlib.contextmanager
    def export_filesystem(self, image: str, labels: dict[str, str]) -> Iterator[Iterator[bytes]]:
        """The image's merged file system as a tar stream, from a container that is never started."""
        with converted(f"exporting {image}"):
            # A command is required to create a container, even one never started.
            container = self._client.containers.create(image, command=["/nonexistent"], labels=labels, network_mode="none")
        try:
            with converted(f"exporting {image}"):
                # The SDK streams the tar in chunks (its stubs say `str`).
                yield cast(Iterator[bytes], container.export(chunk_size=1024 * 1024))
        finally:
            with contextlib.suppress(docker.errors.NotFound), converted(f"removing the export container of {image}"):
                container.remove(force=True)

    def save_image(self, image: str) -> Iterator[bytes]:
        """The image as `docker save` writes it (layer tars, config, manifest), as a stream of chunks."""
        with converted(f"saving {image}"):
            chunks = self._client.images.get(image).save(chunk_size=1024 * 1024, named=False)
        with converted(f"saving {image}"):
            yield from chunks

    def load_image(self, archive: bytes | Iterable[bytes]) -> str:
        """Load a `docker save` archive (POST /images/load), whole or streamed as chunks; the id of its one image.

        The Engine answers `Loaded image: <ref>` for a tagged image and `Loaded
        image ID: <id>` for an untagged one; a reference is looked up for its id
        (on the containerd store that is the manifest's digest).
        """
        loaded: list[str] = []
        with converted("loading an image"):
            for message in self._client.api.load_image(archive):
                if "error" in message:
                    raise EngineError(f"loading an image: {message.get('error')}")
                for line in str(message.get("stream", "")).splitlines():
                    for prefix in ("Loaded image ID: ", "Loaded image: "):
                        if line.startswith(prefix):
                            loaded.append(line.removeprefix(prefix).strip())
                            break
            ids = {ref if ref.startswith("sha256:") else str(self._client.images.get(ref).id) for ref in loaded}
        if len(ids) != 1:
            raise EngineError(f"loading an image: expected one image, the Engine loaded {len(ids)}: {sorted(loaded)}")
        return ids.pop()

    def list_images(self) -> tuple[EngineImage, ...]:
        """Every top-level image, with its tags."""
        with converted("listing images"):
            return tuple(
                EngineImage(str(entry["Id"]), tuple(t for t in entry.get("RepoTags") or () if t != "<none>:<none>"))
                for entry in self._client.api.images()
            )

    def tag_image(self, image_id: str, ref: str) -> None:
        repository, tag = split_reference(ref)
        with converted(f"tagging {image_id} as {ref}"):
            self._client.api.tag(image_id, repository, tag)

    def untag_image(self, image_id: str, ref: str) -> None:
        """Remove the tag `ref` if it still names `image_id` (another may have taken it since)."""
        with converted(f"untagging {ref}"), _never_forced(ref):
            if self._client.api.inspect_image(ref)["Id"] != image_id:
                return
            self._client.api.remove_image(ref, force=False)

    def remove_image(self, image_id: str) -> None:
        """Delete an image by ID (never forced: a child image or a container keeps it)."""
        with converted(f"removing {image_id}"), _never_forced(image_id):
            self._client.api.remove_image(image_id, force=False)

    def image_origin(self, ref: str) -> ImageOrigin:
        with converted(ref):
            image = self._client.images.get(ref)
            history = image.history()  # newest first; each entry's Created in whole seconds
        attrs = image.attrs
        return ImageOrigin(
            parse_created(str(attrs["Created"])),
            str(attrs.get("Architecture") or "amd64"),
            str(attrs.get("Os") or "linux"),
            parse_env((attrs.get("Config") or {}).get("Env")),
            base_created=int(history[-1]["Created"]) if history and history[-1].get("Created") else None,
        )


@contextlib.contextmanager
def _never_forced(ref: str) -> Iterator[None]:
    """A removal of `ref`: gone already is done; in use (409: a child image, a container) is ImageInUse."""
    try:
        yield
    except docker.errors.ImageNotFound:
        return
    except docker.errors.APIError as error:
        if error.status_code == 409:
            raise ImageInUse(ref, str(error.explanation or error)) from error
        raise


def _imported_id(answer: object) -> str | None:
    """The image ID in an import's answer: JSON lines, the last of which says `{"status": "sha256:..."}`."""
    for line in reversed(str(answer).splitlines()):
        with contextlib.suppress(ValueError):
            status = str(json.loads(line).get("status", ""))
            if status.startswith("sha256:"):
                return status
    return None


def split_reference(ref: str) -> tuple[str, str]:
    """`debian:bookworm` -> (`debian`, `bookworm`); a reference without a tag means `latest`."""
    name, _, last = ref.rpartition("/")
    if ":" not in last:
        return ref, "latest"
    repository, _, tag = ref.rpartition(":")
    return repository, tag
