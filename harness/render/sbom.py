"""An SPDX 2.3 document of a slim image: every regular file of its layer, with the Debian package it came from.

Made with spdx-tools, the SPDX project's own library, which validates the
document before writing it.  Everything in it comes from the layer tar and
the provenance, and its `created` is the image's epoch, so the same image
always gives the same document.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePosixPath
from urllib.parse import quote

# From the modules that define them: spdx-tools' own annotations type them, but `spdx_tools.spdx.model`
# re-exports them implicitly, which strict mypy does not follow.
from spdx_tools.spdx.model.actor import Actor, ActorType
from spdx_tools.spdx.model.checksum import Checksum, ChecksumAlgorithm
from spdx_tools.spdx.model.document import CreationInfo, Document
from spdx_tools.spdx.model.file import File
from spdx_tools.spdx.model.package import ExternalPackageRef, ExternalPackageRefCategory, Package, PackageVerificationCode
from spdx_tools.spdx.model.relationship import Relationship, RelationshipType
from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

from harness.records.errors import HarnessError
from harness.slim.provenance import DebPackage, Provenance

SPDX_VERSION = "SPDX-2.3"
IMAGE_ID = "SPDXRef-Image"


class SbomError(HarnessError):
    """A document the SPDX validator rejects."""


@dataclass(frozen=True)
class SbomSubject:
    """The image the document describes."""

    name: str  # the stage or the tag
    tag: str
    image_id: str
    epoch: int


def spdx_document(
    subject: SbomSubject, layer: bytes, provenance: Provenance, reasons: Mapping[PurePosixPath, str] | None = None
) -> Document:
    """`reasons`: why each file is in the image (harness.slim.reasons), written as the file's comment."""
    created = datetime.fromtimestamp(subject.epoch, tz=timezone.utc)
    info = CreationInfo(
        spdx_version=SPDX_VERSION,
        spdx_id="SPDXRef-DOCUMENT",
        name=subject.name,
        # A unique URI per document, as the SPDX specification suggests: the image ID makes it so.
        document_namespace=f"https://spdx.org/spdxdocs/hello-ladder/{_ref(subject.name)}-{subject.image_id.split(':')[-1]}",
        creators=[Actor(ActorType.TOOL, "hello-ladder")],
        created=created,
    )
    owners = dict(provenance.owners)
    files = []
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, IMAGE_ID)]
    sha1s: dict[str, list[str]] = {}  # package SPDX id -> its files' SHA-1s
    for index, (path, data) in enumerate(_regular_files(layer), start=1):
        file_id, sha1 = f"SPDXRef-File-{index}", hashlib.sha1(data).hexdigest()
        files.append(
            File(
                f".{path}",
                file_id,
                [Checksum(ChecksumAlgorithm.SHA1, sha1), Checksum(ChecksumAlgorithm.SHA256, hashlib.sha256(data).hexdigest())],
                comment=(reasons or {}).get(path),
            )
        )
        owner = owners.get(path)
        parent = _package_id(owner) if owner is not None else IMAGE_ID
        relationships.append(Relationship(parent, RelationshipType.CONTAINS, file_id))
        sha1s.setdefault(parent, []).append(sha1)
    # The image's own files are the metadata and the files of no package; the packages are its dependencies.
    image = Package(
        IMAGE_ID,
        subject.tag,
        SpdxNoAssertion(),
        version=subject.image_id,
        verification_code=_verification_code(sha1s.get(IMAGE_ID, [])),
        comment="a FROM scratch image written by hello-ladder slim",
    )
    debs = [_deb_package(package, sha1s.get(_package_id(package.name), [])) for package in provenance.packages]
    relationships += [Relationship(IMAGE_ID, RelationshipType.DEPENDS_ON, deb.spdx_id) for deb in debs]
    return Document(info, packages=[image, *debs], files=files, relationships=relationships)


def render_spdx_json(document: Document) -> str:
    """The document as SPDX JSON, after the library's own validation."""
    problems = validate_full_spdx_document(document)
    if problems:
        raise SbomError(f"{document.creation_info.name}: SPDX validation failed: {problems[0].validation_message}")
    stream = io.StringIO()
    write_document_to_stream(document, stream, validate=False)
    return json.dumps(json.loads(stream.getvalue()), indent=2, sort_keys=True) + "\n"


def _package_id(name: str) -> str:
    return f"SPDXRef-Package-deb-{_ref(name)}"


def _verification_code(sha1s: list[str]) -> PackageVerificationCode:
    """SPDX's package verification code: the SHA-1 of the package's files' SHA-1s, sorted and concatenated."""
    return PackageVerificationCode(hashlib.sha1("".join(sorted(sha1s)).encode()).hexdigest())


def _deb_package(package: DebPackage, sha1s: list[str]) -> Package:
    purl = f"pkg:deb/debian/{package.name}@{quote(package.version, safe='')}?arch={package.architecture}"
    if package.source_name != package.name:
        purl += f"&upstream={quote(package.source_name, safe='')}"
    return Package(
        _package_id(package.name),
        package.name,
        SpdxNoAssertion(),
        version=package.version,
        verification_code=_verification_code(sha1s),
        source_info=f"Debian source package {package.source_name}",
        external_references=[ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", purl)],
    )


def _regular_files(layer: bytes) -> list[tuple[PurePosixPath, bytes]]:
    files = []
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        for member in tar:
            if member.isreg():
                handle = tar.extractfile(member)
                assert handle is not None
                files.append((PurePosixPath("/" + member.name), handle.read()))
    return files


def _ref(text: str) -> str:
    """An SPDX identifier's allowed characters: letters, digits, `.` and `-`."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", text)
