"""Only include what you need, automatically: a `FROM scratch` image holding a program and its closure.

The tutorial finds the two libraries of its scratch image with `ldd` and
copies them by hand.  Here the resolver (`harness.elf`) reads the program's
ELF headers inside the source image's file system and lists every file the
loader would open, symlinks included; those files, the extras the user names
and the bundles they ask for become the only contents of the new image.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harness.elf import Closure, Resolver, RootFS
from harness.elf.reader import ELF_MAGIC
from harness.slim.imagewrite import ImageFile, host_entries
from harness.slim.pkgmeta import PackageMetadata, package_metadata
from harness.slim.provenance import DpkgDatabase, Provenance
from harness.slim.reasons import FileReason, Reason, Reasons, bytes_of
from harness.slim.tracefiles import TraceFindings, trace_findings, unexercised
from harness.slim.tracelog import TracedRun
from harness.stages.slimspec import Bundle, SlimError, SlimSpec

CA_BUNDLE = PurePosixPath("/etc/ssl/certs/ca-certificates.crt")
ZONEINFO = PurePosixPath("/usr/share/zoneinfo")
NSSWITCH = PurePosixPath("/etc/nsswitch.conf")
NSS_MODULES = ("libnss_files.so.2", "libnss_dns.so.2")
PASSWD = b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
GROUP = b"root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"


@dataclass(frozen=True)
class Generated:
    """A file or folder the slim image gets that the source image does not provide."""

    path: PurePosixPath
    content: bytes | None  # None: a folder
    mode: int


@dataclass(frozen=True)
class SlimPlan:
    closure: Closure
    copies: tuple[PurePosixPath, ...]  # physical paths in the source root, links kept as links
    generated: tuple[Generated, ...]
    env: tuple[tuple[str, str], ...]
    provenance: Provenance  # of the program's files (closure, extras, bundles), not of the metadata
    metadata: PackageMetadata | None = None  # None: left out (`metadata = false`)
    reasons: tuple[FileReason, ...] = ()  # every copied or generated path, with why it is there
    sizes: tuple[tuple[PurePosixPath, int], ...] = ()  # bytes of each copied regular file
    trace: TraceFindings | None = None
    unexercised: tuple[PurePosixPath, ...] = ()  # in folders a traced run listed, and not copied


def plan_slim(
    root: Path, spec: SlimSpec, source_env: tuple[tuple[str, str], ...] = (), traced: tuple[TracedRun, ...] = ()
) -> SlimPlan:
    """Everything the slim image must contain, read from the unpacked source root.

    `traced`: the runs of the command (or probes) under the tracer in the source
    image; what they touched is copied too, each file with the command that reached it.

    `source_env` is the source image's environment: its LD_LIBRARY_PATH is
    where the source's loader looks first, so the closure is resolved with it.
    """
    source_path = tuple(value for name, value in source_env if name == "LD_LIBRARY_PATH")
    resolver = Resolver(root, source_path)
    fs = RootFS(root)
    closure = resolver.resolve(spec.binary, with_dlopen=spec.with_dlopen)
    reasons = Reasons()
    reasons.add(closure.files, Reason.ELF, str(spec.binary))
    extras = _extra_files(fs, resolver, spec, reasons)
    bundled = _bundle_files(fs, resolver, closure, spec)
    bundle_names = ", ".join(bundle.value for bundle in spec.bundles)
    reasons.add(bundled.copies, Reason.BUNDLE, bundle_names)
    reasons.add((item.path for item in bundled.generated), Reason.BUNDLE, bundle_names)
    copies = [*closure.files, *extras.copies, *bundled.copies]
    elves = [spec.binary, *extras.elves, *bundled.elves]  # every ELF file whose closure is copied
    findings = trace_findings(fs, resolver, traced) if traced else None
    if findings is not None:
        copies += findings.paths()
        elves += [elf for elf in findings.elves if elf not in elves]
        for item in findings.files:
            reasons.add((item.path,), Reason.TRACE, f"{item.access.value} by `{item.command}`")
    env = [*bundled.env, *_with_library_path(spec.env, library_path(root, elves, spec.env, source_path))]
    provenance = DpkgDatabase(root).provenance(tuple(dict.fromkeys(copies)))
    metadata = package_metadata(root, provenance) if spec.metadata else None
    described = _metadata_files(metadata, reasons)
    copies += described.copies
    generated = (*bundled.generated, *described.generated)
    final = tuple(dict.fromkeys(copies))
    sizes = tuple((path, bytes_of(fs, path)) for path in final)
    missed = unexercised(fs, findings, final) if findings is not None else ()
    return SlimPlan(closure, final, generated, tuple(env), provenance, metadata, reasons.result(), sizes, findings, missed)


@dataclass(frozen=True)
class _Files:
    """What one part of the plan (the extras, the bundles) adds to the image."""

    copies: tuple[PurePosixPath, ...] = ()
    elves: tuple[PurePosixPath, ...] = ()  # of the copies, the ELF files whose closure is copied too
    generated: tuple[Generated, ...] = ()
    env: tuple[tuple[str, str], ...] = ()


def _extra_files(fs: RootFS, resolver: Resolver, spec: SlimSpec, reasons: Reasons) -> _Files:
    """The extras the user names (--extra, extras_from), each with why it is there."""
    extras = [(extra, "--extra") for extra in spec.extras]
    if spec.extras_from is not None:
        extras += [(extra, f"listed in {spec.extras_from}") for extra in _listed_paths(fs, spec.extras_from)]
    copies: list[PurePosixPath] = []
    elves: list[PurePosixPath] = []
    for extra, why in extras:
        tree = _tree(fs, extra, why)
        copies += tree
        reasons.add(tree, Reason.EXTRA, why)
        # An extra that is itself an ELF file (a Python extension module, say) brings its own closure.
        for path in tree:
            if _is_elf(fs, path):
                copies += resolver.resolve(path).files
                reasons.add(resolver.resolve(path).files, Reason.EXTRA, f"ELF closure of {path}")
                elves.append(path)
    return _Files(tuple(copies), tuple(elves))


def _bundle_files(fs: RootFS, resolver: Resolver, closure: Closure, spec: SlimSpec) -> _Files:
    """The files of the bundles asked for (--with), copied from the source or generated."""
    copies: list[PurePosixPath] = []
    elves: list[PurePosixPath] = []
    generated: list[Generated] = []
    env: list[tuple[str, str]] = []
    for bundle in spec.bundles:
        if bundle is Bundle.CERTS:
            copies += _tree(fs, CA_BUNDLE, "bundle certs (install ca-certificates in the source image)")
            env.append(("SSL_CERT_FILE", str(CA_BUNDLE)))
        elif bundle is Bundle.TZDATA:
            copies += _tree(fs, ZONEINFO, "bundle tzdata (install tzdata in the source image)")
        elif bundle is Bundle.PASSWD:
            generated += [
                Generated(PurePosixPath("/etc/passwd"), PASSWD, 0o644),
                Generated(PurePosixPath("/etc/group"), GROUP, 0o644),
                Generated(PurePosixPath("/home/nonroot"), None, 0o700),
            ]
        elif bundle is Bundle.TMP:
            generated.append(Generated(PurePosixPath("/tmp"), None, 0o1777))
        elif bundle is Bundle.NSS:
            nss = _nss_files(fs, resolver, closure, spec.binary)
            copies += nss.copies
            elves += nss.elves
    return _Files(tuple(copies), tuple(elves), tuple(generated), tuple(env))


def _nss_files(fs: RootFS, resolver: Resolver, closure: Closure, binary: PurePosixPath) -> _Files:
    """nsswitch.conf, and the NSS modules the program's glibc would load with their closures."""
    copies = _tree(fs, NSSWITCH, "bundle nss")
    # glibc dlopens its NSS modules from the folder it was loaded from.
    libc = next((dep for dep in closure.needed if dep.soname.startswith("libc.so")), None)
    if libc is None:
        raise SlimError(f"bundle nss: {binary} does not load glibc, so it loads no NSS modules")
    elves = []
    for module in NSS_MODULES:
        found = fs.resolve(libc.path.parent / module)
        if found is None:
            raise SlimError(f"bundle nss: {libc.path.parent / module}: not in the source image")
        copies += resolver.resolve(found.path).files
        elves.append(found.path)
    return _Files(tuple(copies), tuple(elves))


