"""Builds: a Dockerfile and its context sent to the Engine's build endpoint, its stream read as it comes."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import docker.errors

from harness.engine.connection import Connection, converted
from harness.records.buildlog import BuildOutput
from harness.records.engine import BuildRecord
from harness.stages.context import labels_in_dockerfile


class Builds(Connection):
    def build(
        self,
        stage: str,
        context: bytes,
        dockerfile: str,
        *,
        tag: str,
        build_args: dict[str, str],
        labels: dict[str, str],
        no_cache: bool = False,
        on_line: Callable[[str], None] | None = None,
        platform: str | None = None,
    ) -> BuildRecord:
        output = BuildOutput(stage, on_line)
        started = time.monotonic()
        if self._is_podman:
            context, labels = labels_in_dockerfile(context, dockerfile, labels), {}
        with converted(f"{stage}: build"):
            try:
                stream = self._client.api.build(
                    fileobj=io.BytesIO(context),
                    custom_context=True,
                    dockerfile=dockerfile,
                    tag=tag,
                    buildargs=build_args,
                    labels=labels,
                    rm=True,
                    forcerm=True,  # remove intermediate containers even when a step fails
                    nocache=no_cache,
                    pull=False,
                    decode=True,
                    # The Engine then refuses a base of another platform instead of building on it.
                    platform=platform,
                )
                for chunk in stream:
                    output.read(chunk)
            except docker.errors.APIError as error:
                # The Engine refuses some Dockerfiles outright (a parse error, an unknown instruction).
                raise output.failed(str(error.explanation or error)) from error
            except KeyboardInterrupt:
                # Closing the connection is what tells the Engine to cancel the build
                # (and, with forcerm, to remove the step's container).  Podman 4.3 does not
                # notice: it finishes the running step, then drops the build.
                self._client.api.close()
                raise
            finally:
                self._building.pop(tag, None)
        return output.record(time.monotonic() - started)
