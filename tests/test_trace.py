"""The tracer's parts without an Engine: strace's lines read back, and a trace read against a source root."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from harness.elf import Resolver, RootFS
from harness.records.engine import RunResult
from harness.slim.reasons import FileReason, Reason, render_reasons, totals
from harness.slim.tracefiles import Noise, render_findings, trace_findings, unexercised
from harness.slim.tracelog import Access, TracedRun, parse, parse_line, unquote
from harness.slim.tracer import STRACE_OPTIONS, TraceError, TracerBundle, TracerOfAnotherArchitecture, trace_commands

from .fakes import FakeEngine

P = PurePosixPath


def test_open_with_the_path_behind_the_fd() -> None:
    event = parse_line('openat(AT_FDCWD</tmp>, "/etc/magic", O_RDONLY) = 3</etc/magic>')
    assert event is not None and (event.access, event.path, event.errno) == (Access.OPENED, P("/etc/magic"), None)


def test_relative_paths_join_the_folder_shown() -> None:
    event = parse_line('openat(AT_FDCWD</usr/share>, "misc/../misc/magic.mgc", O_RDONLY) = 3</usr/lib/file/magic.mgc>')
    assert event is not None and event.path == P("/usr/share/misc/magic.mgc")


def test_failed_calls_keep_their_errno_and_copy_nothing() -> None:
    event = parse_line('openat(AT_FDCWD</>, "/etc/magic.mgc", O_RDONLY) = -1 ENOENT (No such file or directory)')
    assert event is not None and (event.access, event.errno) == (None, "ENOENT")


def test_exec_listing_and_probe() -> None:
    assert parse_line('execve("/usr/bin/file", ["file"], 0x7ff /* 3 vars */) = 0').access is Access.EXECUTED
    listed = parse_line("getdents64(3</usr/lib/git-core>, 0x55d0 /* 12 entries */, 32768) = 480")
    assert listed is not None and (listed.access, listed.path) == (Access.LISTED, P("/usr/lib/git-core"))
    probe = parse_line('newfstatat(AT_FDCWD</>, "/etc/magic", {st_mode=S_IFREG|0644, ...}, 0) = 0')
    assert probe is not None and probe.access is Access.PROBED


def test_calls_on_an_fd_alone_and_other_lines_are_no_events() -> None:
    assert parse_line('newfstatat(3</etc/ld.so.cache>, "", {st_mode=S_IFREG|0644, ...}, AT_EMPTY_PATH) = 0') is None
    assert parse_line("+++ exited with 0 +++") is None
    assert parse_line("--- SIGCHLD {si_signo=SIGCHLD} ---") is None


def test_the_working_folder_is_followed_for_calls_that_name_none() -> None:
    log = parse(
        {
            "trace.7": 'openat(AT_FDCWD</tmp>, "x", O_RDONLY) = 3</tmp/x>\nmkdir("repo", 0777) = 0\n'
            'chdir("repo") = 0\nstat("HEAD", 0x1) = -1 ENOENT (No such file or directory)\n'
        }
    )
    assert [event.path for event in log.events] == [P("/tmp/x"), P("/tmp/repo"), P("/tmp/repo"), P("/tmp/repo/HEAD")]


def test_escaped_paths_are_decoded() -> None:
    assert unquote(r"caf\303\251 \"q\"\x41") == 'café "q"A'


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for name, text in {
        "usr/share/misc/magic.mgc": "m",
        "usr/share/git-core/templates/description": "d",
        "usr/share/git-core/templates/info/exclude": "e",
        "usr/bin/tool": "#!/usr/bin/interp\n",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "usr/bin/interp").write_bytes(Path("/usr/bin/true").read_bytes())  # a real ELF file
    os.symlink("usr/bin", root / "bin")
    (root / "tmp").mkdir()
    return root


def _run(text: str, command: tuple[str, ...] = ("tool",)) -> TracedRun:
    return TracedRun(command, RunResult("", "", 0), parse({"trace.1": text}))


def test_a_trace_read_against_the_source_root(tmp_path: Path) -> None:
    root = _root(tmp_path)
    run = _run(
        'execve("/bin/tool", ["tool"], 0x1 /* 1 var */) = 0\n'
        'openat(AT_FDCWD</>, "/usr/share/misc/magic.mgc", O_RDONLY) = 3</usr/share/misc/magic.mgc>\n'
        'openat(AT_FDCWD</>, "/usr/share/git-core/templates", O_RDONLY|O_DIRECTORY) = 3</usr/share/git-core/templates>\n'
        "getdents64(3</usr/share/git-core/templates>, 0x1 /* 4 entries */, 32768) = 112\n"
        'openat(AT_FDCWD</>, "/usr/share/git-core/templates/description", O_RDONLY) = 4</x>\n'
        'openat(AT_FDCWD</>, "/etc/ld.so.preload", O_RDONLY) = -1 ENOENT (No such file or directory)\n'
        'openat(AT_FDCWD</>, "/proc/self/maps", O_RDONLY) = 3</proc/1/maps>\n'
        'openat(AT_FDCWD</>, "/etc/resolv.conf", O_RDONLY) = 3</etc/resolv.conf>\n'
        'openat(AT_FDCWD</tmp>, "made", O_WRONLY|O_CREAT, 0666) = 3</tmp/made>\n'
    )
    fs = RootFS(root)
    findings = trace_findings(fs, Resolver(root), (run,))
    paths = findings.paths()
    # The program, the link on its way, its #! interpreter; the data file; the folder but not what it holds.
    for wanted in (
        "/bin",
        "/usr/bin/tool",
        "/usr/bin/interp",
        "/usr/share/misc/magic.mgc",
        "/usr/share/git-core/templates",
        "/usr/share/git-core/templates/description",
    ):
        assert P(wanted) in paths
    assert P("/usr/share/git-core/templates/info") not in paths
    assert dict((path, kind) for kind, path in findings.noise) == {
        P("/etc/ld.so.preload"): Noise.ABSENT,
        P("/proc/self/maps"): Noise.KERNEL,
        P("/etc/resolv.conf"): Noise.ENGINE,
        P("/tmp/made"): Noise.RUNTIME,
    }
    assert unexercised(fs, findings, paths) == (P("/usr/share/git-core/templates/info"),)
    report = "\n".join(render_findings(findings, [P("/usr/share/misc/magic.mgc")], unexercised(fs, findings, paths)))
    assert report.startswith("traced `tool`: exit code 0\n")
    assert "traced, not found by the resolver, by `tool` (1):\n  opened   /usr/share/misc/magic.mgc\n" in report
    assert "absent: 1 paths" in report and "/usr/share/git-core/templates/info" in report


def test_a_path_keeps_its_strongest_access(tmp_path: Path) -> None:
    root = _root(tmp_path)
    run = _run(
        'newfstatat(AT_FDCWD</>, "/usr/share/misc/magic.mgc", {}, 0) = 0\n'
        'openat(AT_FDCWD</>, "/usr/share/misc/magic.mgc", O_RDONLY) = 3</x>\n'
    )
    findings = trace_findings(RootFS(root), Resolver(root), (run,))
    assert [(item.path, item.access) for item in findings.files] == [(P("/usr/share/misc/magic.mgc"), Access.OPENED)]


def test_a_file_probed_as_a_search_folder_is_not_copied(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "usr/bin/x86_64").symlink_to("tool")  # as util-linux's /usr/bin/x86_64 links to setarch
    run = _run(
        'newfstatat(AT_FDCWD</>, "/usr/bin/x86_64", {}, 0) = 0\n'
        'openat(AT_FDCWD</>, "/usr/bin/x86_64/libnode.so.108", O_RDONLY) = -1 ENOTDIR (Not a directory)\n'
        'newfstatat(AT_FDCWD</>, "/usr/share/misc/magic.mgc", {}, 0) = 0\n'
    )
    findings = trace_findings(RootFS(root), Resolver(root), (run,))
    # Neither the link nor what it names: only the file probed as a file.
    assert findings.paths() == (P("/usr/share/misc/magic.mgc"),)
    assert (Noise.FAILED, P("/usr/bin/x86_64")) in findings.noise


def test_reasons_total_files_and_bytes() -> None:
    reasons = (
        FileReason(P("/a"), Reason.ELF),
        FileReason(P("/b"), Reason.TRACE, "opened by `x`"),
        FileReason(P("/c"), Reason.TRACE, "opened by `x`"),
    )
    sizes = {P("/a"): 10, P("/b"): 5, P("/c"): 7}
    assert [(t.reason, t.files, t.bytes) for t in totals(reasons, sizes)] == [(Reason.ELF, 1, 10), (Reason.TRACE, 2, 12)]
    assert render_reasons(reasons, sizes)[1:] == [
        "  elf           1 files           10 bytes",
        "  trace         2 files           12 bytes",
    ]


def test_the_tracer_runs_through_its_own_loader(tmp_path: Path) -> None:
    bundle = TracerBundle((("strace", tmp_path),), "ld.so", "strace", "62")
    command = bundle.command(("file", "/usr/bin/file"))
    assert command[:3] == ("/.hello-ladder-tracer/ld.so", "--library-path", "/.hello-ladder-tracer/lib")
    assert command[-3:] == ("--", "file", "/usr/bin/file") and "-ff" in STRACE_OPTIONS


def test_traced_runs_are_locked_down_with_a_tmpfs_and_read_back(tmp_path: Path) -> None:
    (tmp_path / "strace").write_bytes(b"\x7fELF")
    bundle = TracerBundle((("strace", tmp_path / "strace"),), "ld.so", "strace", "62")
    engine = FakeEngine(traces={"file /usr/bin/file": 'openat(AT_FDCWD</>, "/etc/magic", O_RDONLY) = 3</etc/magic>\n'})
    (run,) = trace_commands(engine, "src", (("file", "/usr/bin/file"),), "65534:65534", {}, bundle=bundle)
    assert [(event.access, event.path) for event in run.log.events] == [(Access.OPENED, P("/etc/magic"))]
    _, command, policy, _ = engine.ran[0]
    assert command[0] == "/.hello-ladder-tracer/ld.so" and policy.tmpfs == ("/tmp",) and policy.user == "65534:65534"


def test_a_tracer_that_wrote_nothing_is_an_error_with_the_evidence(tmp_path: Path) -> None:
    (tmp_path / "strace").write_bytes(b"\x7fELF")
    bundle = TracerBundle((("strace", tmp_path / "strace"),), "ld.so", "strace", "62")
    engine = FakeEngine(outputs={"src": RunResult("", "exec format error", 1)})
    with pytest.raises(TraceError, match="the tracer wrote nothing: exec format error"):
        trace_commands(engine, "src", (("file",),), "65534:65534", {}, bundle=bundle)


def test_an_image_of_another_architecture_without_its_emulator_is_refused_before_any_run(tmp_path: Path) -> None:
    bundle = TracerBundle((("strace", tmp_path / "strace"),), "ld.so", "strace", "62")
    engine = FakeEngine()
    with pytest.raises(TracerOfAnotherArchitecture, match="an arm64 image, and the tracer here is amd64: no emulation"):
        trace_commands(
            engine,
            "src",
            (("file",),),
            "65534:65534",
            {},
            bundle=bundle,
            architecture="arm64",
            emulation="no emulation for aarch64: binfmt_misc is not mounted",
        )
    assert engine.ran == []


def test_an_image_of_another_architecture_is_traced_through_its_emulator(tmp_path: Path) -> None:
    (tmp_path / "strace").write_bytes(b"\x7fELF")
    bundle = TracerBundle((("strace", tmp_path / "strace"),), "ld.so", "strace", "62")
    engine = FakeEngine(traces={"file": 'openat(AT_FDCWD</>, "/etc/magic", O_RDONLY) = 3</etc/magic>\n'})
    (run,) = trace_commands(engine, "src", (("file",),), "65534:65534", {}, bundle=bundle, architecture="arm64")
    assert [(event.access, event.path) for event in run.log.events] == [(Access.OPENED, P("/etc/magic"))]
    assert engine.ran[0][1][0] == "/.hello-ladder-tracer/ld.so"
