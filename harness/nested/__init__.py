"""A second Docker Engine (Debian trixie's docker.io, Engine 26) inside a container of the host's Engine.

`bash scripts/nested-engine start NAME [--store containerd|overlay2] [--fresh]`
starts one, with the containerd image store on or off, and prints
`DOCKER_HOST=unix:///run/hello-ladder/engines/NAME/docker.sock` once it answers;
`stop NAME [--purge]` stops it, `status` lists them.

How the container is made, and why:

- Not `privileged`: that asks for every capability, and where the host's
  bounding set lacks one (CAP_SYS_RESOURCE on these machines) the container
  cannot start ("unable to apply caps: operation not permitted").  The
  capabilities are named instead, those of `WANTED_CAPABILITIES` that the
  bounding set has, with seccomp and AppArmor unconfined, /proc and /sys
  neither masked nor read-only (the CLI's `systempaths=unconfined`), every
  device allowed, and the host's cgroup hierarchies mounted read-write.
- The inner data root is a bind mount of a host folder: overlayfs cannot use
  another overlayfs as its upper layer, and the data survives the container.
- The socket folder is a bind mount of a host folder, so the inner Engine's
  socket is a file on the host.
- The container has a network namespace of its own (the host Engine's default
  bridge), where the inner Engine keeps its own bridge and iptables rules:
  builds reach Debian's mirror through two NATs, and nothing of the inner
  Engine touches the host's network.  (With the host's network the inner
  Engine would have to run without a bridge, and builds would have no network.)
- The inner Engine's containers go under a cgroup parent of their own, not
  the host Engine's `docker`.

The package, one concern per module: `plan.py` (the names, paths,
daemon.json and the container's spec, all pure), `lifecycle.py` (start, wait,
stop, status, through `ServiceHost`, which harness.engine's `DockerEngine`
implements), `cli.py` (the command line `python -m harness.nested`).  None of
them imports the SDK.
"""

from harness.nested.lifecycle import ensure_image, start, status_rows, stop, wait_until_answering
from harness.nested.plan import (
    ENGINE_LABEL,
    IMAGE,
    STORE_LABEL,
    NestedEngine,
    Store,
    bounding_set,
    capabilities,
    container_spec,
    daemon_config,
)

__all__ = [
    "ENGINE_LABEL",
    "IMAGE",
    "STORE_LABEL",
    "NestedEngine",
    "Store",
    "bounding_set",
    "capabilities",
    "container_spec",
    "daemon_config",
    "ensure_image",
    "start",
    "status_rows",
    "stop",
    "wait_until_answering",
]
