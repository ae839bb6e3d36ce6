"""hello/python/record_imports.py, the build step that asks CPython which modules a program imports.

Its compiling step writes beside the standard library, so it runs only in
the image (the 42-python-scratch stage, checked in test_runtimes.py); here,
the parts that only read.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import REPO_ROOT


@pytest.fixture(scope="module")
def record_imports() -> ModuleType:
    path = REPO_ROOT / "hello" / "python" / "record_imports.py"
    spec = importlib.util.spec_from_file_location("record_imports", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_importtime_lines_give_each_module_once_in_order(record_imports: ModuleType) -> None:
    text = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       107 |        107 |   _io\n"
        "import time:       274 |        274 |   encodings.aliases\n"
        "import time:       491 |       1001 | encodings\n"
        "a warning that is not an importtime line\n"
        "import time:       274 |        274 |   encodings.aliases\n"
    )
    assert record_imports.parse_importtime(text) == ["_io", "encodings.aliases", "encodings"]


def test_only_modules_loaded_from_files_have_a_file(record_imports: ModuleType) -> None:
    assert record_imports.module_file("sys") is None  # built in
    assert record_imports.module_file("no_such_module_anywhere") is None
    assert record_imports.module_file("json").endswith("json/__init__.py")
    assert record_imports.module_file("json.decoder").endswith("json/decoder.py")


def test_the_interpreter_reports_what_a_program_imports(record_imports: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "greeting.py").write_text("import json\nWORD = 'hello!'\n")
    program = tmp_path / "main.py"
    program.write_text("import greeting\nprint(greeting.WORD)\n")
    names = record_imports.imported_names(str(program))
    assert "greeting" in names and "json" in names and "json.decoder" in names
    assert "encodings" in names  # imported at start-up, before the program runs
    assert "http" not in names
    files = record_imports.module_files(str(program))
    assert str(tmp_path / "greeting.py") in files  # found beside the program, as the interpreter found it
    assert all(path.endswith((".py", ".so")) for path in files)


def test_a_failing_program_stops_the_build_with_its_error(record_imports: ModuleType, tmp_path: Path) -> None:
    program = tmp_path / "broken.py"
    program.write_text("import no_such_module_anywhere\n")
    with pytest.raises(SystemExit, match="No module named 'no_such_module_anywhere'"):
        record_imports.imported_names(str(program))
