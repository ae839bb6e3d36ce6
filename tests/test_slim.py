"""Planning a scratch image from a root file system (the host's own, read only)."""

import io
import re
import shutil
import subprocess
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from harness.elf.errors import MissingLibraries
from harness.records.errors import StageConfigError
from harness.slim.imagewrite import layer_tar
from harness.slim.plan import layer_entries, plan_slim
from harness.stages.slimspec import Bundle, SlimError, SlimSpec
from harness.stages.stage import load_stage

from .conftest import REPO_ROOT
from .elf.hostneeds import needs
from .test_stages import VALID, make_stage

HOST = Path("/")
TRUE = PurePosixPath("/usr/bin/true")


EPOCH = 1_700_000_000


def layer_members(plan_root: Path, plan) -> dict[str, tarfile.TarInfo]:  # type: ignore[no-untyped-def]
    layer = layer_tar(layer_entries(plan_root, plan), EPOCH)
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return {info.name: info for info in tar.getmembers()}


def test_the_plan_is_the_closure_with_links_kept_as_links() -> None:
    plan = plan_slim(HOST, SlimSpec(TRUE, metadata=False))
    assert plan.copies == plan.closure.files and plan.metadata is None
    members = layer_members(HOST, plan)
    for path in plan.copies:
        info = members[str(path).lstrip("/")]
        assert info.issym() == Path(path).is_symlink()
    assert members["usr"].isdir()  # parent folders are made, owned by root
    assert all(info.uid == 0 and info.mtime <= EPOCH for info in members.values())


def test_bundles_add_what_no_elf_reference_shows() -> None:
    plan = plan_slim(HOST, SlimSpec(TRUE, bundles=(Bundle.PASSWD, Bundle.TMP)))
    generated = {str(item.path): item for item in plan.generated}
    assert b"nobody:x:65534:65534" in (generated["/etc/passwd"].content or b"")
    assert generated["/tmp"].mode == 0o1777 and generated["/tmp"].content is None
    members = layer_members(HOST, plan)
    assert members["tmp"].mode == 0o1777


def test_unknown_bundles_and_missing_extras_are_clear_errors() -> None:
    with pytest.raises(SlimError, match="unknown bundle"):
        Bundle.parse_list("certs,sertz")
    with pytest.raises(SlimError, match="/no/such/file: not in the source image"):
        plan_slim(HOST, SlimSpec(TRUE, extras=(PurePosixPath("/no/such/file"),)))


def test_the_scratch_auto_stage_asks_for_the_resolver() -> None:
    stage = load_stage(REPO_ROOT / "stages" / "08-scratch-auto")
    assert stage.slim == SlimSpec(PurePosixPath("/hello"))


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ('binary = "hello"', "slim.binary"),
        ('binary = "/h"\nwith = ["certz"]', "slim.with"),
        ('binary = "/h"\nextra = "x"', "slim.extra"),
        ('binary = "/h"\nsize = 1', "slim.size"),
        ('binary = "/h"\nextras_from = "imports.txt"', "slim.extras_from"),
        ('binary = "/h"\nenv = {A = 1}', "slim.env"),
        ('binary = "/h"\nenv = {"A-B" = "x"}', "slim.env"),
        ('binary = "/h"\nmetadata = "no"', "slim.metadata"),
    ],
)
def test_a_malformed_slim_table_names_the_field(tmp_path: Path, table: str, field: str) -> None:
    folder = make_stage(tmp_path, toml=VALID.replace("[expect]", f"[slim]\n{table}\n\n[expect]"))
    with pytest.raises(StageConfigError) as caught:
        load_stage(folder)
    assert caught.value.field == field


def test_extras_from_copies_what_a_file_in_the_image_lists(tmp_path: Path) -> None:
    listing = tmp_path / "imports.txt"
    listing.write_text(f"# written by the build\n\n{tmp_path / 'a.pyc'}\n  {tmp_path / 'pkg'}\n")
    (tmp_path / "a.pyc").write_bytes(b"code")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.pyc").write_bytes(b"code")
    plan = plan_slim(HOST, SlimSpec(TRUE, extras_from=PurePosixPath(listing)))
    copies = set(map(str, plan.copies))
    assert {str(tmp_path / "a.pyc"), str(tmp_path / "pkg"), str(tmp_path / "pkg" / "__init__.pyc")} <= copies
    assert str(listing) not in copies


def test_an_elf_extra_brings_its_own_closure() -> None:
    program = PurePosixPath("/usr/bin/python3")  # any host program with libraries true does not need
    plan = plan_slim(HOST, SlimSpec(TRUE, extras=(program,)))
    own = plan_slim(HOST, SlimSpec(program)).closure.files
    assert set(own) - set(plan.closure.files), "the extra needs libraries the binary does not"
    assert set(own) <= set(plan.copies)


