"""A fake Engine for unit tests: it records what the harness asked and answers from a script."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.engine.context import context_stream
from harness.records.engine import (
    BuildContext,
    BuildRecord,
    EngineContainer,
    EngineFacts,
    EngineImage,
    EngineVolume,
    ImageInfo,
    ImageOrigin,
    Instrumentation,
    InstrumentedRun,
    LayerRecord,
    RunPolicy,
    RunResult,
)
from harness.records.errors import BuildFailed, EngineError, EngineUnavailable


@dataclass
class FakeEngine:
    """Implements harness.records.engine.Engine without a Docker Engine."""

    images: dict[str, ImageInfo] = field(default_factory=dict)
    pullable: set[str] = field(default_factory=set)
    failing_builds: dict[str, str] = field(default_factory=dict)  # stage -> reason
    outputs: dict[str, RunResult] = field(default_factory=dict)  # tag -> result
    built: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # (tag, dockerfile text, labels)
    build_calls: list[dict[str, object]] = field(default_factory=list)  # the tag, build arguments and platform of each build
    ran: list[tuple[str, tuple[str, ...], RunPolicy, dict[str, str]]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # image IDs removed
    imported: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    loaded: list[bytes] = field(default_factory=list)  # the archives given to load_image
    traces: dict[str, str] = field(default_factory=dict)  # traced command, joined by spaces -> strace's output
    volumes: list[EngineVolume] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)  # the images given to save_image
    # Images whose every tag has moved or gone: the Engine keeps them, untagged, until removed.
    untagged: dict[str, ImageInfo] = field(default_factory=dict)
    # Containers no label finds: a build step's, kept by an Engine killed during the build.
    step_containers: list[EngineContainer] = field(default_factory=list)

    def describe(self) -> EngineFacts:
        return EngineFacts("Docker Engine", "0.0-fake", "1.41", "overlay2", "classic builder (API build, version 1)")

    def identity(self) -> str:
        # The Engine's locks are machine-wide files keyed by this (harness.custody.enginelock): one per test
        # process, so a suite running beside this one (another namespace, another clone) never holds them.
        return f"FAKE:ENGINE:{os.getpid()}"

    def has_image(self, ref: str) -> bool:
        return ref in self.images or ref in self.untagged or any(info.image_id == ref for info in self.images.values())

    def image_info(self, ref: str) -> ImageInfo:
        if ref in self.images:
            return self.images[ref]
        found = next((info for info in self.images.values() if info.image_id == ref), self.untagged.get(ref))
        if found is None:
            raise EngineError(f"{ref}: No such image")
        return found

    def pull(self, ref: str) -> None:
        if ref not in self.pullable:
            raise EngineError(f"pulling {ref}: no registry here")
        self.images[ref] = _image(1000)

    def import_rootfs(self, tarball: Path, ref: str, labels: dict[str, str]) -> str:
        self.imported.append((ref, labels))
        self.images[ref] = _image(tarball.stat().st_size)
        return f"sha256:{ref}"

    def build(
        self,
        stage: str,
        context: BuildContext,
        *,
        tag: str,
        build_args: dict[str, str],
        labels: dict[str, str],
        no_cache: bool = False,
        on_line: Callable[[str], None] | None = None,
        platform: str | None = None,
        step_timeout_s: float | None = None,
    ) -> BuildRecord:
        with context_stream(context) as sent:  # as the Engine is sent it: its length stands for the image's size
            context_bytes = sent.read()
        text = context.dockerfile_text
        self.built.append((tag, text, labels))
        # The classic builder's lines, as a person following the build sees them: each instruction's step line,
        # then (but for a FROM, whose line names the base) the image it committed, which the Engine keeps.
        joined = re.sub(r"\\\n", " ", text)  # continuation lines are one instruction
        instructions = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        for number, instruction in enumerate(instructions, 1):
            lines = [f"Step {number}/{len(instructions)} : {instruction}"]
            if not instruction.upper().startswith(("FROM ", "ARG ")):
                short = hashlib.sha256(f"{stage}\n{number}\n{instruction}".encode()).hexdigest()[:12]
                self.images.setdefault(short, dataclasses.replace(_image(number), image_id=f"sha256:{short}"))
                lines.append(f" ---> {short}")
            for line in lines:
                if on_line is not None:
                    on_line(line)
        self.build_calls.append(
            {"tag": tag, "build_args": dict(build_args), "platform": platform, "step_timeout_s": step_timeout_s}
        )
        if stage in self.failing_builds:
            raise BuildFailed(stage, "RUN make", ("Step 3/3 : RUN make", "make: *** No rule"), self.failing_builds[stage])
        # The image's ID follows from what it is built from, as the Engine's does (the same inputs: the cache's image).
        inputs = json.dumps([text, sorted(labels.items()), sorted(build_args.items()), platform, len(context_bytes)])
        image_id = f"sha256:{hashlib.sha256(inputs.encode()).hexdigest()}"
        self.images[tag] = dataclasses.replace(_image(len(context_bytes)), image_id=image_id)
        return BuildRecord(image_id=image_id, seconds=0.5, fully_cached=False)

    def run(self, image: str, command: tuple[str, ...], policy: RunPolicy, labels: dict[str, str]) -> RunResult:
        tags = [tag for tag, info in self.images.items() if info.image_id == image]
        self.ran.append((tags[-1] if tags else image, command, policy, labels))
        for ref in (image, *tags):
            if ref in self.outputs:
                return self.outputs[ref]
        return RunResult(stdout="hello!\n", stderr="", exit_code=0)

    def run_instrumented(
        self, image: str, command: tuple[str, ...], policy: RunPolicy, labels: dict[str, str], tools: Instrumentation
    ) -> InstrumentedRun:
        """As `run`; the tools' output is `traces` of the program after the tracer's `--`.

        A program with no trace given writes what strace writes of any program
        that started: its execve; one that did not start (a non-zero exit) writes nothing.
        """
        result = self.run(image, command, policy, labels)
        program = command[command.index("--") + 1 :] if "--" in command else ()
        text = self.traces.get(" ".join(program))
        if text is None and program and result.exit_code == 0:
            text = f'execve("{program[0]}", {list(program)!r}, 0x1 /* 0 vars */) = 0\n'.replace("'", '"')
        return InstrumentedRun(result, (("trace.1", text.encode()),) if text is not None else ())

    def list_images(self) -> tuple[EngineImage, ...]:
        by_id: dict[str, list[str]] = {image_id: [] for image_id in self.untagged}
        for tag, info in self.images.items():
            by_id.setdefault(info.image_id, []).append(tag)
        return tuple(EngineImage(image_id, tuple(tags)) for image_id, tags in by_id.items())

    def tag_image(self, image_id: str, ref: str) -> None:
        held = self.images.get(ref)
        self.images[ref] = self.image_info(image_id)
        self.untagged.pop(self.images[ref].image_id, None)
        if held is not None and held.image_id != image_id:
            self._keep_if_untagged(held)

    def untag_image(self, image_id: str, ref: str) -> None:
        if ref in self.images and self.images[ref].image_id == image_id:
            self._keep_if_untagged(self.images.pop(ref))

    def _keep_if_untagged(self, info: ImageInfo) -> None:
        if not any(other.image_id == info.image_id for other in self.images.values()):
            self.untagged[info.image_id] = info

    def remove_image(self, image_id: str) -> None:
        self.removed.append(image_id)
        self.untagged.pop(image_id, None)
        for tag in [tag for tag, info in self.images.items() if info.image_id == image_id]:
            del self.images[tag]

    def list_containers(self, label_key: str) -> tuple[EngineContainer, ...]:
        return ()

    def find_containers(self, container_ids: tuple[str, ...]) -> tuple[EngineContainer, ...]:
        return tuple(c for c in self.step_containers if any(c.container_id.startswith(i) for i in container_ids))

    def remove_container(self, container_id: str) -> None:
        self.step_containers = [c for c in self.step_containers if c.container_id != container_id]

    def list_volumes(self, label_key: str) -> tuple[EngineVolume, ...]:
        return tuple(volume for volume in self.volumes if label_key in volume.labels)

    def remove_volume(self, name: str) -> None:
        self.volumes = [volume for volume in self.volumes if volume.name != name]

    def image_origin(self, ref: str) -> ImageOrigin:
        # A source built after its base: its own time is the last step's, its base's the import's.
        return ImageOrigin(1_700_000_000, "amd64", "linux", base_created=1_600_000_000)

    def load_image(self, archive: bytes | Iterable[bytes]) -> str:
        """Tag each image the archive's manifest names; the id is the config's file name, as the Engine's is."""
        archive = archive if isinstance(archive, bytes) else b"".join(archive)
        self.loaded.append(archive)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            member = tar.extractfile("manifest.json")
            assert member is not None
            (manifest,) = json.load(member)
        image_id = "sha256:" + manifest["Config"].removesuffix(".json")
        for tag in manifest["RepoTags"]:
            self.images[tag] = dataclasses.replace(_image(len(archive)), image_id=image_id)
        return image_id

    def save_image(self, image: str) -> Iterator[bytes]:
        """Every image saves as one layer holding one file of the image's size (zeros, made on the fly)."""
        from .layers.test_layers_build import big_zero_save_chunks

        self.saved.append(image)
        yield from big_zero_save_chunks(self.image_info(image).engine_size_bytes)

    @contextlib.contextmanager
    def export_filesystem(self, image: str, labels: dict[str, str]) -> Iterator[Iterator[bytes]]:
        """Every image's file system is the same small root, holding what the repository's [slim] stages read."""
        yield iter([_slim_sources_root_tar()])


