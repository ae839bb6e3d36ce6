"""The README and docs/ say only what is there (no Docker): links resolve, commands are real, the README stays short.

Links: every relative link of README.md and docs/*.md names a file of the
repository, and every `#anchor` (in the same file, or `file.md#anchor`) a
heading of that file, slugged as GitHub slugs it (lower case, punctuation but
`-` and `_` dropped, spaces to `-`, `-1`, `-2`… for a repeated heading).
Code blocks and code spans are not searched for links or headings.

Commands: every line of an `sh` block is a command that must be real. An
`invoke` line is parsed by invoke's own parser against tasks.py's collection
(an unknown task or flag, or a missing value, fails); `bash scripts/X` must
name a script, `.venv/bin/python -m M` a module file, `.venv/bin/pytest` test
paths that exist; `A && B`, `export "$(…)"`, `NAME=value` prefixes, `\\`
continuations and comments are taken apart first. Any other command fails, so
that a new kind is looked at, not let through. A block that the paragraph
before it names as a file (`hello/…`, `stages/…`) is that file's content, not
commands: tests/test_add_runtime.py writes it out, by the same rule. Blocks of
other languages (toml, Dockerfile, output) are not commands, but a line of
theirs that starts with a `$ ` prompt is. Code spans in the text that start as
these commands do are checked too, more leniently (a task table's `[--flag …]`
and placeholders, a mention without its required options): every task and
flag they name must exist.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from invoke import Collection, Program
from invoke.parser import ParseError, Parser, ParserContext

import tasks

from .conftest import OWN_STEPS_COMMAND, REPO_ROOT
from .test_add_runtime import FILE_PATH

README = REPO_ROOT / "README.md"
README_LINES_AT_MOST = 150
DOCUMENTS = (README, *sorted((REPO_ROOT / "docs").glob("*.md")))
SHELL_LANGUAGES = frozenset({"sh", "bash", "shell"})

FENCE = re.compile(r"^\s*(?P<marker>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(?P<ticks>`+)(?P<code>.+?)(?P=ticks)")
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]*)(?:\s+\"[^\"]*\")?\)")
MARKDOWN_LINK_TEXT = re.compile(r"\[([^\]]*)\]\([^)]*\)")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SUBSTITUTION = re.compile(r"^\$\((?P<command>.*)\)$", re.DOTALL)
SEPARATORS = frozenset({"&&", "||", ";", "|"})
INVOKE = frozenset({".venv/bin/invoke", "invoke"})
PYTHON = frozenset({".venv/bin/python", "python"})
PYTEST = frozenset({".venv/bin/pytest", "pytest"})
# The programs a code span in the text may start with to be taken as a command.
SPAN_PROGRAMS = INVOKE | PYTHON | PYTEST | {"bash"}
# pytest's options that take a value as the next word.
PYTEST_VALUED = frozenset({"-m", "-k", "-p", "-c", "-o", "-n", "-W", "--rootdir", "--deselect", "--ignore", "--durations"})


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, its lines, the paragraph before it, and where it starts."""

    lang: str
    lines: tuple[str, ...]
    paragraph: str
    line: int


@dataclass(frozen=True)
class Document:
    """A markdown file split into its prose (code blocks left out) and its fenced blocks."""

    path: Path
    prose: tuple[tuple[int, str], ...]  # (line number, text) outside code blocks
    blocks: tuple[Block, ...]

    @classmethod
    def read(cls, path: Path) -> Document:
        prose: list[tuple[int, str]] = []
        blocks: list[Block] = []
        fence: re.Match[str] | None = None
        body: list[str] = []
        start = 0
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if fence is None:
                if opening := FENCE.match(line):
                    fence, body, start = opening, [], number
                else:
                    prose.append((number, line))
            elif line.strip().startswith(fence["marker"]) and not line.strip().strip(fence["marker"][0]):
                blocks.append(Block(fence["lang"], tuple(body), _paragraph_before(prose, start), start))
                fence = None
            else:
                body.append(line)
        assert fence is None, f"{path}:{start}: a code block is never closed"
        return cls(path, tuple(prose), tuple(blocks))

    @property
    def name(self) -> str:
        return self.path.relative_to(REPO_ROOT).as_posix()

    def text_lines(self) -> Iterator[tuple[int, str]]:
        """The prose's lines with their code spans taken out."""
        for number, line in self.prose:
            yield number, CODE_SPAN.sub("", line)

    def code_spans(self) -> Iterator[tuple[int, str]]:
        for number, line in self.prose:
            for span in CODE_SPAN.finditer(line):
                yield number, span["code"].strip()

    def anchors(self) -> frozenset[str]:
        seen: dict[str, int] = {}
        anchors = set()
        for _, line in self.prose:
            if heading := HEADING.match(line):
                slug = github_slug(heading["text"])
                anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
                seen[slug] = seen.get(slug, 0) + 1
        return frozenset(anchors)


