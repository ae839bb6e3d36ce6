"""The import layering the harness keeps, checked on its source (no Docker, no import of the harness).

The layers, from the bottom:

- records: the Engine protocol and its records (`harness.records.engine`),
  `model`, `errors`, `units` and the other modules these import: the
  standard library only;
- the pure domain and the renderers: `stages`, `claims`, `report`, `sweep`,
  `chart`, `results`, ... read and write data; they never reach the Engine;
- the modules that speak to an Engine through the protocol (`bases`,
  `measure`, `pipeline`, the tasks' `commands`, ...), never through the
  adapter: the shell connects and hands them the Engine;
- the adapter, the package `harness.engine` (one module per resource, as the
  SDK's `APIClient` has one mixin per resource): the only one that imports the
  Docker SDK;
- the shell, `tasks.py` (and `harness.nested.cli`, lazily), which alone
  imports the adapter.

Imports are read with `ast`: those a module runs when it is imported (inside
`if TYPE_CHECKING:` or a function they are not).  A subprocess then imports
the renderers and `stages` with the SDK and pyelftools made unimportable.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "harness"

ADAPTER = "harness.engine"
PROTOCOL = "harness.records.engine"
SDK = frozenset({"docker", "requests", "urllib3"})
# Pure: the records every layer passes, with nothing but the standard library beneath them.
RECORDS = (
    "harness.records.engine",
    "harness.records.report",
    "harness.records.errors",
    "harness.records.units",
    "harness.stages.slimspec",
    "harness.debian.release",
    "harness.records.service",
    "harness.records.labels",
    "harness.records.redact",
    "harness.layers.figures",
)
# Read and write data only: never the Engine, nor a module that speaks to one.
RENDERERS = (
    "harness.render.markdown",
    "harness.render.sweep",
    "harness.render.chart",
    "harness.render.claims",
    "harness.render.results",
    "harness.render.matrix",
    "harness.layers.render",
    "harness.elf.render",
)
STAGES = "harness.stages.stage"
RESOLVER = ("harness.slim.plan", "harness.elf", "elftools")


def _in_adapter(module: str) -> bool:
    return module == ADAPTER or module.startswith(f"{ADAPTER}.")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def _sources() -> dict[str, Path]:
    found = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    found["tasks"] = ROOT / "tasks.py"
    return found


def _run_time_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """The import statements a module runs when imported: not in functions, classes or `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):
            test = node.test
            if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
            ):
                found += _run_time_imports(node.orelse)
            else:
                found += _run_time_imports(node.body) + _run_time_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                found += _run_time_imports(block)
        elif isinstance(node, ast.With):
            found += _run_time_imports(node.body)
    return found


def _with_parents(name: str) -> list[str]:
    """Importing `a.b.c` runs `a`, `a.b` and `a.b.c`."""
    parts = name.split(".")
    return [".".join(parts[: index + 1]) for index in range(len(parts))]


@functools.cache
def direct_imports(module: str) -> frozenset[str]:
    """What importing `module` imports directly: harness modules by name, others by their top-level name."""
    path = _sources()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in _run_time_imports(tree.body):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "__future__":
                continue
            # `from harness import labels` imports the module harness.records.labels.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in _sources() else base for alias in node.names]
        for target in targets:
            if target.split(".")[0] in ("harness", "tasks"):
                names.update(part for part in _with_parents(target) if part in _sources())
            else:
                names.add(target.split(".")[0])
    names.discard(module)
    return frozenset(names)


@functools.cache
def closure(module: str) -> frozenset[str]:
    """Everything importing `module` imports, directly or through others."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        for name in direct_imports(current) if current in _sources() else ():
            if name not in seen:
                seen.add(name)
                todo.append(name)
    seen.discard(module)
    return frozenset(seen)


def _third_party(names: frozenset[str]) -> set[str]:
    return {
        name
        for name in names
        if name.split(".")[0] not in ("harness", "tasks") and name.split(".")[0] not in sys.stdlib_module_names
    }


def _engine_users() -> set[str]:
    """The modules that import the Engine protocol's `Engine`: they speak to an Engine."""
    users = set()
    for module, path in _sources().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _run_time_imports(tree.body):
            if isinstance(node, ast.ImportFrom) and node.module in (PROTOCOL, ADAPTER):
                if any(alias.name in ("Engine", "DockerEngine") for alias in node.names):
                    users.add(module)
    return users


def test_the_graph_is_read() -> None:
    """The checks below mean something only if the reader sees the imports that are there."""
    assert "docker" in closure(ADAPTER)
    assert PROTOCOL in closure(ADAPTER)
    assert {"harness.run.bases", "harness.run.measure", "harness.run.pipeline"} <= _engine_users()
    assert ADAPTER in direct_imports("tasks")
    assert ADAPTER not in direct_imports("harness.nested.cli")  # imported inside a function: lazily


def test_only_the_adapter_imports_the_docker_sdk() -> None:
    importers = {module for module in _sources() if direct_imports(module) & SDK}
    assert importers and all(_in_adapter(module) for module in importers), sorted(importers)


def test_only_the_shell_imports_the_adapter() -> None:
    importers = {module for module in _sources() if ADAPTER in direct_imports(module) and not _in_adapter(module)}
    assert importers <= {"tasks"}, f"{sorted(importers - {'tasks'})} import {ADAPTER}: import {PROTOCOL} instead"


@pytest.mark.parametrize("module", RECORDS)
def test_records_import_only_the_standard_library(module: str) -> None:
    assert not _third_party(closure(module)), f"{module} imports {sorted(_third_party(closure(module)))}"
    assert not closure(module) & _engine_users()


@pytest.mark.parametrize("module", RENDERERS)
def test_renderers_never_reach_the_engine(module: str) -> None:
    reached = closure(module) & ({ADAPTER} | SDK | _engine_users())
    assert not reached, f"{module} reaches {sorted(reached)}"


def test_reading_a_stage_does_not_load_the_resolver() -> None:
    reached = {name for name in closure(STAGES) if any(name == r or name.startswith(f"{r}.") for r in RESOLVER)}
    reached |= closure(STAGES) & ({ADAPTER} | SDK | _engine_users())
    assert not reached, f"{STAGES} reaches {sorted(reached)}"


def test_nothing_in_the_package_imports_the_shell() -> None:
    assert not [module for module in _sources() if module != "tasks" and {"tasks", "invoke"} & direct_imports(module)]


def test_the_pure_layers_import_without_the_sdk_or_pyelftools() -> None:
    """As a newcomer would meet it: with docker, requests and pyelftools absent, the pure modules still import."""
    blocked = ["docker", "requests", "urllib3", "elftools"]
    # harness.elf.render is left out: importing it runs harness/elf/__init__, the resolver, which needs pyelftools.
    wanted = [*RECORDS, *(module for module in RENDERERS if not module.startswith("harness.elf")), STAGES]
    program = (
        "import sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None  # `import name` now raises ImportError\n"
        "import importlib\n"
        f"for module in {wanted!r}:\n"
        "    importlib.import_module(module)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
