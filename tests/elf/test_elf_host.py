"""Agreement with the real loader: ldd on a sample of the host's /usr, and $LIB / $PLATFORM expansion."""

from __future__ import annotations

import os
import platform
import shutil
import stat
import subprocess
from pathlib import Path
from pathlib import PurePosixPath as P

import pytest
from hostneeds import needs

from harness.elf import ElfError, Resolver, read_elf

# The host's multiarch triplet: x86_64-linux-gnu, aarch64-linux-gnu.
TRIPLET = f"{platform.machine()}-linux-gnu"


@pytest.fixture(autouse=True)
def _multiarch_glibc_host() -> None:
    needs(
        shutil.which("ldd") is not None and Path(f"/usr/lib/{TRIPLET}").is_dir(),
        "needs a Debian-style multiarch glibc host with ldd",
    )


SAMPLE = 50
DIRS = ("/usr/bin", "/usr/sbin", f"/usr/lib/{TRIPLET}", "/usr/libexec", "/usr/lib")


def _dynamic_elves(limit: int) -> list[str]:
    candidates: list[str] = []
    for top in DIRS:
        for directory, dirs, names in os.walk(top):
            dirs.sort()
            candidates.extend(os.path.join(directory, n) for n in sorted(names))
    step = max(1, len(candidates) // (limit * 20))
    chosen: list[str] = []
    for path in candidates[::step]:
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            info = read_elf(Path(path), P(path))
        except (OSError, ElfError):
            continue
        if info.interpreter or info.needed:
            chosen.append(path)
        if len(chosen) >= limit:
            break
    return chosen


def _ldd(path: str) -> tuple[frozenset[str], frozenset[str]] | None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LD_")}
    done = subprocess.run(["ldd", path], capture_output=True, text=True, cwd="/", env=env, check=False)
    if done.returncode != 0 or "not a dynamic executable" in done.stdout + done.stderr:
        return None
    found, missing = set(), set()
    for line in done.stdout.splitlines():
        line = line.strip()
        if "=> not found" in line:
            missing.add(line.split(" => ")[0])
        elif " => " in line and line.split(" => ", 1)[1].startswith("/"):
            found.add(os.path.realpath(line.split(" => ", 1)[1].rsplit(" (", 1)[0]))
        elif line.startswith("/"):
            found.add(os.path.realpath(line.rsplit(" (", 1)[0]))
    return frozenset(found), frozenset(missing)


def test_closures_agree_with_ldd_on_host_sample():
    paths = _dynamic_elves(SAMPLE)
    assert len(paths) >= SAMPLE // 2
    resolver = Resolver(Path("/"))
    compared, differing = 0, []
    for path in paths:
        expected = _ldd(path)
        if expected is None:
            continue
        closure = resolver.resolve(path, strict=False)
        ours = (frozenset(os.path.realpath(p) for p in closure.real_paths()), frozenset(soname for soname, _ in closure.missing))
        compared += 1
        if ours != expected:
            differing.append((path, sorted(ours[0] ^ expected[0]), sorted(ours[1] ^ expected[1])))
    assert compared >= SAMPLE // 2
    assert differing == []


def _loader_platform() -> str:
    """$PLATFORM as the host's loader expands it (`ld.so --list-diagnostics`, glibc 2.33 and newer)."""
    loader = next(path for path in ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1") if Path(path).exists())
    listed = subprocess.run([loader, "--list-diagnostics"], capture_output=True, text=True, check=True).stdout
    return next(line.split('"')[1] for line in listed.splitlines() if line.startswith("dl_platform="))


def test_lib_and_platform_expand_like_the_real_loader(tmp_path):
    needs(shutil.which("gcc") is not None, "needs gcc")
    (tmp_path / "f.c").write_text("int f(void) { return 1; }\n")
    (tmp_path / "m.c").write_text("int f(void); int main(void) { return f(); }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libf.so", "-o", "libf.so", "f.c"], cwd=tmp_path, check=True)
    subprocess.run(
        ["gcc", "-o", "m", "m.c", "-L.", "-lf", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/${LIB}/$PLATFORM"],
        cwd=tmp_path,
        check=True,
    )
    closure = Resolver(Path("/")).resolve(str(tmp_path / "m"), strict=False)
    [(soname, _)] = closure.missing
    assert soname == "libf.so"
    # Put the library where our expansion says, and ask the real loader.
    runpath = read_elf(tmp_path / "m", P("/m")).runpath
    assert runpath == "$ORIGIN/${LIB}/$PLATFORM"
    # The platform this host's loader uses: the kernel's, or glibc's own name for an Intel CPU ("haswell").
    expanded = tmp_path / f"lib/{TRIPLET}/{_loader_platform()}"
    expanded.mkdir(parents=True)
    shutil.move(tmp_path / "libf.so", expanded / "libf.so")
    ours = Resolver(Path("/")).resolve(str(tmp_path / "m"))
    assert [d.real for d in ours.needed if d.soname == "libf.so"] == [P(expanded / "libf.so")]
    found = _ldd(str(tmp_path / "m"))
    assert found is not None and str(expanded / "libf.so") in found[0] and not found[1]
