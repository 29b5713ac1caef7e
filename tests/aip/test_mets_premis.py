"""METS and PREMIS of an AIP: schema-valid (own copies and ../shared), complete, and readable back."""

from __future__ import annotations

import dataclasses
import unicodedata

import pytest
from lxml import etree

from preserve.aip import xmlschemas
from preserve.aip.mets import build_mets
from preserve.aip.model import ROLE_DESCRIPTIVE, ROLE_ORIGINAL, ROLE_PRESERVATION, ROLE_SUBMISSION
from preserve.aip.premis import build_premis

NS = {"mets": "http://www.loc.gov/METS/", "xlink": "http://www.w3.org/1999/xlink",
      "csip": "https://DILCIS.eu/XML/METS/CSIPExtensionMETS", "premis": "http://www.loc.gov/premis/v3",
      "xsi": "http://www.w3.org/2001/XMLSchema-instance"}
HREF = "{http://www.w3.org/1999/xlink}href"


def _xml(data: bytes) -> etree._Element:
    return xmlschemas.parse(data)


@pytest.mark.parametrize("builder,schema", [(build_mets, "mets"), (build_premis, "premis")])
def test_valid_against_own_and_shared_schemas(sample_aip, shared_dir, builder, schema):
    data = builder(sample_aip)
    assert xmlschemas.validate(data, schema) == []
    assert xmlschemas.validate(data, schema, shared_dir / "schemas") == []


def test_mets_root_and_header(sample_aip):
    root = _xml(build_mets(sample_aip))
    assert root.get("OBJID") == sample_aip.id
    assert root.get("LABEL") == sample_aip.dossier["title"]
    assert root.get("PROFILE") == "https://earkcsip.dilcis.eu/profile/E-ARK-CSIP.xml"
    assert root.get(f"{{{NS['csip']}}}CONTENTINFORMATIONTYPE") == "OTHER"
    assert root.get(f"{{{NS['csip']}}}OTHERCONTENTINFORMATIONTYPE") == "vn-party-archive"
    hdr = root.find("mets:metsHdr", NS)
    assert hdr.get(f"{{{NS['csip']}}}OAISPACKAGETYPE") == "AIP"
    creator = hdr.find("mets:agent[@ROLE='CREATOR']", NS)
    assert (creator.get("TYPE"), creator.get("OTHERTYPE")) == ("OTHER", "SOFTWARE")
    assert creator.find("mets:note", NS).get(f"{{{NS['csip']}}}NOTETYPE") == "SOFTWARE VERSION"
    names = [a.findtext("mets:name", namespaces=NS) for a in hdr.findall("mets:agent", NS)]
    assert "Kho Lưu trữ Tỉnh uỷ Hải Dương" in names and "Nguyễn Thị Lan" in names


def test_mets_checksums_equal_aip_files(sample_aip):
    root = _xml(build_mets(sample_aip))
    listed = {}
    for f in root.iterfind(".//mets:file", NS):
        listed[f.find("mets:FLocat", NS).get(HREF)] = (f.get("CHECKSUM"), f.get("CHECKSUMTYPE"), int(f.get("SIZE")))
    for ref in root.iterfind(".//mets:mdRef", NS):
        listed[ref.get(HREF)] = (ref.get("CHECKSUM"), ref.get("CHECKSUMTYPE"), int(ref.get("SIZE")))
    for af in sample_aip.files:
        assert listed[af.path] == (af.sha256, "SHA-256", af.size), af.path
    assert "METS.xml" not in {p.rsplit("/", 1)[-1] for p in listed}


