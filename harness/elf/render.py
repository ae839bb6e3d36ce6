"""Pure renderings of a Closure: an lddtree-like tree, and a JSON-able dict."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from harness.elf.model import Closure

INDENT = "    "


def render_tree(closure: Closure) -> str:
    """lddtree-like text: each library under the first object that needed it."""
    if closure.is_static and not closure.needed:
        return f"{closure.path} (statically linked)\n"
    head = str(closure.path)
    if closure.interpreter is not None:
        head += f" (interpreter => {closure.interpreter})"
    lines = [head]
    children: dict[PurePosixPath, list[tuple[str, str]]] = {}
    for dep in closure.needed:
        children.setdefault(dep.via, []).append((dep.soname, str(dep.path)))
    for soname, via in closure.missing:
        children.setdefault(via, []).append((soname, "not found"))
    for opt in closure.dlopen:
        label = f"[dlopen {opt.priority or 'optional'}] {opt.soname or ' | '.join(opt.sonames)}"
        children.setdefault(opt.via, []).append((label, str(opt.path) if opt.path else "not found"))
    shown: set[str] = set()

    def walk(node: PurePosixPath, depth: int) -> None:
        for soname, target in children.get(node, ()):
            lines.append(f"{INDENT * depth}{soname} => {target}")
            if target != "not found" and target not in shown:
                shown.add(target)
                walk(PurePosixPath(target), depth + 1)

    walk(closure.path, 1)
    return "\n".join(lines) + "\n"


def closure_dict(closure: Closure) -> dict[str, Any]:
    """{"path", "interpreter", "needed": [{"soname", "path", "via"}], "files", "is_static", "dlopen", "missing"}."""
    return {
        "path": str(closure.path),
        "interpreter": str(closure.interpreter) if closure.interpreter else None,
        "needed": [{"soname": d.soname, "path": str(d.path), "via": str(d.via)} for d in closure.needed],
        "files": [str(f) for f in closure.files],
        "is_static": closure.is_static,
        "dlopen": [
            {
                "sonames": list(o.sonames),
                "feature": o.feature,
                "priority": o.priority,
                "path": str(o.path) if o.path else None,
                "via": str(o.via),
            }
            for o in closure.dlopen
        ],
        "missing": [{"soname": soname, "via": str(via)} for soname, via in closure.missing],
    }
