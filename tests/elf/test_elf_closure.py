"""Search order, inheritance and files of closures in synthetic roots."""

from __future__ import annotations

from pathlib import PurePosixPath as P

import pytest

from harness.elf import MissingLibraries, Resolver, closure_dict, render_tree


def test_interpreter_reached_through_merged_usr_links(root, built, abi):
    root.put("/opt/c/libC.so.1", built.libC)
    app = root.put("/usr/bin/app", built.app_first)
    root.put("/opt/second/libC.so.1", built.libC)
    closure = Resolver(root.path).resolve(app)
    assert closure.interpreter == P(abi.interpreter)
    assert closure.interpreter_real == P(abi.real)
    rtld_files = (
        (P("/lib64"), P("/usr/lib64/ld-linux-x86-64.so.2"), P("/lib"), P(abi.real))
        if abi.triplet == "x86_64-linux-gnu"
        else (P("/lib"), P("/usr/lib/ld-linux-aarch64.so.1"), P(abi.real))
    )
    assert closure.files[: len(rtld_files) + 1] == (P("/usr/bin/app"), *rtld_files)
    assert not closure.is_static


def test_origin_runpath(root, built):
    app = root.put("/opt/app/bin/app", built.app_origin)
    root.put("/opt/app/lib/libC.so.1", built.libC)
    closure = Resolver(root.path).resolve(app)
    [dep] = closure.needed
    assert (dep.soname, dep.path, dep.via, dep.real) == (
        "libC.so.1",
        P("/opt/app/bin/../lib/libC.so.1"),
        P("/opt/app/bin/app"),
        P("/opt/app/lib/libC.so.1"),
    )
    assert closure.files[-1] == P("/opt/app/lib/libC.so.1")


def test_rpath_is_inherited_by_dependencies(root, built):
    app = root.put("/usr/bin/app", built.app_rpath)
    root.put("/opt/a/lib/libB.so.1", built.libB)
    root.put("/opt/c/libC.so.1", built.libC)
    closure = Resolver(root.path).resolve(app)
    assert [(d.soname, str(d.path), str(d.via)) for d in closure.needed] == [
        ("libB.so.1", "/opt/a/lib/libB.so.1", "/usr/bin/app"),
        ("libC.so.1", "/opt/c/libC.so.1", "/opt/a/lib/libB.so.1"),
    ]


def test_runpath_is_not_inherited(root, built):
    app = root.put("/usr/bin/app", built.app_runpath)
    root.put("/opt/a/lib/libB.so.1", built.libB)
    root.put("/opt/c/libC.so.1", built.libC)
    with pytest.raises(MissingLibraries) as caught:
        Resolver(root.path).resolve(app)
    assert caught.value.missing == (("libC.so.1", P("/opt/a/lib/libB.so.1")),)
    assert str(caught.value) == ("/usr/bin/app: 1 missing library: libC.so.1 (needed by /opt/a/lib/libB.so.1)")


def test_missing_library_listed_with_requester_and_non_strict_mode(root, built):
    app = root.put("/usr/bin/app", built.app_rpath)
    with pytest.raises(MissingLibraries) as caught:
        Resolver(root.path).resolve(app)
    assert caught.value.missing == (("libB.so.1", P("/usr/bin/app")),)
    closure = Resolver(root.path).resolve(app, strict=False)
    assert closure.missing == (("libB.so.1", P("/usr/bin/app")),)
    assert "libB.so.1 => not found" in render_tree(closure)


def test_ld_library_path_comes_before_runpath(root, built):
    app = root.put("/usr/bin/app", built.app_first)
    root.put("/opt/second/libC.so.1", built.libC)
    root.put("/opt/env/libC.so.1", built.libC)
    closure = Resolver(root.path, ld_library_path=("/opt/env",)).resolve(app)
    assert closure.needed[0].path == P("/opt/env/libC.so.1")
    assert Resolver(root.path).resolve(app).needed[0].path == P("/opt/second/libC.so.1")


def test_other_class_earlier_in_the_path_is_skipped(root, built):
    app = root.put("/usr/bin/app", built.app_first)
    root.put("/opt/first/libC.so.1", built.libC32.read_bytes())
    root.put("/opt/second/libC.so.1", built.libC)
    resolver = Resolver(root.path)
    assert resolver.elf(P("/opt/first/libC.so.1")).elf_class == 32
    assert resolver.resolve(app).needed[0].path == P("/opt/second/libC.so.1")


def test_only_other_class_available_is_missing(root, built):
    app = root.put("/usr/bin/app", built.app_first)
    root.put("/opt/first/libC.so.1", built.libC32.read_bytes())
    with pytest.raises(MissingLibraries):
        Resolver(root.path).resolve(app)


def test_needed_path_with_origin(root, built):
    app = root.put("/opt/x/bin/app", built.app_dollar)
    root.put("/opt/x/lib/libX.so", built.libX)
    closure = Resolver(root.path).resolve(app)
    [dep] = closure.needed
    assert dep.soname == "$ORIGIN/../lib/libX.so"
    assert dep.path == P("/opt/x/bin/../lib/libX.so") and dep.real == P("/opt/x/lib/libX.so")