def test_every_original_in_filesec_and_structmap(sample_aip):
    root = _xml(build_mets(sample_aip))
    grp = root.find("mets:fileSec/mets:fileGrp[@USE='Representations/original']", NS)
    ids = {f.find("mets:FLocat", NS).get(HREF): f.get("ID") for f in grp.findall("mets:file", NS)}
    assert set(ids) == {f.path for f in sample_aip.originals()}
    smap = root.find("mets:structMap[@LABEL='CSIP']", NS)
    assert smap.get("TYPE") == "PHYSICAL"
    top = smap.find("mets:div", NS)
    assert top.get("LABEL") == sample_aip.id
    assert [d.get("LABEL") for d in top.findall("mets:div", NS)] == ["Metadata", "Representations/original",
                                                                      "Submission"]
    rep = top.find("mets:div[@LABEL='Representations/original']", NS)
    docs = rep.findall("mets:div", NS)
    assert [(d.get("LABEL"), d.get("ORDER")) for d in docs] == [
        (doc["docCode"], str(doc["docOrdinal"])) for doc in sample_aip.documents]
    by_doc = {f.doc_code: ids[f.path] for f in sample_aip.originals()}
    for d in docs:
        assert [p.get("FILEID") for p in d.findall("mets:fptr", NS)] == [by_doc[d.get("LABEL")]]
    sub = root.find("mets:fileSec/mets:fileGrp[@USE='Submission']", NS)
    assert len(sub.findall("mets:file", NS)) == sum(f.role == ROLE_SUBMISSION for f in sample_aip.files)
    meta = top.find("mets:div[@LABEL='Metadata']", NS)
    dmd_ids = {s.get("ID") for s in root.findall("mets:dmdSec", NS)}
    assert set(meta.get("DMDID").split()) == dmd_ids and len(dmd_ids) == 2
    assert root.find("mets:amdSec/mets:digiprovMD/mets:mdRef", NS).get("MDTYPE") == "PREMIS"


def test_mets_md_types(sample_aip):
    root = _xml(build_mets(sample_aip))
    types = {r.get(HREF): (r.get("MDTYPE"), r.get("OTHERMDTYPE")) for r in root.iterfind(".//mets:mdRef", NS)}
    assert types["metadata/descriptive/dc.xml"] == ("DC", None)
    assert types["metadata/descriptive/hoso.xml"] == ("OTHER", "vn-party-archive")
    assert types["metadata/preservation/premis.xml"] == ("PREMIS", None)


def test_mets_without_premis_entry_still_references_it(sample_aip):
    aip = dataclasses.replace(sample_aip, files=[f for f in sample_aip.files if f.role != ROLE_PRESERVATION])
    data = build_mets(aip)
    assert xmlschemas.validate(data, "mets") == []
    ref = _xml(data).find("mets:amdSec/mets:digiprovMD/mets:mdRef", NS)
    assert ref.get(HREF) == "metadata/preservation/premis.xml" and ref.get("CHECKSUM") is None


def test_mets_odd_file_names_and_unmatched_original(sample_aip):
    odd = dataclasses.replace(sample_aip.files[0], path="representations/original/data/bản quét (1).pdf",
                              doc_code=None)
    sub = dataclasses.replace(sample_aip.files[-1], path="submission/Mục lục hồ sơ.xlsx")
    aip = dataclasses.replace(sample_aip, files=sample_aip.files + [odd, sub])
    data = build_mets(aip)
    assert xmlschemas.validate(data, "mets") == []
    fptrs = {p.get("FILEID") for p in _xml(data).iterfind(".//mets:fptr", NS)}
    assert len(fptrs) == sum(f.role in (ROLE_ORIGINAL, ROLE_SUBMISSION) for f in aip.files)


