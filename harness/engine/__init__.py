"""The adapter: the one package that talks to the Docker Engine.

Everything goes through the Docker SDK for Python (`docker.from_env()`, so
DOCKER_HOST and remote Engines work); nothing shells out to the CLI.  The
SDK's exceptions are converted to the harness's own here and nowhere else
(`harness.engine.connection.converted`).  `DockerEngine` implements
`harness.records.engine.Engine`, the narrow interface the rest of the
harness uses (and imports from there, not here); like the SDK's own
`APIClient`, it is put together from one part per resource.
"""

from __future__ import annotations

from harness.engine.build import Builds
from harness.engine.containers import Containers
from harness.engine.images import Images
from harness.engine.services import Services


class DockerEngine(Images, Builds, Containers, Services):
    """`Engine` backed by a real Docker Engine."""
