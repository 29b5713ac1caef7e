"""Descriptive metadata: the profile XML (valid, round trip) and Dublin Core (valid, complete)."""

from __future__ import annotations

import dataclasses
import unicodedata

from lxml import etree

from preserve.aip import xmlschemas
from preserve.aip.descriptive import (DC_NS, build_dc, build_profile_xml, parse_profile_xml, profile_namespace)
from preserve.sip.profile import load_profile

DC = {"dc": DC_NS}


def test_profile_xml_valid(sample_aip):
    assert xmlschemas.validate(build_profile_xml(sample_aip), "vn-party-archive") == []


def test_profile_xml_round_trip(sample_aip):
    dossier, documents = parse_profile_xml(build_profile_xml(sample_aip))
    assert dossier == sample_aip.dossier
    files = {f.doc_code: f.path for f in sample_aip.originals()}
    expected = [{**{k: v for k, v in d.items() if v not in ("", None)}, "file": files[d["docCode"]]}
                for d in sample_aip.documents]
    assert documents == expected


def test_profile_xml_codes_and_dates(sample_aip):
    root = xmlschemas.parse(build_profile_xml(sample_aip))
    ns = {"p": profile_namespace(load_profile())}
    m = root.find("p:maintenance", ns)
    assert (m.get("code"), m.text) == ("01", "Vĩnh viễn")
    s = root.find("p:startDate", ns)
    assert (s.get("iso"), s.text) == ("1965-03", "03/1965")
    t = root.find("p:taiLieu/p:typeName", ns)
    assert (t.get("code"), t.text) == ("01", "Nghị quyết")
    assert root.get("aip") == sample_aip.id


def test_profile_xml_nfc_and_control_characters(sample_aip):
    title = "Hồ sơ về công tác tổ chức\x0b của Đảng bộ"
    aip = dataclasses.replace(sample_aip, dossier={**sample_aip.dossier, "title": unicodedata.normalize("NFD", title)})
    data = build_profile_xml(aip)
    assert xmlschemas.validate(data, "vn-party-archive") == []
    dossier, _docs = parse_profile_xml(data)
    assert dossier["title"] == "Hồ sơ về công tác tổ chức của Đảng bộ"
    assert unicodedata.is_normalized("NFC", dossier["title"])
    assert "Hồ sơ".encode() in data


def test_profile_xsd_follows_the_yaml():
    """The hand-kept XSD names every field of the profile, in order, required where the profile says."""
    profile = load_profile()
    xs = {"xs": "http://www.w3.org/2001/XMLSchema"}
    xsd = etree.parse(str(xmlschemas.XSD_DIR / "vn-party-archive-1.xsd"))
    for type_name, sheet, extra in (("HoSo", profile.dossier, ["taiLieu"]), ("TaiLieu", profile.document, [])):
        elements = xsd.findall(f"xs:complexType[@name='{type_name}']/xs:sequence/xs:element", xs)
        assert [e.get("name") for e in elements] == [f.key for f in sheet.fields] + extra
        for e, f in zip(elements, sheet.fields):
            assert (e.get("minOccurs") != "0") == f.required, f.key
            assert e.findtext(".//xs:documentation", namespaces=xs).startswith(f.label)


def test_dc_valid_against_own_and_shared_dc_xsd(sample_aip, shared_dir):
    data = build_dc(sample_aip)
    assert xmlschemas.validate(data, "dc") == []
    assert xmlschemas.validate(data, "dc", shared_dir / "schemas") == []
    bad = data.replace(b"<dc:rights", b"<dc:rightz").replace(b"</dc:rights>", b"</dc:rightz>")
    assert xmlschemas.validate(bad, "dc", shared_dir / "schemas")


def test_dc_content(sample_aip):
    root = xmlschemas.parse(build_dc(sample_aip))

    def values(name):
        return [e.text for e in root.findall(f"dc:{name}", DC)]

    assert values("title") == [sample_aip.dossier["title"]]
    assert values("identifier") == ["HD01.1.12", sample_aip.id]
    assert "Phông Tỉnh uỷ Hải Dương (1948–1967)" in values("creator")
    assert "Ban Thường vụ Tỉnh uỷ" in values("creator")
    assert values("date") == ["1965-03/1967-12"]
    assert {"Text", "Nghị quyết", "Chỉ thị", "Báo cáo"} <= set(values("type"))
    assert values("language") == ["vi"]
    assert {"hợp tác hoá", "nông nghiệp", "hợp tác xã"} <= set(values("subject"))
    assert "Chế độ sử dụng: Sử dụng có điều kiện" in values("rights")
    assert "Độ mật: Mật" in values("rights")
    assert any("HD01" in r for r in values("relation"))
    assert values("coverage") == ["03/1965 – 12/1967"]
    assert values("publisher") == ["Kho Lưu trữ Tỉnh uỷ Hải Dương"]
    assert any("Về đẩy mạnh phong trào hợp tác hoá nông nghiệp" in d for d in values("description"))
