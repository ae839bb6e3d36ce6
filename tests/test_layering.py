"""The import layering the harness keeps, checked on its source (no Docker, no import of the harness).

`harness/` holds packages by concern, in levels; a package imports only from
the levels below it (and from itself), never from its own level or above:

- `records`: the pure records every level passes (stage results, settings,
  the Engine protocol and its records, layer figures, units, errors): the
  standard library only, and nothing else of the project;
- `atomic`, `statusboard`, `debian`: one file written whole, the progress a
  person follows, what the ladder knows of Debian (releases, dpkg's files);
- `stages`, `elf`, `layers`: reading the stages' folders, the ELF resolver,
  the layer analysis;
- `slim`: planning and writing a [slim] image, and tracing what a program opens;
- `custody`: what the project made on an Engine (the ledger, locks, cleanup);
- `render`: results.json, the markdown tables, the chart, the SBOMs;
- `run`: the run path, discover -> build -> verify -> measure, over the Engine protocol;
- `engine`: the adapter, the only package that imports the Docker SDK (one
  module per resource, as the SDK's `APIClient` has one mixin per resource);
- `commands`, `nested`: what the tasks run; then the shell, `tasks.py`,
  which alone connects the adapter and hands the Engine down.

Imports are read with `ast`.  The level check reads every import a module
makes, wherever it stands (in a function, under `if TYPE_CHECKING:`); the
other checks read those a module runs when it is imported.  A subprocess then
imports the pure levels with the SDK and pyelftools made unimportable.
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
# From the bottom: a package may import only the packages of the levels below its own.
LEVELS: tuple[tuple[str, ...], ...] = (
    ("records",),
    ("atomic", "statusboard", "debian"),
    ("stages", "elf", "layers"),
    ("slim",),
    ("custody",),
    ("render",),
    ("run",),
    ("engine",),
    ("commands", "nested"),
)
TOP_LEVEL_MODULES_AT_MOST = 3
STAGES = "harness.stages"
RESOLVER = ("harness.slim", "harness.elf", "elftools")


def _in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def _package_modules(*packages: str) -> tuple[str, ...]:
    return tuple(sorted(module for module in _sources() if any(_in_package(module, package) for package in packages)))


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


# Pure: the records every level passes, and what the ladder knows of Debian, with nothing but the standard library beneath.
PURE = (*_package_modules("harness.records", "harness.debian"), "harness.stages.slimspec")
# Read and write data only: never the Engine, nor a module that speaks to one.
RENDERERS = (*_package_modules("harness.render"), "harness.layers.render", "harness.elf.render")


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


@pytest.mark.parametrize("module", PURE)
def test_records_import_only_the_standard_library(module: str) -> None:
    assert not _third_party(closure(module)), f"{module} imports {sorted(_third_party(closure(module)))}"
    assert not closure(module) & _engine_users()


@pytest.mark.parametrize("module", RENDERERS)
def test_renderers_never_reach_the_engine(module: str) -> None:
    reached = closure(module) & ({ADAPTER} | SDK | _engine_users())
    assert not reached, f"{module} reaches {sorted(reached)}"


@pytest.mark.parametrize("module", _package_modules(STAGES))
def test_reading_a_stage_does_not_load_the_resolver(module: str) -> None:
    reached = {name for name in closure(module) if any(name == r or name.startswith(f"{r}.") for r in RESOLVER)}
    reached |= closure(module) & ({ADAPTER} | SDK | _engine_users())
    assert not reached, f"{module} reaches {sorted(reached)}"


def test_nothing_in_the_package_imports_the_shell() -> None:
    assert not [module for module in _sources() if module != "tasks" and {"tasks", "invoke"} & direct_imports(module)]


def test_the_pure_layers_import_without_the_sdk_or_pyelftools() -> None:
    """As a newcomer would meet it: with docker, requests and pyelftools absent, the pure modules still import."""
    blocked = ["docker", "requests", "urllib3", "elftools"]
    # Left out: what reaches harness.elf, whose __init__ (the resolver) needs pyelftools (harness.elf.render, the SBOM).
    wanted = [
        module
        for module in (*PURE, *RENDERERS, *_package_modules(STAGES))
        if not any(_in_package(name, "harness.elf") for name in {module, *closure(module)})
    ]
    assert "harness.render.markdown" in wanted and "harness.stages.stage" in wanted
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


def _every_import(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, harness module) of every import in `path`, wherever it stands: in a function, under TYPE_CHECKING."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from harness.records import labels` imports the module harness.records.labels.
            found += [
                (node.lineno, f"{base}.{alias.name}" if f"{base}.{alias.name}" in _sources() else base) for alias in node.names
            ]
    return [(line, name) for line, name in found if name.split(".")[0] == "harness"]


def climbing_imports(package_dir: Path, levels: tuple[tuple[str, ...], ...]) -> list[str]:
    """Every import in `package_dir` of a package at the importer's level or above it, as `file:line: a -> b`."""
    level_of = {name: index for index, names in enumerate(levels) for name in names}
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if len(parts) < 2:
            continue
        importer = parts[1]
        for line, target in _every_import(path, ".".join(parts)):
            imported = target.split(".")[1] if "." in target else None
            if imported is None or imported == importer:
                continue
            if level_of.get(imported, len(levels)) >= level_of.get(importer, -1):
                found.append(f"{path.relative_to(package_dir.parent)}:{line}: {importer} -> {imported}")
    return found


