from pathlib import Path

import pytest

from harness.records.errors import StageConfigError
from harness.stages.stage import DEFAULT_USER, WhenBaseMissing, discover, load_stage

from .conftest import REPO_ROOT

VALID = """
title = "Scratch"
changes = "only the binary"
step = "4. Only include what you need"
article_size = "8.64kB"
command = ["/hello"]

[expect]
failure = "no such file or directory"
"""


def make_stage(root: Path, name: str = "06-scratch-dynamic", toml: str = VALID, dockerfile: str = "FROM scratch\n") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "stage.toml").write_text(toml)
    (folder / "Dockerfile").write_text(dockerfile)
    return folder


def test_every_stage_in_the_repository_loads() -> None:
    stages = [load_stage(folder) for folder in discover(REPO_ROOT / "stages")]
    names = [stage.name for stage in stages]
    assert names == sorted(names)
    assert [name for name in names if name[2] == "-" and int(name[:2]) <= 7] == [
        "01-naive",
        "02-purge-layers",
        "03-single-layer",
        "04-slim-base",
        "05-alpine",
        "06-scratch-dynamic",
        "07-scratch-libs",
    ]
    by_name = {stage.name: stage for stage in stages}
    assert by_name["06-scratch-dynamic"].expect.failure == "no such file or directory"
    assert by_name["07-scratch-libs"].expect.stdout == "hello!\n"
    assert by_name["05-alpine"].when_base_missing is WhenBaseMissing.SKIP
    assert [by_name[n].article_size for n in ("01-naive", "02-purge-layers", "03-single-layer")] == ["235MB", "237MB", "218MB"]


def test_adding_a_folder_adds_a_stage(tmp_path: Path) -> None:
    make_stage(tmp_path, "06-scratch-dynamic")
    make_stage(tmp_path, "02b-extra")
    (tmp_path / "notes").mkdir()  # neither Dockerfile nor stage.toml: not a stage
    assert [folder.name for folder in discover(tmp_path)] == ["02b-extra", "06-scratch-dynamic"]


def test_a_valid_stage_parses_with_defaults(tmp_path: Path) -> None:
    stage = load_stage(make_stage(tmp_path))
    assert stage.command == ("/hello",)
    assert stage.article_size_bytes == 8640
    assert stage.user == DEFAULT_USER
    assert stage.timeout_s == 30.0
    assert stage.when_base_missing is WhenBaseMissing.ERROR
    assert stage.memory_bytes == 64 * 1024 * 1024
    assert load_stage(make_stage(tmp_path, "07-more-memory", 'memory = "256MB"\n' + VALID)).memory_bytes == 256_000_000


@pytest.mark.parametrize(
    ("toml", "field", "message"),
    [
        (VALID.replace('title = "Scratch"\n', ""), "title", "required"),
        (VALID.replace('["/hello"]', '"/hello"'), "command", "non-empty list of strings"),
        (VALID.replace('["/hello"]', "[]"), "command", "non-empty list of strings"),
        (VALID.replace('"8.64kB"', '"8.64 KiB"'), "article_size", "not a size"),
        (VALID + 'stdout = "hello!\\n"\n', "expect", "exactly one of stdout or failure"),
        (VALID.replace("failure", "failur"), "expect.failur", "unknown field"),
        (VALID + "timeout = -1\n", "expect.timeout", "unknown field"),  # after [expect], the key is inside it
        ("timeout = -1\n" + VALID, "timeout", "between 0 and 3600"),
        ("timeout = 0\n" + VALID, "timeout", "between 0 and 3600"),
        ("timeout = 3601\n" + VALID, "timeout", "between 0 and 3600"),
        ("timeout = true\n" + VALID, "timeout", "number of seconds"),
        ('timeout = "soon"\n' + VALID, "timeout", "number of seconds"),
        ('when_base_missing = "ignore"\n' + VALID, "when_base_missing", '"error" or "skip"'),
        ('titel = "typo"\n' + VALID, "titel", "unknown field"),
        (VALID + '[[anchor]]\nimage = "distroless cc"\nsize = "23MB"\n', "anchor.source", "required"),
        (VALID + '[[anchor]]\nimage = "x"\nsize = "23 MiB"\nsource = "y"\n', "anchor.size", "not a size"),
        (VALID + '[[anchor]]\nimage = "x"\nsize = "23MB"\nsource = "y"\nurl = "z"\n', "anchor.url", "unknown field"),
        ('anchor = "distroless"\n' + VALID, "anchor", "[[anchor]] tables"),
        ('memory = "32MB"\n' + VALID, "memory", "at least the default 64MiB"),
        ('memory = "3GB"\n' + VALID, "memory", 'at most "2GB"'),
        ("memory = 256\n" + VALID, "memory", "a size as docker prints it"),
    ],
)
def test_a_malformed_stage_toml_names_the_file_and_the_field(tmp_path: Path, toml: str, field: str, message: str) -> None:
    folder = make_stage(tmp_path, toml=toml)
    with pytest.raises(StageConfigError) as caught:
        load_stage(folder)
    assert caught.value.path == folder / "stage.toml"
    assert caught.value.field is not None and caught.value.field.startswith(field)
    assert message in caught.value.reason
    assert str(folder / "stage.toml") in str(caught.value)