def _paragraph_before(prose: list[tuple[int, str]], start: int) -> str:
    """The paragraph just before line `start`: its lines back to the blank line before them."""
    lines: list[str] = []
    for number, line in reversed(prose):
        if number >= start:
            continue
        if line.strip():
            lines.insert(0, line)
        elif lines:
            break
    return "\n".join(lines)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text lower-cased, punctuation but - and _ dropped, spaces to -."""
    text = MARKDOWN_LINK_TEXT.sub(r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def documents() -> list[Document]:
    return [Document.read(path) for path in DOCUMENTS]


def by_name(paths: tuple[Path, ...]) -> list[Any]:
    return [pytest.param(path, id=path.relative_to(REPO_ROOT).as_posix()) for path in paths]


# --- links -------------------------------------------------------------------------------------------------------


def links(document: Document) -> Iterator[tuple[int, str]]:
    for number, line in document.text_lines():
        for link in LINK.finditer(line):
            if not SCHEME.match(link["target"]):
                yield number, link["target"]


def broken_links(document: Document) -> list[str]:
    broken = []
    for number, target in links(document):
        where = f"{document.name}:{number}: ({target})"
        relative, _, anchor = target.partition("#")
        path = (document.path.parent / relative).resolve()
        if not relative:
            anchors = document.anchors()
        elif not path.is_relative_to(REPO_ROOT) or not path.exists():
            broken.append(f"{where}: no file {relative}")
            continue
        elif anchor and path.suffix != ".md":
            broken.append(f"{where}: an anchor into a file that is not markdown")
            continue
        else:
            anchors = Document.read(path).anchors() if anchor else frozenset()
        if anchor and anchor not in anchors:
            broken.append(f"{where}: no heading of {path.relative_to(REPO_ROOT) if relative else document.name} has #{anchor}")
    return broken


@pytest.mark.parametrize("path", by_name(DOCUMENTS))
def test_every_link_names_a_file_and_a_heading_that_exist(path: Path) -> None:
    assert broken_links(Document.read(path)) == []


def test_the_link_checker_slugs_headings_as_github_does() -> None:
    assert github_slug("Other platforms: arm64") == "other-platforms-arm64"
    assert github_slug("What the ELF headers cannot say: `--trace`") == "what-the-elf-headers-cannot-say---trace"
    assert github_slug("The `[slim]` table") == "the-slim-table"
    assert github_slug("The code, level by level") == "the-code-level-by-level"
    assert github_slug("A [linked](x.md) name_with_underscore") == "a-linked-name_with_underscore"


def test_the_link_checker_finds_a_broken_file_and_a_broken_anchor() -> None:
    page = REPO_ROOT / "docs" / "a-page-that-is-not-there.md"
    document = Document(
        page,
        prose=(
            (1, "# Title"),
            (2, "[ok](#title), [file](../README.md#results), `[not a link](nowhere.md)`"),
            (3, "[gone](nowhere.md), [no heading](#nothing), [elsewhere](../README.md#nothing)"),
        ),
        blocks=(),
    )
    assert [problem.split(": ", 2)[1] for problem in broken_links(document)] == [
        "(nowhere.md)",
        "(#nothing)",
        "(../README.md#nothing)",
    ]


# --- commands ----------------------------------------------------------------------------------------------------


def collection() -> Collection:
    return Collection.from_module(tasks)


def fresh_parser() -> Parser:
    """A parser with contexts of its own: parsing sets the values of the contexts' arguments."""
    return Parser(initial=Program(namespace=collection()).initial_context, contexts=collection().to_contexts())