def test_ld_so_conf_without_a_cache_is_not_searched_but_named_in_the_error(root, built):
    """ld.so reads /etc/ld.so.cache only; ld.so.conf is ldconfig's (a peer's case: `invoke deps` said found)."""
    app = root.put("/usr/bin/app", built.app_plain)
    root.put("/etc/ld.so.conf", b"# comment\ninclude ld.so.conf.d/*.conf\n")
    root.put("/etc/ld.so.conf.d/10-first.conf", b"/opt/conf/one\n")
    root.put("/etc/ld.so.conf.d/20-second.conf", b"/opt/conf/two/  # trailing slash\n")
    root.put("/etc/ld.so.conf.d/.hidden.conf", b"/opt/conf/hidden\n")
    root.put("/opt/conf/hidden/libC.so.1", built.libC)
    root.put("/opt/conf/two/libC.so.1", built.libC)
    with pytest.raises(MissingLibraries) as raised:
        Resolver(root.path).resolve(app)
    # The include's glob, in order, dot files left out: the first directory that holds it.
    assert raised.value.uncached == {"libC.so.1": "/opt/conf/two"}
    assert "in /opt/conf/two, which /etc/ld.so.conf names" in str(raised.value) and "run ldconfig" in str(raised.value)
    assert [m[0] for m in Resolver(root.path).resolve(app, strict=False).missing] == ["libC.so.1"]


def test_default_directories_last(root, built, abi):
    app = root.put("/usr/bin/app", built.app_plain)
    root.put("/usr/lib/libC.so.1", built.libC)
    root.put(f"/usr/lib/{abi.triplet}/libC.so.1", built.libC)
    # /lib/<triplet> comes first: it is the same directory, through the /lib link.
    closure = Resolver(root.path).resolve(app)
    assert closure.needed[0].path == P(f"/lib/{abi.triplet}/libC.so.1")
    assert closure.needed[0].real == P(f"/usr/lib/{abi.triplet}/libC.so.1")


def test_same_library_listed_once_with_first_requester(root, built):
    app = root.put("/usr/bin/app", built.app_rpath)
    root.put("/opt/a/lib/libB.so.1", built.libB)
    root.put("/opt/c/libC.so.1", built.libC)
    closure = Resolver(root.path).resolve(app)
    assert [d.soname for d in closure.needed].count("libC.so.1") == 1
    assert len(closure.files) == len(set(closure.files))


def test_resolver_parses_each_file_once(root, built, monkeypatch):
    import harness.elf.closure as closure_module

    app = root.put("/usr/bin/app", built.app_rpath)
    root.put("/opt/a/lib/libB.so.1", built.libB)
    root.put("/opt/c/libC.so.1", built.libC)
    calls: list[str] = []
    real_read = closure_module.read_elf
    monkeypatch.setattr(closure_module, "read_elf", lambda host, path: calls.append(str(path)) or real_read(host, path))
    Resolver(root.path).resolve_many([app, app, "/opt/a/lib/libB.so.1"], strict=False)
    assert sorted(calls) == sorted(set(calls))


def test_static_executable_is_its_only_file(root, built):
    exe = root.put("/usr/bin/static", built.static)
    closure = Resolver(root.path).resolve(exe)
    assert closure.is_static and closure.needed == () and closure.interpreter is None
    assert closure.files == (P("/usr/bin/static"),)
    assert render_tree(closure) == "/usr/bin/static (statically linked)\n"


def test_dlopen_notes_optional(root, built, abi):
    app = root.put("/usr/bin/app", built.app_dlopen)
    root.put(f"/usr/lib/{abi.triplet}/libN.so.1", built.libN)
    resolver = Resolver(root.path)
    assert resolver.resolve(app).dlopen == ()
    [missing] = resolver.resolve(app, with_dlopen=True).dlopen
    assert (missing.sonames, missing.feature, missing.priority, missing.path) == (
        ("libZ.so.9", "libC.so.1"),
        "cee",
        "recommended",
        None,
    )
    root.put(f"/usr/lib/{abi.triplet}/libC.so.1", built.libC)
    [found] = Resolver(root.path).resolve(app, with_dlopen=True).dlopen
    assert found.soname == "libC.so.1" and found.path == P(f"/lib/{abi.triplet}/libC.so.1")
    assert found.via == P(f"/lib/{abi.triplet}/libN.so.1")


def test_render_tree_and_dict(root, built, abi):
    app = root.put("/usr/bin/app", built.app_rpath)
    root.put("/opt/a/lib/libB.so.1", built.libB)
    root.put("/opt/c/libC.so.1", built.libC)
    closure = Resolver(root.path).resolve(app)
    assert render_tree(closure) == (
        f"/usr/bin/app (interpreter => {abi.interpreter})\n"
        "    libB.so.1 => /opt/a/lib/libB.so.1\n"
        "        libC.so.1 => /opt/c/libC.so.1\n"
    )
    as_dict = closure_dict(closure)
    assert as_dict["path"] == "/usr/bin/app" and as_dict["interpreter"] == abi.interpreter
    assert as_dict["needed"][1] == {"soname": "libC.so.1", "path": "/opt/c/libC.so.1", "via": "/opt/a/lib/libB.so.1"}
    assert as_dict["files"] == [str(f) for f in closure.files]