def _metadata_files(metadata: PackageMetadata | None, reasons: Reasons) -> _Files:
    """The packages' dpkg metadata and copyright files: copied or generated; none when left out."""
    if metadata is None:
        return _Files()
    reasons.add(metadata.copies, Reason.METADATA)
    reasons.add((item.path for item in metadata.files), Reason.METADATA)
    return _Files(metadata.copies, generated=tuple(Generated(item.path, item.content, 0o644) for item in metadata.files))


def library_path(
    root: Path, elves: list[PurePosixPath], env: tuple[tuple[str, str], ...], source_path: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """The folders the slim image's LD_LIBRARY_PATH must name so that its loader finds what the source's found.

    The slim image has no /etc/ld.so.cache (nor ld.so.conf), nor the source
    image's environment: a library the source's loader found only through the
    cache, in a folder ld.so.conf.d named (/usr/local/lib/<name>), or through
    the source's LD_LIBRARY_PATH (`source_path`), is not found there.  Naming its folder in
    LD_LIBRARY_PATH is the smallest change that makes the copied layout load;
    each ELF file is resolved again the way the slim image's loader will, to check.
    """
    given = [value for name, value in env if name == "LD_LIBRARY_PATH"]
    source = Resolver(root, source_path)
    closures = {elf: source.resolve(elf) for elf in elves}
    wanted = {elf: closure.real_paths() for elf, closure in closures.items()}
    dirs: list[str] = []
    # One folder at a time, the first library (in load order) not found: the libraries it needs
    # are missing only because it is, until its folder is named.
    for _ in range(sum(len(closure.needed) for closure in closures.values()) + 1):
        bare = Resolver(root, [*given, *dirs], ld_cache=False)
        missing = [
            dep
            for elf, closure in closures.items()
            for dep in closure.needed
            if dep.real not in bare.resolve(elf, strict=False).real_paths()
        ]
        if not missing or str(missing[0].path.parent) in dirs:
            break
        dirs.append(str(missing[0].path.parent))
    bare = Resolver(root, [*given, *dirs], ld_cache=False)
    for elf, reals in wanted.items():
        found = bare.resolve(elf, strict=False).real_paths()
        if found != reals:
            differ = ", ".join(sorted(map(str, reals ^ found)))
            raise SlimError(f"{elf}: loads other files without ld.so.cache, even with LD_LIBRARY_PATH={':'.join(dirs)}: {differ}")
    return tuple(dirs)


def _with_library_path(env: tuple[tuple[str, str], ...], dirs: tuple[str, ...]) -> list[tuple[str, str]]:
    """`env`, with `dirs` after any LD_LIBRARY_PATH it sets already."""
    if not dirs:
        return list(env)
    extra = ":".join(dirs)
    if not any(name == "LD_LIBRARY_PATH" for name, _ in env):
        return [*env, ("LD_LIBRARY_PATH", extra)]
    return [(name, f"{value}:{extra}" if name == "LD_LIBRARY_PATH" else value) for name, value in env]


def _listed_paths(fs: RootFS, listing: PurePosixPath) -> list[PurePosixPath]:
    """The absolute paths a file in the source image lists, one per line; blank lines and # comments skipped."""
    found = fs.resolve(listing)
    if found is None or not found.is_file:
        raise SlimError(f"{listing}: not in the source image (extras_from: the build must write it)")
    paths = []
    text = fs.host_path(found.real).read_text(encoding="utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("/"):
            raise SlimError(f"{listing}, line {number}: {line!r} is not an absolute path")
        paths.append(PurePosixPath(line))
    return paths


def _is_elf(fs: RootFS, path: PurePosixPath) -> bool:
    host = fs.host_path(path)
    if host.is_symlink() or not host.is_file():
        return False
    with open(host, "rb") as handle:
        return handle.read(len(ELF_MAGIC)) == ELF_MAGIC


def _tree(fs: RootFS, path: PurePosixPath, what: str) -> list[PurePosixPath]:
    """A path (with the links on its way) and, for a folder, everything below it."""
    found = fs.resolve(path)
    if found is None:
        raise SlimError(f"{path}: not in the source image ({what})")
    paths = list(found.files)
    if not found.is_file:
        host = fs.host_path(found.real)
        for folder, dirs, names in os.walk(host):
            dirs.sort()
            for name in sorted([*dirs, *names]):
                inside = PurePosixPath("/") / Path(folder, name).relative_to(fs.root)
                paths.append(inside)
    return paths


def layer_entries(root: Path, plan: SlimPlan) -> list[ImageFile]:
    """Everything the slim image's one layer holds: the planned copies as they are in the source, and the generated files."""
    entries = host_entries(root, plan.copies)
    for item in plan.generated:
        kind = stat.S_IFDIR if item.content is None else stat.S_IFREG
        entries.append(ImageFile(item.path, kind | item.mode, item.content))
    return entries
