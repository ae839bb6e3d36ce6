"""A build step, not part of the program: list the files `python3 PROGRAM` imports, byte-compiled.

The interpreter itself says what it imports: the program runs once under
`-X importtime`, which reports every module imported during the run (at
start-up, by the program, and at exit), frozen and built-in ones included.
Each module that comes from a file is found with importlib; a source module
is compiled to a sourceless `.pyc` beside its `.py`, which the interpreter
imports when the `.py` is absent.  The `.pyc` and extension-module paths are
written to OUTPUT, one per line, for the harness's `[slim] extras_from`.

It records what one run imports: a program whose imports depend on its input
or on an error path needs a run that takes those paths.

Usage: python3 record_imports.py PROGRAM OUTPUT
"""

import importlib.util
import os
import py_compile
import subprocess
import sys

# What every line of `-X importtime` output starts with.
IMPORTTIME_PREFIX = "import time:"


def imported_names(program):
    """The modules the interpreter imports while running `program`, in import order."""
    # The environment a container's command gets, so that start-up imports the same modules.
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", program],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"{program} failed (exit code {done.returncode}):\n{done.stderr[-2000:]}")
    return parse_importtime(done.stderr)


def parse_importtime(text):
    """Module names from `-X importtime` lines (`import time: self | cumulative | name`), each once."""
    names = []
    for line in text.splitlines():
        if not line.startswith(IMPORTTIME_PREFIX):
            continue
        name = line.rsplit("|", 1)[-1].strip()
        if name != "imported package" and name not in names:
            names.append(name)
    return names


def module_file(name):
    """The file `name` is loaded from, or None for a built-in, frozen or missing module."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.has_location or spec.origin is None:
        return None
    return spec.origin


def module_files(program):
    """The files of the modules `program` imports: `.py` sources and extension modules."""
    # The program's own folder comes first on its sys.path; find its modules there too.
    sys.path.insert(0, os.path.dirname(os.path.abspath(program)))
    try:
        files = [module_file(name) for name in imported_names(program)]
    finally:
        del sys.path[0]
    return [path for path in files if path is not None]


def main(program, output):
    paths = []
    for origin in module_files(program):
        if origin.endswith(".py"):
            compiled = origin + "c"
            py_compile.compile(origin, cfile=compiled, dfile=origin, doraise=True)
            paths.append(compiled)
        else:
            paths.append(origin)  # an extension module: its ELF closure is the resolver's job
    with open(output, "w", encoding="utf-8") as handle:
        handle.writelines(path + "\n" for path in paths)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    main(sys.argv[1], sys.argv[2])
