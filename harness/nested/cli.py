"""The command line of scripts/nested-engine: `python -m harness.nested start|stop|status ...`."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from harness.nested.lifecycle import Probe, start, status_rows, stop
from harness.nested.plan import NestedEngine, Store
from harness.records.errors import HarnessError, NestedEngineError


@dataclass(frozen=True)
class Command:
    action: str  # start, stop, status
    engine: NestedEngine | None = None
    fresh: bool = False
    purge: bool = False


def parse_args(argv: Sequence[str]) -> Command:
    parser = argparse.ArgumentParser(
        prog="nested-engine",
        description="A second Docker Engine (Debian trixie's docker.io) inside a container of the host's Engine.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    start_parser = actions.add_parser("start", help="start NAME (idempotent); prints DOCKER_HOST=... once it answers")
    start_parser.add_argument("name")
    start_parser.add_argument("--store", choices=[store.value for store in Store], default=Store.OVERLAY2.value)
    start_parser.add_argument("--fresh", action="store_true", help="empty the inner Engine's data root first")
    stop_parser = actions.add_parser("stop", help="stop NAME and remove its container")
    stop_parser.add_argument("name")
    stop_parser.add_argument("--purge", action="store_true", help="also delete its data root")
    actions.add_parser("status", help="list the nested Engines")
    args = parser.parse_args(list(argv))
    if args.action == "start":
        return Command("start", NestedEngine(args.name, Store(args.store)), fresh=args.fresh)
    if args.action == "stop":
        return Command("stop", NestedEngine(args.name), purge=args.purge)
    return Command("status")


def main(argv: Sequence[str] | None = None) -> int:
    from harness.engine import DockerEngine  # the SDK is loaded only when a command runs

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def connect(docker_host: str) -> Probe:
        return DockerEngine.connect(docker_host, timeout_s=5)

    try:
        command = parse_args(sys.argv[1:] if argv is None else argv)
        host = DockerEngine.from_env()
        if command.action == "start":
            assert command.engine is not None
            started = time.monotonic()
            facts = start(host, command.engine, connect, say, fresh=command.fresh)
            say(
                f"{command.engine.name}: Engine {facts.version} (API {facts.api_version}), image store: {facts.image_store}, "
                f"answering after {time.monotonic() - started:.1f} s"
            )
            print(f"DOCKER_HOST={command.engine.docker_host}", flush=True)
        elif command.action == "stop":
            assert command.engine is not None
            stop(host, command.engine, say, purge=command.purge)
        else:
            rows = status_rows(host, connect)
            if not rows:
                print("no nested Engine is running")
            for row in rows:
                print("  ".join(row))
    except NestedEngineError as error:
        print(f"error: {error}", file=sys.stderr)
        if error.log_tail:
            print(f"--- the last lines of its log ---\n{error.log_tail.rstrip()}", file=sys.stderr)
        return 1
    except (HarnessError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
