import io
import tarfile
import tracemalloc
from pathlib import Path
from typing import BinaryIO

import pytest

from harness.custody.ledger import ROLE_TEST
from harness.custody.made import Made
from harness.engine import DockerEngine
from harness.engine.context import context_stream
from harness.records import labels
from harness.records.engine import BuildContext
from harness.run.measure import analyse_image
from harness.stages.context import DOCKERFILE_NAME


def members(context: BinaryIO) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=context, mode="r|") as tar:
        return {member.name: member for member in tar}


def test_context_holds_the_source_and_the_dockerfile(tmp_path: Path) -> None:
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    (tmp_path / "Makefile").write_text("hello: main.c\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"\0")
    with context_stream(BuildContext(tmp_path, "FROM scratch\n")) as context:
        found = members(context)
    assert set(found) == {"main.c", "Makefile", DOCKERFILE_NAME}
    assert all(member.mtime == 0 and member.uid == 0 for member in found.values())


def test_same_source_same_context(tmp_path: Path) -> None:
    (tmp_path / "main.c").write_text("x")
    first = context_stream(BuildContext(tmp_path, "FROM scratch\n")).read()
    (tmp_path / "main.c").touch()  # a new mtime must not change the build cache key
    assert context_stream(BuildContext(tmp_path, "FROM scratch\n")).read() == first


def test_dockerignore_is_read_with_dockers_own_rules(tmp_path: Path) -> None:
    """Globs, `**`, exceptions with `!`, comments; the .dockerignore itself is not sent."""
    for name in ("main.c", "notes.md", "build/out.o", "build/keep.txt", "node_modules/a/index.js", "src/deep/x.tmp"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / ".dockerignore").write_text(
        "# what the build never needs\n*.md\nbuild\n!build/keep.txt\nnode_modules\n**/*.tmp\n"
    )
    with context_stream(BuildContext(tmp_path, "FROM scratch\n")) as context:
        found = {name for name, member in members(context).items() if member.isreg()}
    assert found == {"main.c", "build/keep.txt", DOCKERFILE_NAME}


def test_a_large_ignored_file_is_never_read_and_a_large_context_is_not_held_in_memory(tmp_path: Path) -> None:
    big = 64 << 20
    (tmp_path / "main.c").write_text("int main;\n")
    (tmp_path / "target").mkdir()
    with (tmp_path / "target" / "huge.bin").open("wb") as handle:
        handle.truncate(big)  # sparse: costs no disk
    (tmp_path / ".dockerignore").write_text("target\n")
    with context_stream(BuildContext(tmp_path, "FROM scratch\n")) as context:
        assert set(members(context)) == {"main.c", DOCKERFILE_NAME}
        assert context.seek(0, io.SEEK_END) < 64 * 1024

    (tmp_path / ".dockerignore").unlink()
    tracemalloc.start()
    try:
        with context_stream(BuildContext(tmp_path, "FROM scratch\n")) as context:
            size = context.seek(0, io.SEEK_END)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > big  # sent when nothing ignores it ...
    assert peak < 8 << 20, peak  # ... from a file, never whole in memory


@pytest.mark.docker
def test_on_a_real_engine_the_ignored_file_never_arrives(
    tmp_path: Path, engine: DockerEngine, made: Made, cleanup_namespace: str
) -> None:
    """`COPY . /context/` takes all the Engine was sent: the source, not the 64 MiB file .dockerignore names."""
    (tmp_path / "main.c").write_text("int main;\n")
    (tmp_path / "target").mkdir()
    with (tmp_path / "target" / "huge.bin").open("wb") as handle:
        handle.truncate(64 << 20)
    (tmp_path / ".dockerignore").write_text("target\n")
    tag = f"{cleanup_namespace}/dockerignore:test"
    context = BuildContext(tmp_path, "FROM scratch\nCOPY . /context/\n")
    built = engine.build("dockerignore", context, tag=tag, build_args={}, labels=labels.image(cleanup_namespace))
    made.ledger.record_image(built.image_id, ROLE_TEST, (tag,), cleanup_namespace)
    analysis = analyse_image(engine, built.image_id, wire=False)
    [layer] = analysis.layers
    assert {path.path.lstrip("/") for path in layer.largest} == {"context/main.c", f"context/{DOCKERFILE_NAME}"}
    assert analysis.headline_bytes < 1024