@pytest.mark.parametrize(
    ("listing", "message"),
    [
        (None, "not in the source image (extras_from"),
        ("relative/path\n", "line 1: 'relative/path' is not an absolute path"),
        ("/no/such/module.pyc\n", "/no/such/module.pyc: not in the source image (listed in"),
    ],
)
def test_a_bad_extras_from_listing_is_a_clear_error(tmp_path: Path, listing: str | None, message: str) -> None:
    path = tmp_path / "imports.txt"
    if listing is not None:
        path.write_text(listing)
    with pytest.raises(SlimError, match=re.escape(message)):
        plan_slim(HOST, SlimSpec(TRUE, extras_from=PurePosixPath(path)))


def test_env_names_are_checked() -> None:
    with pytest.raises(SlimError, match="names are letters"):
        SlimSpec(TRUE, env=(("NOT-A-NAME", "x"),))


def test_the_python_scratch_stage_asks_the_build_for_its_modules() -> None:
    stage = load_stage(REPO_ROOT / "stages" / "42-python-scratch")
    assert stage.slim is not None
    assert stage.slim.binary == PurePosixPath("/usr/bin/python3")
    assert stage.slim.extras_from == PurePosixPath("/imports.txt")
    assert dict(stage.slim.env) == {"PYTHONHOME": "/usr"}


def copy_closure(root: Path, program: str) -> None:
    """The host's `program` and its closure, links kept as links, under `root`."""
    for path in plan_slim(HOST, SlimSpec(PurePosixPath(program), metadata=False)).copies:
        target = root / str(path).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if Path(path).is_symlink():
            target.symlink_to(Path(path).readlink())
        else:
            target.write_bytes(Path(path).read_bytes())
            target.chmod(Path(path).stat().st_mode & 0o777)


def _ldconfig(root: Path) -> None:
    """The root's /etc/ld.so.cache made from its ld.so.conf, as a Debian image's is (ld.so reads only the cache)."""
    needs(shutil.which("ldconfig") is not None, "needs ldconfig")
    subprocess.run(["ldconfig", "-r", str(root)], check=True, capture_output=True)


def test_a_library_found_through_ld_so_conf_gets_its_folder_in_ld_library_path(tmp_path: Path) -> None:
    """The slim image has no ld.so.cache or ld.so.conf: a folder only they named must be in LD_LIBRARY_PATH."""
    copy_closure(tmp_path, "/usr/bin/python3")
    libz = sorted((tmp_path / "usr/lib/x86_64-linux-gnu").glob("libz.so.1*"))
    assert libz, "the host's python3 loads libz"
    (tmp_path / "usr/local/lib/z").mkdir(parents=True)
    for path in libz:
        path.rename(tmp_path / "usr/local/lib/z" / path.name)
    (tmp_path / "etc/ld.so.conf.d").mkdir(parents=True)
    (tmp_path / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    (tmp_path / "etc/ld.so.conf.d/z.conf").write_text("/usr/local/lib/z\n")
    _ldconfig(tmp_path)
    plan = plan_slim(tmp_path, SlimSpec(PurePosixPath("/usr/bin/python3"), env=(("LD_LIBRARY_PATH", "/mine"),)))
    assert PurePosixPath("/usr/local/lib/z/libz.so.1") in plan.copies
    assert dict(plan.env)["LD_LIBRARY_PATH"] == "/mine:/usr/local/lib/z"
    (tmp_path / "etc/ld.so.conf.d/z.conf").unlink()
    _ldconfig(tmp_path)
    with pytest.raises(MissingLibraries, match="libz.so.1"):  # not found at all: the resolver says so
        plan_slim(tmp_path, SlimSpec(PurePosixPath("/usr/bin/python3")))


def test_libraries_in_the_default_folders_need_no_ld_library_path(tmp_path: Path) -> None:
    copy_closure(tmp_path, "/usr/bin/python3")
    assert "LD_LIBRARY_PATH" not in dict(plan_slim(tmp_path, SlimSpec(PurePosixPath("/usr/bin/python3"))).env)


def test_a_library_found_through_the_sources_ld_library_path_gets_its_folder_too(tmp_path: Path) -> None:
    """The slim image does not inherit the source image's environment: its LD_LIBRARY_PATH is carried over as needed."""
    copy_closure(tmp_path, "/usr/bin/python3")
    (tmp_path / "opt/z").mkdir(parents=True)
    for path in sorted((tmp_path / "usr/lib/x86_64-linux-gnu").glob("libz.so.1*")):
        path.rename(tmp_path / "opt/z" / path.name)
    source_env = (("PATH", "/usr/bin"), ("LD_LIBRARY_PATH", "/opt/z:/opt/unused"))
    plan = plan_slim(tmp_path, SlimSpec(PurePosixPath("/usr/bin/python3")), source_env)
    assert PurePosixPath("/opt/z/libz.so.1") in plan.copies
    assert dict(plan.env) == {"LD_LIBRARY_PATH": "/opt/z"}