def shell_words(line: str) -> list[str]:
    """A line as the shell splits it: quotes kept together, `&&`, `|`, `;` apart, a comment dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    return list(lexer)


def logical_lines(lines: tuple[str, ...]) -> Iterator[str]:
    """The lines of a shell block with `\\` continuations joined."""
    pending = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def simple_commands(words: list[str]) -> Iterator[list[str]]:
    """The simple commands of a command line: split at `&&`, `||`, `;` and `|`, leading NAME=value dropped."""
    command: list[str] = []
    for word in [*words, ";"]:
        if word in SEPARATORS:
            while command and ASSIGNMENT.match(command[0]):
                command.pop(0)
            if command:
                yield command
            command = []
        else:
            command.append(word)


def command_problems(line: str) -> list[str]:
    """What is wrong with one command line shown in a shell block; [] if every command in it is real."""
    try:
        words = shell_words(line)
    except ValueError as error:
        return [f"{line!r}: the shell could not split it ({error})"]
    return [problem for command in simple_commands(words) for problem in simple_command_problems(command)]


def simple_command_problems(command: list[str]) -> list[str]:
    program, *arguments = command
    shown = shlex.join(command)
    if program in INVOKE:
        try:
            fresh_parser().parse_argv(arguments)
        except ParseError as error:
            return [f"{shown}: {error}"]
        return []
    if program == "bash":
        script = arguments[0] if arguments else ""
        ok = script.startswith("scripts/") and (REPO_ROOT / script).is_file()
        return [] if ok else [f"{shown}: no script {script!r} under scripts/"]
    if program in PYTHON:
        return python_problems(shown, arguments)
    if program in PYTEST:
        return [f"{shown}: no test path {path!r}" for path in pytest_paths(arguments) if not (REPO_ROOT / path).exists()]
    if program == "export":
        return export_problems(shown, arguments)
    return [f"{shown}: not a kind of command this test knows ({program}); add it to tests/test_docs.py, or show it as output"]


def python_problems(shown: str, arguments: list[str]) -> list[str]:
    if len(arguments) < 2 or arguments[0] != "-m":
        return [f"{shown}: run a module, `.venv/bin/python -m MODULE`"]
    parts = arguments[1].split(".")
    found = (REPO_ROOT.joinpath(*parts).with_suffix(".py"), REPO_ROOT.joinpath(*parts, "__main__.py"))
    return [] if any(path.is_file() for path in found) else [f"{shown}: no module {arguments[1]} (no {found[0]})"]


def pytest_paths(arguments: list[str]) -> Iterator[str]:
    """pytest's test paths among its arguments (a node id's path part), options and their values left out."""
    words = iter(arguments)
    for word in words:
        if word in PYTEST_VALUED:
            next(words, None)
        elif not word.startswith("-"):
            yield word.split("::")[0]


def export_problems(shown: str, arguments: list[str]) -> list[str]:
    problems = []
    for argument in arguments:
        if substitution := SUBSTITUTION.match(argument):
            problems += command_problems(substitution["command"])
        elif not ASSIGNMENT.match(argument):
            problems.append(f'{shown}: export takes NAME=value or "$(command)", not {argument!r}')
    return problems


def shell_lines(document: Document) -> Iterator[tuple[int, str]]:
    """The command lines of a document's blocks: every line of a shell block, a `$ ` line of any other block."""
    for block in document.blocks:
        if block.lang in SHELL_LANGUAGES and FILE_PATH.search(block.paragraph):
            continue  # a file's content, written out by tests/test_add_runtime.py
        for offset, line in enumerate(logical_lines(block.lines), 1):
            if block.lang in SHELL_LANGUAGES and line.strip() and not line.lstrip().startswith("#"):
                yield block.line + offset, line.strip()
            elif block.lang not in SHELL_LANGUAGES and line.startswith("$ "):
                yield block.line + offset, line[2:].strip()


@pytest.mark.parametrize("path", by_name(DOCUMENTS))
def test_every_command_in_a_shell_block_is_real(path: Path) -> None:
    document = Document.read(path)
    problems = [
        f"{document.name}:{number}: {problem}" for number, line in shell_lines(document) for problem in command_problems(line)
    ]
    assert problems == []


def test_the_readme_shows_its_quick_start_in_a_shell_block() -> None:
    """The checks above mean something: the README's own commands are among the lines they read."""
    lines = [line for _, line in shell_lines(Document.read(README))]
    assert "bash scripts/setup && .venv/bin/invoke all" in lines and ".venv/bin/pytest" in lines


def test_ci_runs_the_readmes_test_command_and_the_steps_it_leaves_out() -> None:
    """Nothing is skipped in CI: .ci/run runs the bare `pytest` and the long ladders' own step."""
    ci_lines = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ".venv/bin/pytest" in ci_lines and OWN_STEPS_COMMAND in ci_lines
    testing = Document.read(REPO_ROOT / "docs" / "testing.md")
    assert OWN_STEPS_COMMAND in [line for _, line in shell_lines(testing)]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (".venv/bin/invoke al", "No idea what 'al' is"),
        (".venv/bin/invoke all --bogus", "No idea what '--bogus' is"),
        (".venv/bin/invoke verify --stage", "--stage"),
        ("invoke slim --trace", "required positional arguments"),
        ("bash scripts/no-such-script", "no script"),
        (".venv/bin/python bench/warm.py", "run a module"),
        (".venv/bin/python -m bench.no_such_benchmark", "no module"),
        (".venv/bin/pytest -m 'not docker' tests/test_no_such_file.py::test_it", "no test path 'tests/test_no_such_file.py'"),
        ('export "$(bash scripts/no-such-script start)"', "no script"),
        ("docker images", "not a kind of command"),
    ],
)
def test_the_command_checker_rejects_what_is_not_there(line: str, problem: str) -> None:
    problems = command_problems(line)
    assert len(problems) == 1 and problem in problems[0], problems


