"""The SPDX document of a slim image: valid by spdx-tools' own validator, every regular file with its package."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from harness.custody.ledger import Ledger
from harness.custody.made import Made
from harness.records import labels
from harness.render.sbom import SbomSubject, render_spdx_json, spdx_document
from harness.run.slimbuild import build_slim_image
from harness.slim.imagewrite import host_entries, layer_tar
from harness.slim.provenance import DpkgDatabase
from harness.stages.slimspec import SlimSpec

from .fakes import FakeEngine
from .test_provenance import COPIED, root  # noqa: F401  (the fixture)


def test_every_file_is_listed_with_its_package_and_the_document_validates(root: Path, tmp_path: Path) -> None:  # noqa: F811
    provenance = DpkgDatabase(root).provenance(COPIED)
    layer = layer_tar(host_entries(root, COPIED), 1_000)
    text = render_spdx_json(spdx_document(SbomSubject("08", "ns/08:t", "sha256:ab12", 1_000), layer, provenance))
    assert text == render_spdx_json(spdx_document(SbomSubject("08", "ns/08:t", "sha256:ab12", 1_000), layer, provenance))
    path = tmp_path / "08.spdx.json"
    path.write_text(text)
    document = parse_file(str(path))
    assert validate_full_spdx_document(document) == []
    assert document.creation_info.spdx_version == "SPDX-2.3"
    assert {(p.name, p.version) for p in document.packages} == {
        ("ns/08:t", "sha256:ab12"),
        ("libc6", "2.36-9+deb12u14"),
        ("libgcc-s1", "12.2.0-14"),
    }
    ids = {f.spdx_id: f.name for f in document.files}
    contains = {
        ids[r.related_spdx_element_id]: r.spdx_element_id
        for r in document.relationships
        if r.relationship_type.name == "CONTAINS"
    }
    assert contains == {
        "./hello": "SPDXRef-Image",
        "./usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "SPDXRef-Package-deb-libc6",
        "./usr/lib/x86_64-linux-gnu/libc.so.6": "SPDXRef-Package-deb-libc6",
        "./usr/lib/x86_64-linux-gnu/libgcc_s.so.1": "SPDXRef-Package-deb-libgcc-s1",
    }
    purls = {p.name: p.external_references[0].locator for p in document.packages if p.external_references}
    assert purls["libgcc-s1"] == "pkg:deb/debian/libgcc-s1@12.2.0-14?arch=amd64&upstream=gcc-12"


def test_build_slim_image_writes_the_document_it_is_given_a_path_for(tmp_path: Path) -> None:
    sbom = tmp_path / "sbom" / "s.spdx.json"
    engine = FakeEngine()
    made = Made(Ledger.open(tmp_path, engine.identity()), "session", "ns")
    record, _ = build_slim_image(
        engine, "src", SlimSpec(PurePosixPath("/hello")), "ns/s:t", ("/hello",), labels.image("ns"), made, sbom=sbom
    )
    data = json.loads(sbom.read_text())
    assert data["spdxVersion"] == "SPDX-2.3" and data["name"] == "s"
    assert any(p["versionInfo"] == record.image_id for p in data["packages"])
    assert any(f["fileName"] == "./hello" for f in data["files"])


def test_each_file_says_why_it_is_there(root: Path) -> None:  # noqa: F811
    provenance = DpkgDatabase(root).provenance(COPIED)
    layer = layer_tar(host_entries(root, COPIED), 1_000)
    reasons = {PurePosixPath("/hello"): "elf: /hello"}
    document = spdx_document(SbomSubject("08", "ns/08:t", "sha256:ab12", 1_000), layer, provenance, reasons)
    assert validate_full_spdx_document(document) == []
    comments = {f.name: f.comment for f in document.files}
    assert comments["./hello"] == "elf: /hello"
    assert '"comment": "elf: /hello"' in render_spdx_json(document)