class LosingEngine(FakeEngine):
    """A fake Engine that stops answering at the n-th build."""

    def __init__(self, lose_at: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.lose_at = lose_at

    def build(self, stage: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if len(self.built) + 1 == self.lose_at:
            raise EngineUnavailable("connection refused")
        return super().build(stage, *args, **kwargs)  # type: ignore[arg-type]


@functools.cache
def _slim_sources_root_tar() -> bytes:
    """The host's `true` as /hello; the host's python3 with its closure, a /hello.py and an empty /imports.txt;
    and for every other [slim] stage of the repository, `true` as its binary and a small file for each extra."""
    from harness.elf import Resolver

    resolver = Resolver(Path("/"))
    true, python = resolver.resolve("/usr/bin/true"), resolver.resolve("/usr/bin/python3")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in dict.fromkeys([*true.files, *python.files]):
            name = "hello" if path == true.path else str(path).lstrip("/")
            tar.add(str(path), arcname=name, recursive=False)
        files = {"hello.py": b'print("hello!")\n', "imports.txt": b""}
        for binary, extras in _other_slim_sources(set(tar.getnames()) | set(files)):
            tar.add(str(true.real), arcname=binary, recursive=False)
            files.update(dict.fromkeys(extras, b"x\n"))
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _other_slim_sources(present: set[str]) -> list[tuple[str, list[str]]]:
    """(binary, extras) of each [slim] stage of the repository whose binary the root does not hold yet."""
    from harness.stages.stage import discover, load_stage

    from .conftest import REPO_ROOT

    found = []
    for stage in map(load_stage, discover(REPO_ROOT / "stages")):
        if stage.slim is None:
            continue
        binary = str(stage.slim.binary).lstrip("/")
        if binary in present:
            continue
        present.add(binary)
        # An extra that holds a file already (Java's /jre its java, /app Node's hello.js) is a folder.
        names = [str(path).lstrip("/") for path in stage.slim.extras]
        extras = [name for name in names if not any(held == name or held.startswith(f"{name}/") for held in present)]
        found.append((binary, extras))
        present |= set(extras)
    return found


def _image(size: int) -> ImageInfo:
    # As the Engine answers: the whole history, not yet lined up with the layers (ImageInfo.aligned).
    return ImageInfo(
        image_id="sha256:fake",
        engine_size_bytes=size,
        listed_size_bytes=size,
        layer_count=1,
        layers=(),
        history=(LayerRecord(size, "COPY x"),),
    )


# A stand-in for mmdebstrap that writes 2,048 zero bytes to its last argument, the tarball.
MMDEBSTRAP_WRITES_2048_BYTES = '#!/bin/sh\nfor last; do :; done\nhead -c 2048 /dev/zero > "$last"\n'


def fake_mmdebstrap(folder: Path, script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put an `mmdebstrap` running `script` first on PATH, for the bootstrap path without a network."""
    fake = folder / "mmdebstrap"
    fake.write_text(script)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