def module_cycles() -> list[tuple[str, ...]]:
    """The import cycles among the harness's modules, each as the modules around it.

    Every import counts, a lazy one in a function too: it breaks the cycle at import time, not in the design.
    Importing `a.b.c` runs the packages `a` and `a.b` first: that is no edge of the graph, or every package
    whose __init__ imports its own modules would be a cycle.
    """
    graph = {
        module: {
            name
            for _, name in _every_import(path, module)
            if name in _sources() and name != module and not module.startswith(f"{name}.")
        }
        for module, path in _sources().items()
        if module != "tasks"
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[tuple[str, ...]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for name in sorted(graph[module]):
            if name not in index:
                visit(name)
                low[module] = min(low[module], low[name])
            elif name in stack:
                low[module] = min(low[module], index[name])
        if low[module] == index[module]:
            component = []
            while True:
                name = stack.pop()
                component.append(name)
                if name == module:
                    break
            if len(component) > 1:
                cycles.append(tuple(sorted(component)))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def test_every_package_of_the_harness_is_placed_on_a_level() -> None:
    placed = {name for names in LEVELS for name in names}
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()}
    modules = {path.stem for path in PACKAGE.glob("*.py") if path.name != "__init__.py"}
    assert packages | modules == placed


def test_no_package_imports_from_its_level_or_above() -> None:
    assert climbing_imports(PACKAGE, LEVELS) == []


def test_the_level_check_fails_on_one_upward_import(tmp_path: Path) -> None:
    """The check above means something only if it sees a climb: a copy of the harness with one added fails it."""
    import shutil

    copy = tmp_path / "harness"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    units = copy / "records" / "units.py"
    units.write_text(units.read_text(encoding="utf-8") + "\n\ndef _late() -> None:\n    from harness.run import pipeline\n")
    assert climbing_imports(copy, LEVELS) == [f"harness/records/units.py:{len(units.read_text().splitlines())}: records -> run"]


def test_no_import_cycle() -> None:
    assert module_cycles() == []


def test_at_most_three_modules_stand_beside_the_packages() -> None:
    modules = sorted(path.name for path in PACKAGE.glob("*.py") if path.name != "__init__.py")
    assert len(modules) <= TOP_LEVEL_MODULES_AT_MOST, modules


def test_importing_the_records_loads_no_other_package_and_no_sdk() -> None:
    program = (
        "import importlib, pkgutil, sys\n"
        "import harness.records\n"
        "for info in pkgutil.iter_modules(harness.records.__path__):\n"
        "    importlib.import_module(f'harness.records.{info.name}')\n"
        "loaded = sorted(name for name in sys.modules if name.split('.')[0] in ('harness', 'docker', 'requests', 'elftools'))\n"
        "print('\\n'.join(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    loaded = done.stdout.split()
    assert "harness.records.report" in loaded
    assert [name for name in loaded if not (name == "harness" or name.startswith("harness.records"))] == []


MODULE_LINES_AT_MOST = 400
FUNCTION_LINES_AT_MOST = 60


def _project_sources() -> list[Path]:
    # The harness, its shell, the benchmarks and the ELF fuzzer (a tool the tests import).
    return sorted(
        [*PACKAGE.rglob("*.py"), ROOT / "tasks.py", *(ROOT / "bench").rglob("*.py"), *(ROOT / "tests" / "elf").glob("fuzz*.py")]
    )


def test_modules_and_functions_stay_short() -> None:
    """A module is read whole, a function at a glance: over the limits, split it by concern."""
    long_modules, long_functions = [], []
    for path in _project_sources():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MODULE_LINES_AT_MOST:
            long_modules.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > FUNCTION_LINES_AT_MOST:
                    long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert (long_modules, long_functions) == ([], [])