def test_anchors_are_read_in_order(tmp_path: Path) -> None:
    anchors = '[[anchor]]\nimage = "a"\nsize = "23MB"\nsource = "s1"\n[[anchor]]\nimage = "b"\nsize = "32MB"\nsource = "s2"\n'
    stage = load_stage(make_stage(tmp_path, toml=VALID + anchors))
    assert [(a.image, a.size, a.source) for a in stage.anchors] == [("a", "23MB", "s1"), ("b", "32MB", "s2")]
    assert load_stage(make_stage(tmp_path, "07-other")).anchors == ()


def test_invalid_toml_syntax_is_a_clear_error(tmp_path: Path) -> None:
    folder = make_stage(tmp_path, toml='title = "unterminated\n')
    with pytest.raises(StageConfigError, match=r"stage\.toml: not valid TOML"):
        load_stage(folder)


def test_missing_dockerfile_and_bad_names_are_errors(tmp_path: Path) -> None:
    folder = make_stage(tmp_path, "08-no-dockerfile")
    (folder / "Dockerfile").unlink()
    with pytest.raises(StageConfigError, match="missing: every stage needs a Dockerfile"):
        load_stage(folder)
    with pytest.raises(StageConfigError, match="stage folder names look like"):
        load_stage(make_stage(tmp_path, "Eight"))


def test_new_stage_copies_a_stage_that_loads(tmp_path: Path) -> None:
    from harness.stages.stage import copy_stage

    make_stage(tmp_path, "06-scratch-dynamic")
    copy = copy_stage(tmp_path, "06", "12-my-stage")
    assert load_stage(copy).name == "12-my-stage"
    with pytest.raises(StageConfigError, match="already exists"):
        copy_stage(tmp_path, "06", "12-my-stage")
    with pytest.raises(StageConfigError, match="no such stage to copy"):
        copy_stage(tmp_path, "99", "13-other")


SLIM = VALID + '\n[slim]\nbinary = "/usr/bin/file"\n'


def test_slim_trace_and_probes(tmp_path: Path) -> None:
    stage = load_stage(make_stage(tmp_path, toml=SLIM + 'trace = true\nprobes = ["file /usr/bin/file", "file -v"]\n'))
    assert stage.slim is not None and stage.slim.trace
    assert stage.slim.probes == (("file", "/usr/bin/file"), ("file", "-v"))


@pytest.mark.parametrize(
    ("extra", "field"),
    [('trace = "yes"\n', "slim.trace"), ('probes = ["file"]\n', "slim.probes"), ("trace = true\nprobes = [1]\n", "slim.probes")],
)
def test_slim_trace_and_probes_are_checked(tmp_path: Path, extra: str, field: str) -> None:
    with pytest.raises(StageConfigError) as caught:
        load_stage(make_stage(tmp_path, toml=SLIM + extra))
    assert caught.value.field == field
