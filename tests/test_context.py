import io
import tarfile
from pathlib import Path

from harness.stages.context import DOCKERFILE_NAME, build_context


def members(context: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(context)) as tar:
        return {member.name: member for member in tar.getmembers()}


def test_context_holds_the_source_and_the_dockerfile(tmp_path: Path) -> None:
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    (tmp_path / "Makefile").write_text("hello: main.c\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"\0")
    found = members(build_context(tmp_path, "FROM scratch\n"))
    assert set(found) == {"main.c", "Makefile", DOCKERFILE_NAME}
    assert all(member.mtime == 0 and member.uid == 0 for member in found.values())


def test_same_source_same_context(tmp_path: Path) -> None:
    (tmp_path / "main.c").write_text("x")
    first = build_context(tmp_path, "FROM scratch\n")
    (tmp_path / "main.c").touch()  # a new mtime must not change the build cache key
    assert build_context(tmp_path, "FROM scratch\n") == first
