"""The adapter's connection to an Engine: the client its parts speak through, and the conversion of the SDK's errors."""

from __future__ import annotations

import contextlib
import functools
import socket
import urllib.parse
from collections.abc import Iterator
from typing import Any, Self

import docker
import docker.errors
import requests
import requests.exceptions
import urllib3.exceptions

from harness.records.engine import EngineFacts
from harness.records.errors import EngineError, EngineUnavailable


@contextlib.contextmanager
def converted(subject: str) -> Iterator[None]:
    """Turn the SDK's failures into one-line harness errors."""
    try:
        yield
    except (requests.exceptions.ConnectionError, ConnectionError) as error:
        raise EngineUnavailable(f"{subject}: {first_line(error)}") from error
    except (urllib3.exceptions.ProtocolError, requests.exceptions.ChunkedEncodingError) as error:
        # A stream (a build's, a save's) cut off mid-way: the Engine went away under it, killed, say.
        raise EngineUnavailable(f"{subject}: the Engine's connection broke off ({first_line(error)})") from error
    except docker.errors.APIError as error:
        raise EngineError(f"{subject}: {error.explanation or error}") from error
    except docker.errors.DockerException as error:
        raise EngineUnavailable(f"{subject}: {first_line(error)}") from error


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class Connection:
    """A client of one Engine, and what the adapter's parts (images, builds, containers, services) ask of it alike."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._client = client
        # The responses of the builds under way, by the tag each builds (see `close`): the SDK's low-level
        # client is a requests Session, whose response hook sees each build's response before its stream is read.
        self._building: dict[str, requests.Response] = {}
        client.api.hooks["response"].append(self._note_build)

    def _note_build(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        url = urllib.parse.urlsplit(response.request.url or "")
        if url.path.endswith("/build"):
            tag = urllib.parse.parse_qs(url.query).get("t", [""])[0]
            self._building[tag] = response
        return response

    @classmethod
    def from_env(cls) -> Self:
        with converted("connecting"):
            client = docker.from_env()
            client.ping()
        return cls(client)

    @classmethod
    def connect(cls, host: str, timeout_s: float = 60) -> Self:
        """An Engine at `host`, as DOCKER_HOST names one: `unix:///path`, `tcp://host:port` or `ssh://user@host`."""
        with converted(f"connecting to {host}"):
            client = docker.DockerClient(base_url=host, timeout=int(timeout_s))
            client.ping()
        return cls(client)

    def close(self) -> None:
        """Cancel the builds under way in other threads, and close the connections.

        Closing a session leaves the connections in use open, and closing a socket
        does not wake a thread blocked reading it: each build's connection is shut
        down instead, which ends the reading thread's wait and, as for Ctrl-C in a
        serial run, tells the Engine to cancel the build.
        """
        for response in list(self._building.values()):
            shut_down(response)
        self._client.api.close()

    def describe(self) -> EngineFacts:
        with converted("version"):
            version = self._client.version()
            info = self._client.info()
        return engine_facts(version, info)

    def identity(self) -> str:
        """The Engine's own ID (`docker info`), which keys the ledger: two Engines never share one."""
        with converted("identifying the Engine"):
            return str(self._client.info()["ID"])

    @functools.cached_property
    def _is_podman(self) -> bool:
        return self.describe().product == "Podman"


def shut_down(response: requests.Response) -> None:
    """Shut a streamed response's socket down (waking a thread blocked reading it), then close it."""
    raw = getattr(response, "raw", None)
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    if sock is None:
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    with contextlib.suppress(OSError, AttributeError):
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        response.close()


def engine_facts(version: dict[str, Any], info: dict[str, Any]) -> EngineFacts:
    """Name the Engine, its image store and its builder from GET /version and GET /info."""
    components = [str(c.get("Name", "")) for c in version.get("Components") or ()]
    podman = any("podman" in name.lower() for name in components)
    driver = str(info.get("Driver") or "unknown")
    status = {str(key): str(value) for key, value in info.get("DriverStatus") or () if key}
    if "io.containerd.snapshotter" in status.get("driver-type", ""):
        # Docker's containerd image store (the default from Engine 29): Driver names the snapshotter.
        store = f"containerd ({driver} snapshotter)"
    elif podman:
        store = f"containers/storage ({driver})"
    else:
        store = driver
    return EngineFacts(
        product="Podman" if podman else "Docker Engine",
        version=str(version.get("Version") or "unknown"),
        api_version=str(version.get("ApiVersion") or "unknown"),
        image_store=store,
        # The SDK's build call is the API's classic build (no BuildKit session); Podman serves it with Buildah.
        builder="Buildah (Podman's Docker-compatible API)" if podman else "classic builder (API build, version 1)",
    )