def test_premis_objects_events_agents(sample_aip):
    root = _xml(build_premis(sample_aip))
    xsi_type = f"{{{NS['xsi']}}}type"
    objects = root.findall("premis:object", NS)
    assert objects[0].get(xsi_type) == "premis:intellectualEntity"
    assert objects[0].findtext("premis:objectIdentifier/premis:objectIdentifierValue", namespaces=NS) == sample_aip.id
    files = {o.findtext("premis:objectIdentifier/premis:objectIdentifierValue", namespaces=NS): o
             for o in objects[1:]}
    expected = [f for f in sample_aip.files if f.role in (ROLE_ORIGINAL, ROLE_SUBMISSION, ROLE_DESCRIPTIVE)]
    assert set(files) == {f.path for f in expected}
    assert not any(p.endswith(("premis.xml", "METS.xml")) for p in files)
    for af in expected:
        o = files[af.path]
        assert o.get(xsi_type) == "premis:file"
        digests = {fx.findtext("premis:messageDigestAlgorithm", namespaces=NS):
                   fx.findtext("premis:messageDigest", namespaces=NS)
                   for fx in o.iterfind("premis:objectCharacteristics/premis:fixity", NS)}
        assert digests == {"SHA-256": af.sha256, "SHA-512": af.sha512}
        assert o.findtext("premis:objectCharacteristics/premis:size", namespaces=NS) == str(af.size)
        key = o.findtext(".//premis:formatRegistryKey", namespaces=NS)
        assert key == af.puid
        assert o.findtext("premis:relationship/premis:relationshipSubType", namespaces=NS) == "is included in"
        assert o.findtext(".//premis:relatedObjectIdentifierValue", namespaces=NS) == sample_aip.id
        if af.original_name:
            assert o.findtext("premis:originalName", namespaces=NS) == af.original_name
    seq = files[sample_aip.originals()[1].path].findtext(".//premis:relatedObjectSequence", namespaces=NS)
    assert seq == "2"

    events = root.findall("premis:event", NS)
    assert [e.findtext("premis:eventType", namespaces=NS) for e in events] == [
        "ingestion", "validation", "format identification", "message digest calculation", "creation"]
    first = events[0]
    assert first.findtext("premis:eventIdentifier/premis:eventIdentifierValue", namespaces=NS) == \
        sample_aip.events[0].id
    assert first.findtext(".//premis:eventDetail", namespaces=NS) == sample_aip.events[0].detail
    assert first.findtext(".//premis:eventOutcome", namespaces=NS) == "success"
    roles = [(a.findtext("premis:linkingAgentIdentifierValue", namespaces=NS),
              a.findtext("premis:linkingAgentRole", namespaces=NS))
             for a in first.findall("premis:linkingAgentIdentifier", NS)]
    assert roles == sample_aip.events[0].agents
    linked = [o.findtext("premis:linkingObjectIdentifierValue", namespaces=NS)
              for o in events[1].findall("premis:linkingObjectIdentifier", NS)]
    assert linked == sample_aip.events[1].objects

    agents = {a.findtext("premis:agentIdentifier/premis:agentIdentifierValue", namespaces=NS): a
              for a in root.findall("premis:agent", NS)}
    assert set(agents) == {a.id for a in sample_aip.agents}
    sw = agents["agent-software-preserve"]
    assert sw.findtext("premis:agentType", namespaces=NS) == "software"
    assert sw.findtext("premis:agentVersion", namespaces=NS) == "0.1.0"
    person = agents["agent-person-nguyenthilan"]
    assert person.findtext("premis:agentName", namespaces=NS) == "Nguyễn Thị Lan"
    assert person.findtext("premis:agentNote", namespaces=NS) == "cán bộ lưu trữ"


def test_nfd_input_comes_out_nfc(sample_aip):
    title = sample_aip.dossier["title"]
    aip = dataclasses.replace(sample_aip, dossier={**sample_aip.dossier, "title": unicodedata.normalize("NFD", title)},
                              agents=[dataclasses.replace(a, name=unicodedata.normalize("NFD", a.name))
                                      for a in sample_aip.agents])
    assert _xml(build_mets(aip)).get("LABEL") == unicodedata.normalize("NFC", title)
    names = [n.text for n in _xml(build_premis(aip)).iterfind(".//premis:agentName", NS)]
    assert "Nguyễn Thị Lan" in names and all(unicodedata.is_normalized("NFC", n) for n in names)


def test_validate_reports_errors():
    assert xmlschemas.validate(b"<mets:mets xmlns:mets='http://www.loc.gov/METS/'/>", "mets")  # PROFILE missing
    assert xmlschemas.validate(b"<not xml", "premis")[0].startswith("not well-formed")
    with pytest.raises(ValueError):
        xmlschemas.validate(b"<a/>", "mods")


def test_parser_does_not_expand_entities(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    doc = f'<!DOCTYPE a [<!ENTITY x SYSTEM "file://{secret}">]><a>&x;</a>'.encode()
    root = xmlschemas.parse(doc)
    assert "TOP SECRET" not in etree.tostring(root).decode()