@pytest.mark.parametrize(
    "line",
    [
        "bash scripts/setup && .venv/bin/invoke all",
        "CI=true bash scripts/start-engine",
        ".venv/bin/invoke matrix --engine d20=unix:///var/run/docker.sock --engine d26=unix:///run/d26.sock  # two Engines",
        'export "$(bash scripts/nested-engine start cd --store containerd)"   # DOCKER_HOST=…',
        '.venv/bin/invoke slim --image tools --binary /usr/bin/file --tag file:slim --cmd "file /usr/bin/file" --trace',
        ".venv/bin/invoke slim --image i --binary /b --tag t --no-metadata --probe 'a b' --probe c",
        '.venv/bin/pytest -q -m "not docker" tests/test_docs.py tests/elf',
        ".venv/bin/python -m tests.fault_matrix",
    ],
)
def test_the_command_checker_takes_what_is_there(line: str) -> None:
    assert command_problems(line) == []


# --- commands named in the text ----------------------------------------------------------------------------------


def span_problems(span: str) -> list[str]:
    """What is wrong with a command named in a code span of the text: its tasks and flags must exist, its files too."""
    try:
        words = shell_words(span.replace("[", " ").replace("]", " "))
    except ValueError as error:
        return [f"`{span}`: the shell could not split it ({error})"]
    problems = []
    for command in simple_commands(words):
        if command[0] in INVOKE:
            problems += [f"`{span}`: {problem}" for problem in invoke_names_problems(command[1:])]
        elif command[0] in SPAN_PROGRAMS:
            problems += simple_command_problems(command)
    return problems


def invoke_names_problems(arguments: list[str]) -> list[str]:
    """Every task and flag named exists: options' values, placeholders and missing required options let through."""
    contexts: dict[str, ParserContext] = {context.name: context for context in collection().to_contexts()}
    context: ParserContext = Program(namespace=collection()).initial_context
    problems = []
    for word in arguments:
        flag = word.split("=", 1)[0]
        if word.startswith("-"):
            if flag not in context.flags and flag not in context.inverse_flags:
                problems.append(f"{context.name or 'invoke'} has no flag {flag}")
        elif context.name is None or word in contexts:
            if word not in contexts:
                problems.append(f"no task {word!r}")
                break
            context = contexts[word]
    return problems


def spans(document: Document) -> Iterator[tuple[int, str]]:
    for number, span in document.code_spans():
        words = span.split()
        while words and ASSIGNMENT.match(words[0]):
            words.pop(0)
        if words and words[0] in SPAN_PROGRAMS and len(words) > (0 if words[0] in INVOKE | PYTEST else 1):
            # `python (binary)` is a name (syft's finding), not a command; `python -m …`, `python x.py` are.
            if words[0] not in PYTHON or words[1].startswith("-") or words[1].endswith(".py"):
                yield number, span


@pytest.mark.parametrize("path", by_name(DOCUMENTS))
def test_every_command_named_in_the_text_names_tasks_flags_and_files_that_exist(path: Path) -> None:
    document = Document.read(path)
    problems = [f"{document.name}:{number}: {problem}" for number, span in spans(document) for problem in span_problems(span)]
    assert problems == []


def test_the_span_checker_lets_a_task_tables_notation_through_but_no_unknown_flag() -> None:
    shown = 'invoke slim --image IMAGE --binary PATH --tag TAG [--extra PATH …] [--trace [--probe "…" …]] [--no-metadata]'
    assert span_problems(shown) == []
    assert span_problems("invoke all --platform linux/arm64 --no-wire") == []
    assert span_problems(".venv/bin/invoke --help all") == []
    assert span_problems("invoke clean [--everything]") == ["`invoke clean [--everything]`: clean has no flag --everything"]
    assert span_problems("invoke rebuild --stage 07") == ["`invoke rebuild --stage 07`: no task 'rebuild'"]


def test_a_name_that_starts_like_a_command_is_not_taken_for_one() -> None:
    page = REPO_ROOT / "docs" / "a-page-that-is-not-there.md"
    line = "syft's `python (binary)`, then `python bench/warm.py`, `python -m bench.warm` and `invoke all`"
    document = Document(page, prose=((1, line),), blocks=())
    assert [span for _, span in spans(document)] == ["python bench/warm.py", "python -m bench.warm", "invoke all"]


# --- the README --------------------------------------------------------------------------------------------------


def test_the_readme_is_at_most_150_lines() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_LINES_AT_MOST, f"README.md has {len(lines)} lines: move a story into docs/"


def test_the_readme_leads_to_every_page_of_the_docs() -> None:
    linked = {target.partition("#")[0] for _, target in links(Document.read(README))}
    pages = {path.relative_to(REPO_ROOT).as_posix() for path in DOCUMENTS if path != README}
    assert pages <= linked, f"not linked from the README: {sorted(pages - linked)}"
