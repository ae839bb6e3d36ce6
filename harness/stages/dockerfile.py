"""The little of Dockerfile syntax the harness needs to read.

Two jobs: find the external base images a Dockerfile starts from (so that
`invoke bases` can provide them before any build), and label the build
stages that are not the last one.  The Engine applies build-time labels to
the final stage only; the label given to earlier stages (the compiler stage
of a multi-stage build) says which namespace built it.  It owns nothing:
what the project made is recorded by ID (`harness.custody.ledger`), and a compiler
stage is found in the build's own output (`harness.run.build.StageTops`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VARIABLE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Instruction:
    """One logical instruction: its keyword, its arguments, and the physical lines it spans."""

    keyword: str
    arguments: str
    first_line: int
    last_line: int


def instructions(text: str) -> tuple[Instruction, ...]:
    """Split a Dockerfile into logical instructions, joining `\\` continuations and skipping comments."""
    result: list[Instruction] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        if not line or line.startswith("#"):
            index += 1
            continue
        first = index
        parts = [line]
        while parts[-1].endswith("\\") and index + 1 < len(lines):
            parts[-1] = parts[-1][:-1]
            index += 1
            following = lines[index].strip()
            parts.append("" if following.startswith("#") else following)
        keyword, _, arguments = " ".join(parts).partition(" ")
        result.append(Instruction(keyword.upper(), arguments.strip(), first, index))
        index += 1
    return tuple(result)


def base_images(text: str, build_args: dict[str, str]) -> tuple[str, ...]:
    """The images the Dockerfile's FROM lines pull in from outside, in order, without duplicates.

    `scratch` and references to earlier stages (by name or index) are not
    external.  `ARG` defaults declared before the first FROM apply, and
    `build_args` override them, as in `docker build --build-arg`.
    """
    variables: dict[str, str] = {}
    stage_names: set[str] = set()
    images: list[str] = []
    seen_from = False
    for instruction in instructions(text):
        if instruction.keyword == "ARG" and not seen_from:
            name, _, default = instruction.arguments.partition("=")
            variables[name.strip()] = build_args.get(name.strip(), default.strip().strip("\"'"))
        elif instruction.keyword == "FROM":
            image, alias = _from_arguments(instruction.arguments)
            image = expand(image, variables)
            if image != "scratch" and image not in stage_names and not image.isdigit() and image not in images:
                images.append(image)
            stage_names.add(alias or str(len(stage_names)))
            seen_from = True
    return tuple(images)


def expand(value: str, variables: dict[str, str]) -> str:
    """Substitute `$NAME` and `${NAME}`; an unknown name becomes empty, as in Docker."""
    return _VARIABLE.sub(lambda match: variables.get(match["braced"] or match["bare"], ""), value)


def _from_arguments(arguments: str) -> tuple[str, str | None]:
    words = [word for word in arguments.split() if not word.startswith("--")]
    if not words:
        return "", None
    alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
    return words[0], alias


def label_build_stages(text: str, labels: dict[str, str]) -> str:
    """End every stage but the last one with a LABEL.

    At the end, not after the FROM: every step of a compile stage stays the
    same in every namespace, so another namespace's build (a test's copy, a
    second checkout) takes them from the cache, and only the LABEL step is
    its own.  The last stage is labelled by the build request itself; adding
    nothing to it keeps the final image's history exactly what the
    Dockerfile says.
    """
    froms = [instruction for instruction in instructions(text) if instruction.keyword == "FROM"]
    if len(froms) < 2:
        return text
    label_line = "LABEL " + " ".join(f'"{key}"="{value}"' for key, value in sorted(labels.items()))
    insert_before = {instruction.first_line for instruction in froms[1:]}
    output: list[str] = []
    for number, line in enumerate(text.splitlines()):
        if number in insert_before:
            output.append(label_line)
        output.append(line)
    return "\n".join(output) + "\n"
