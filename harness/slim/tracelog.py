"""What a program touched, read from strace's output: a pure parser, no Engine, no file system.

The tracer runs `strace -f -ff -y -qq -e trace=%file,getdents,getdents64 -o PREFIX`:
one output file per process (`-ff`), so no line is ever split by another
process's `<unfinished ...>`; `-y` prints the path behind every file
descriptor, the current folder included (`openat(AT_FDCWD</tmp>, "x", …)`),
so a relative path is made absolute from the line alone.
"""

from __future__ import annotations

import enum
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from harness.records.engine import RunResult

# Where the tracer lives in the traced container, and where it writes: names no image uses.
PREFIX = PurePosixPath("/.hello-ladder-tracer")
ROOT = PurePosixPath("/")
OUTPUT = PurePosixPath("/.hello-ladder-trace")


class Access(enum.Enum):
    """How a path was reached; the order is the strength of the reason to copy it."""

    EXECUTED = "executed"  # execve succeeded: a program (and, for a script, its interpreter)
    OPENED = "opened"  # open/openat/creat succeeded
    LISTED = "listed"  # getdents on a folder: its entries were read
    PROBED = "probed"  # stat, access, readlink… succeeded: the program checked that it exists


@dataclass(frozen=True)
class Event:
    """One system call on a path, as the traced process made it."""

    access: Access | None  # None: failed, or a call that does not say a file is needed
    path: PurePosixPath  # absolute, as asked (links not followed)
    syscall: str
    errno: str | None = None  # ENOENT, EACCES…: the call failed


@dataclass(frozen=True)
class TraceLog:
    """Every path event of one traced run, each process's in order, the processes by pid."""

    events: tuple[Event, ...]
    lines: int  # lines read
    unparsed: int  # lines that were not a path system call (signals, exits, the tracer's own notes)

    def succeeded(self) -> tuple[Event, ...]:
        return tuple(event for event in self.events if event.access is not None)

    def failed(self) -> tuple[Event, ...]:
        return tuple(event for event in self.events if event.errno is not None)


@dataclass(frozen=True)
class TracedRun:
    """One command run under the tracer in the source image: how it ended, and what it touched."""

    command: tuple[str, ...]
    result: RunResult
    log: TraceLog

    @property
    def label(self) -> str:
        return shlex.join(self.command)


# The calls whose first path argument (after an optional directory fd) is the one that matters.
_OPEN = frozenset({"open", "openat", "openat2", "creat"})
_EXEC = frozenset({"execve", "execveat"})
_LIST = frozenset({"getdents", "getdents64"})
_PROBE = frozenset(
    {
        "stat",
        "lstat",
        "newfstatat",
        "fstatat64",
        "statx",
        "access",
        "faccessat",
        "faccessat2",
        "readlink",
        "readlinkat",
        "stat64",
        "lstat64",
        "chdir",
    }
)

_LINE = re.compile(r"^(?P<call>[a-z_0-9]+)\((?P<args>.*)\)\s+=\s+(?P<ret>-?\d+|\?)(?P<rest>.*)$")
# A directory fd with its path (`AT_FDCWD</tmp>`, `3</usr/share>`), then a quoted path.
_DIRFD = re.compile(r"^(?:AT_FDCWD|-?\d+)<(?P<dir>(?:[^>\\]|\\.)*)>,\s*")
_CWD = re.compile(r"\(AT_FDCWD<(?P<dir>(?:[^>\\]|\\.)*)>")
_FD_ONLY = re.compile(r"^-?\d+<(?P<path>(?:[^>\\]|\\.)*)>")
_STRING = re.compile(r'^"(?P<text>(?:[^"\\]|\\.)*)"')
_ERRNO = re.compile(r"^\s+(?P<errno>E[A-Z0-9]+)\b")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", "\\": "\\", '"': '"', "'": "'"}


def unquote(text: str) -> str:
    """A path as strace prints it (C escapes, \\ooo octal or \\xhh bytes), back to the path (bytes as surrogates)."""
    out = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\" or i + 1 == len(text):
            out += char.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "x" and re.match(r"[0-9a-fA-F]{2}", text[i + 2 : i + 4]):
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        elif nxt in "01234567":
            digits = re.match(r"[0-7]{1,3}", text[i + 1 :])
            assert digits is not None
            out.append(int(digits.group(), 8) & 0xFF)
            i += 1 + len(digits.group())
        else:
            out += _ESCAPES.get(nxt, nxt).encode()
            i += 2
    return out.decode("utf-8", "surrogateescape")


def parse_line(line: str, cwd: PurePosixPath = ROOT) -> Event | None:
    """The path event of one strace line, or None for a line that is none (signals, exits, other calls).

    `cwd` is the process's working folder, for a relative path given to a call
    that names no folder (`stat("repo")`, `mkdir("repo")`): `-y` shows it only
    beside AT_FDCWD, so `parse` follows it from line to line.
    """
    match = _LINE.match(line.strip())
    if match is None:
        return None
    call, args, ret = match["call"], match["args"], match["ret"]
    ok = ret != "?" and int(ret) >= 0
    errno = None
    if not ok:
        found = _ERRNO.match(match["rest"])
        errno = found["errno"] if found else "?"
    if call in _LIST:
        fd = _FD_ONLY.match(args)
        if fd is None:
            return None
        path = PurePosixPath(unquote(fd["path"]))
        return Event(Access.LISTED if ok else None, path, call, errno)
    folder = cwd
    dirfd = _DIRFD.match(args)
    if call in ("openat", "openat2", "newfstatat", "fstatat64", "statx", "faccessat", "faccessat2", "readlinkat", "execveat"):
        if dirfd is None:
            return None
        folder = PurePosixPath(unquote(dirfd["dir"]))
        args = args[dirfd.end() :]
    string = _STRING.match(args)
    if string is None:
        return None
    text = unquote(string["text"])
    if not text:
        return None  # fstatat(fd, "", AT_EMPTY_PATH): a call on the fd, opened earlier
    path = folder / text if not text.startswith("/") else PurePosixPath(text)
    path = PurePosixPath(_normal(str(path)))
    if call in _EXEC:
        access = Access.EXECUTED
    elif call in _OPEN:
        access = Access.OPENED
    elif call in _PROBE:
        access = Access.PROBED
    else:
        access = None  # mkdir, unlink, rename…: the program changes the file system; nothing to copy
        if ok:
            return Event(None, path, call, None)
    return Event(access if ok else None, path, call, errno)


def _normal(path: str) -> str:
    """`..` and `.` folded lexically: the path the call named, not a guess at where links lead."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def parse(outputs: Mapping[str, str] | Iterable[str]) -> TraceLog:
    """Every event of strace's output files (name to text, one per process), by pid, each in order."""
    texts = [outputs[name] for name in sorted(outputs, key=_pid_key)] if isinstance(outputs, Mapping) else list(outputs)
    events: list[Event] = []
    lines = unparsed = 0
    for text in texts:
        cwd = PurePosixPath("/")  # the Engine's default working folder, until a line shows another
        for line in text.splitlines():
            lines += 1
            shown = _CWD.search(line)
            if shown is not None:
                cwd = PurePosixPath(unquote(shown["dir"]))
            event = parse_line(line, cwd)
            if event is None:
                unparsed += 1
                continue
            events.append(event)
            if event.syscall == "chdir" and event.access is not None:
                cwd = event.path
    return TraceLog(tuple(events), lines, unparsed)


def _pid_key(name: str) -> tuple[int, str]:
    suffix = name.rsplit(".", 1)[-1]
    return (int(suffix) if suffix.isdigit() else -1, name)
