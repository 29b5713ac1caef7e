"""DIP packages: the zip's layout, a METS that validates and points back to the AIP, atomic and never overwriting."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import sys
import uuid
import zipfile
from pathlib import Path

import pikepdf
import pytest
from lxml import etree
from PIL import Image

from preserve.aip import xmlschemas
from preserve.dip import DipDocument, DipSpec, build_dip, watermark_lines
from preserve.dip.watermark import FOOTER_SEP
from preserve.errors import UsageError


def _load_makers():
    """tests/ is not a package: the PDF and TIFF makers of test_watermark.py are loaded by path."""
    name = "preserve_tests_dip_makers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("test_watermark.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


mk = _load_makers()
NS = {"mets": "http://www.loc.gov/METS/", "xlink": "http://www.w3.org/1999/xlink",
      "csip": "https://DILCIS.eu/XML/METS/CSIPExtensionMETS", "premis": "http://www.loc.gov/premis/v3"}
HREF = "{http://www.w3.org/1999/xlink}href"
REQ = "YC-2026-0042"
AIP_ID = "uuid-3f2b8c1e-5d4a-4e8f-9b7c-2a1d0e6f4b93"
REP = "representations/original/data"


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> list[Path]:
    """Three originals: a PDF with a text layer, an image-only PDF, a multi-page TIFF."""
    d = tmp_path_factory.mktemp("aip")
    return [mk.make_text_pdf(d / "H36.01.1.001.pdf"), mk.make_image_pdf(d / "H36.01.1.002.pdf", dpi=60),
            mk.make_tiff(d / "H36.01.1.003.tif")]


def _spec(sources: list[Path], **kw) -> DipSpec:
    titles = ["Nghị quyết về công tác xây dựng Đảng", "Báo cáo tình hình sản xuất vụ chiêm 1966",
              "Công văn về việc tuyển quân"]
    docs = [DipDocument(doc_code=p.stem, title=t, source=p, source_path=f"{REP}/{p.name}",
                        source_sha256=mk.sha256(p)) for p, t in zip(sources, titles)]
    fields = {"dip_id": f"uuid-{uuid.UUID(int=7)}", "request_id": REQ, "requester": "Nguyễn Thị Hòa (reader1)",
              "purpose": "Nghiên cứu lịch sử Đảng bộ tỉnh", "created": "2026-12-01T18:30:00+07:00",
              "organisation": "Kho Lưu trữ Tỉnh uỷ Hải Dương", "aip_id": AIP_ID, "aip_version": 2,
              "file_code": "H36.01.1", "dossier_title": "Hồ sơ Hội nghị Ban Chấp hành Đảng bộ tỉnh 1966",
              "tier": "nas-1", "strong": False, "documents": docs}
    fields.update(kw)
    return DipSpec(**fields)


class Recorder:
    """A progress sink that remembers what it was told (a real object, not a mock: it only records)."""

    def __init__(self):
        self.calls: list[tuple] = []

    def start(self, label, total, unit="items"):
        self.calls.append(("start", total))

    def advance(self, n=1):
        self.calls.append(("advance", n))

    def done(self):
        self.calls.append(("done",))


def _mets(zf: zipfile.ZipFile) -> etree._Element:
    return xmlschemas.parse(zf.read(f"{REQ}/METS.xml"))


@pytest.fixture(scope="module")
def built(sources, tmp_path_factory):
    """One DIP with page images at 50 dpi, built once for the read-only checks below."""
    d = tmp_path_factory.mktemp("dip")
    before = [mk.sha256(p) for p in sources]
    progress = Recorder()
    result = build_dip(_spec(sources, images_dpi=50), d / "out", d / "scratch", progress)
    assert [mk.sha256(p) for p in sources] == before  # the originals are only read
    return result, d, progress


def test_zip_layout(built):
    result, d, progress = built
    assert result.zip_path == d / "out" / f"{REQ}.zip"
    assert sorted(p.name for p in (d / "out").iterdir()) == [f"{REQ}.zip"]
    assert list((d / "scratch").iterdir()) == []
    assert progress.calls == [("start", 3)] + [("advance", 1)] * 3 + [("done",)]
    with zipfile.ZipFile(result.zip_path) as zf:
        names = zf.namelist()
        assert zf.testzip() is None
        infos = {i.filename: i for i in zf.infolist()}
    data = [f"{REQ}/representations/access/data/H36.01.1.00{n}.pdf" for n in (1, 2, 3)]
    pages = {"H36.01.1.001": 3, "H36.01.1.002": 3, "H36.01.1.003": 3}
    images = [f"{REQ}/representations/access/images/{code}-p{n:04d}.jpg" for code, k in pages.items()
              for n in range(1, k + 1)]
    assert names == [f"{REQ}/README.txt", *data[:1], *images[:3], data[1], *images[3:6], data[2], *images[6:],
                     f"{REQ}/METS.xml"]
    assert result.pages == 9
    assert {infos[n].compress_type for n in (f"{REQ}/README.txt", f"{REQ}/METS.xml")} == {zipfile.ZIP_DEFLATED}
    assert infos[data[0]].compress_type == zipfile.ZIP_STORED
    assert {i.date_time for i in infos.values()} == {(2026, 12, 1, 18, 30, 0)}
    as_dict = result.to_dict()
    assert as_dict["zip"] == str(result.zip_path) and as_dict["dip_id"] == f"uuid-{uuid.UUID(int=7)}"
    assert as_dict["bytes"] == result.zip_path.stat().st_size and as_dict["pages"] == 9
    assert [f["path"] for f in as_dict["files"]] == names[:-1]  # every entry but METS.xml


def test_files_and_mets_checksums_are_those_of_the_entries(built, shared_dir):
    result, _d, _p = built
    with zipfile.ZipFile(result.zip_path) as zf:
        root = _mets(zf)
        assert xmlschemas.validate(zf.read(f"{REQ}/METS.xml"), "mets", shared_dir / "schemas") == []
        actual = {n: zf.read(n) for n in zf.namelist() if not n.endswith("METS.xml")}
    for f in result.files:
        assert (f["size"], f["sha256"]) == (len(actual[f["path"]]), hashlib.sha256(actual[f["path"]]).hexdigest())
    listed = {}
    for f in root.iterfind(".//mets:file", NS):
        assert f.get("CHECKSUMTYPE") == "SHA-256" and f.get("CREATED") == "2026-12-01T18:30:00+07:00"
        listed[f"{REQ}/{f.find('mets:FLocat', NS).get(HREF)}"] = (f.get("CHECKSUM"), int(f.get("SIZE")),
                                                                   f.get("MIMETYPE"))
    mime = {".pdf": "application/pdf", ".jpg": "image/jpeg", ".txt": "text/plain"}
    assert listed == {n: (hashlib.sha256(b).hexdigest(), len(b), mime[Path(n).suffix]) for n, b in actual.items()}
    uses = [g.get("USE") for g in root.iterfind("mets:fileSec/mets:fileGrp", NS)]
    assert uses == ["Documentation", "Representations/access", "Representations/access/images"]


def test_mets_header_points_back_to_the_aip(built):
    result, _d, _p = built
    with zipfile.ZipFile(result.zip_path) as zf:
        root = _mets(zf)
    assert root.get("OBJID") == f"uuid-{uuid.UUID(int=7)}"
    assert root.get("LABEL") == "Hồ sơ Hội nghị Ban Chấp hành Đảng bộ tỉnh 1966"
    assert root.get("PROFILE") == "https://earkcsip.dilcis.eu/profile/E-ARK-CSIP.xml"
    hdr = root.find("mets:metsHdr", NS)
    assert hdr.get(f"{{{NS['csip']}}}OAISPACKAGETYPE") == "DIP"
    assert hdr.get("CREATEDATE") == "2026-12-01T18:30:00+07:00"
    alt = {a.get("TYPE"): a.text for a in hdr.iterfind("mets:altRecordID", NS)}
    assert alt == {"AIP": AIP_ID, "AIP-VERSION": "2", "REQUEST": REQ, "fileCode": "H36.01.1"}
    agents = {(a.get("ROLE"), a.get("TYPE")): a.findtext("mets:name", namespaces=NS)
              for a in hdr.iterfind("mets:agent", NS)}
    assert agents == {("CREATOR", "ORGANIZATION"): "Kho Lưu trữ Tỉnh uỷ Hải Dương", ("CREATOR", "OTHER"): "preserve",
                      ("OTHER", "INDIVIDUAL"): "Nguyễn Thị Hòa (reader1)"}


def test_every_copy_names_its_source_in_the_aip(built, sources, shared_dir):
    result, _d, _p = built
    with zipfile.ZipFile(result.zip_path) as zf:
        root = _mets(zf)
    events = {md.get("ID"): md.find("mets:mdWrap/mets:xmlData/premis:event", NS)
              for md in root.iterfind("mets:amdSec/mets:digiprovMD", NS)}
    assert len(events) == 3
    for md in root.iterfind("mets:amdSec/mets:digiprovMD/mets:mdWrap", NS):
        assert md.get("MDTYPE") == "PREMIS:EVENT"
    for event in events.values():
        assert xmlschemas.validate(etree.ElementTree(event), "premis", shared_dir / "schemas") == []
    grp = root.find("mets:fileSec/mets:fileGrp[@USE='Representations/access']", NS)
    for src, f in zip(sources, grp.findall("mets:file", NS)):
        assert f.find("mets:FLocat", NS).get(HREF) == f"representations/access/data/{src.stem}.pdf"
        event = events[f.get("ADMID")]
        assert event.findtext("premis:eventType", namespaces=NS) == "dissemination"
        links = [(link.findtext("premis:linkingObjectIdentifierValue", namespaces=NS),
                  link.findtext("premis:linkingObjectRole", namespaces=NS))
                 for link in event.iterfind("premis:linkingObjectIdentifier", NS)]
        assert (AIP_ID, "source") in links and (f"{REP}/{src.name}", "source") in links
        assert (f"representations/access/data/{src.stem}.pdf", "outcome") in links
        detail = event.findtext("premis:eventDetailInformation/premis:eventDetail", namespaces=NS)
        assert mk.sha256(src) in detail and "nas-1" in detail and "version 2" in detail
        assert "Nghiên cứu lịch sử Đảng bộ tỉnh" in detail


def test_structmap_one_div_per_document_in_order(built):
    result, _d, _p = built
    with zipfile.ZipFile(result.zip_path) as zf:
        root = _mets(zf)
    files = {f.get("ID"): f.find("mets:FLocat", NS).get(HREF) for f in root.iterfind(".//mets:file", NS)}
    rep = root.find("mets:structMap/mets:div/mets:div[@LABEL='Representations/access']", NS)
    divs = rep.findall("mets:div", NS)
    assert [(d.get("LABEL"), d.get("ORDER")) for d in divs] == [
        ("H36.01.1.001 — Nghị quyết về công tác xây dựng Đảng", "1"),
        ("H36.01.1.002 — Báo cáo tình hình sản xuất vụ chiêm 1966", "2"),
        ("H36.01.1.003 — Công văn về việc tuyển quân", "3")]
    code = "H36.01.1.002"
    assert [files[p.get("FILEID")] for p in divs[1].findall("mets:fptr", NS)] == [
        f"representations/access/data/{code}.pdf"] + [f"representations/access/images/{code}-p000{n}.jpg"
                                                        for n in (1, 2, 3)]
    pointed = {p.get("FILEID") for p in root.iterfind("mets:structMap//mets:fptr", NS)}
    assert pointed == set(files)


def test_copies_are_watermarked_on_every_page(built, tmp_path):
    result, _d, _p = built
    lines = watermark_lines(_spec([]))
    assert lines[1:] == ["Cấp cho / Issued to: Nguyễn Thị Hòa (reader1)", "Ngày / Date: 01/12/2026",
                         f"Yêu cầu / Request: {REQ}"]
    with zipfile.ZipFile(result.zip_path) as zf:
        for n in (1, 2, 3):
            pdf = tmp_path / f"{n}.pdf"
            pdf.write_bytes(zf.read(f"{REQ}/representations/access/data/H36.01.1.00{n}.pdf"))
            for page in (1, 2, 3):
                text = mk.page_text(pdf, page)
                if n < 3:  # A4 pages: the footer on one line; the TIFF's small frames wrap it, line by line
                    assert FOOTER_SEP.join(lines) in text
                assert all(line in text for line in lines)
                assert mk.marks_on_page(pdf, page) == 2
        assert "Nghị quyết về công tác xây dựng Đảng — trang 2" in mk.page_text(tmp_path / "1.pdf", 2)


def test_page_images_one_per_page_at_the_dpi(built):
    result, _d, _p = built
    # seen sizes in points: text PDF A4, A4 landscape, A4 turned; image PDF the same at 60 dpi; TIFF frames
    a4 = (595.28, 841.89)
    scan = (round(a4[0] / 72 * 60) / 60 * 72, round(a4[1] / 72 * 60) / 60 * 72)
    tiff = [(w / (dpi or 200) * 72, h / (dpi or 200) * 72) for (w, h), _m, dpi in mk.TIFF_FRAMES]
    seen = {"H36.01.1.001": [a4, a4[::-1], a4[::-1]], "H36.01.1.002": [scan, scan[::-1], scan[::-1]],
            "H36.01.1.003": tiff}
    with zipfile.ZipFile(result.zip_path) as zf:
        for code, sizes in seen.items():
            for n, (w, h) in enumerate(sizes, start=1):
                with Image.open(io.BytesIO(zf.read(f"{REQ}/representations/access/images/{code}-p{n:04d}.jpg"))) as im:
                    im.load()
                    assert abs(im.width - w / 72 * 50) <= 1 and abs(im.height - h / 72 * 50) <= 1, (code, n)


def test_readme_vietnamese_then_english(built):
    result, _d, _p = built
    with zipfile.ZipFile(result.zip_path) as zf:
        text = zf.read(f"{REQ}/README.txt").decode("utf-8")
    vi, en = text.index("BẢN SAO PHỤC VỤ KHAI THÁC"), text.index("ACCESS COPY")
    assert vi < en
    for part in (text[vi:en], text[en:]):
        for value in ("Nguyễn Thị Hòa (reader1)", "Nghiên cứu lịch sử Đảng bộ tỉnh", "01/12/2026", REQ, AIP_ID,
                      "H36.01.1 — Hồ sơ Hội nghị", "representations/access/data/H36.01.1.003.pdf",
                      "H36.01.1.002-p0001.jpg … H36.01.1.002-p0003.jpg", "METS.xml"):
            assert value in part, value
    assert "phiên bản 2" in text[vi:en] and "version 2" in text[en:]
    assert "không được sao chép lại, phát tán" in text and "must not be copied on, re-distributed" in text
    assert "Bản gốc vẫn được bảo quản" in text and "The originals stay in the archive" in text


def test_second_build_never_overwrites_the_first(sources, tmp_path):
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    first = build_dip(_spec(sources[:1]), out, scratch)
    kept = mk.sha256(first.zip_path)
    second = build_dip(_spec(sources[:1], dip_id=f"uuid-{uuid.UUID(int=8)}"), out, scratch)
    third = build_dip(_spec(sources[:1], dip_id=f"uuid-{uuid.UUID(int=9)}"), out, scratch)
    assert [r.zip_path.name for r in (first, second, third)] == [f"{REQ}.zip", f"{REQ}-2.zip", f"{REQ}-3.zip"]
    assert mk.sha256(first.zip_path) == kept
    with zipfile.ZipFile(second.zip_path) as zf:
        assert _mets(zf).get("OBJID") == f"uuid-{uuid.UUID(int=8)}"
        assert not any("/images/" in n for n in zf.namelist())  # no images unless asked
    assert list(scratch.iterdir()) == []


def test_strong_watermark_for_secret_records(sources, tmp_path):
    spec = _spec(sources[1:2], strong=True)
    lines = watermark_lines(spec)
    assert lines[0].startswith("BẢN SAO") and lines[0] != "BẢN SAO" and "MẬT" in lines[0]
    result = build_dip(spec, tmp_path / "out", tmp_path / "scratch")
    pdf = tmp_path / "copy.pdf"
    with zipfile.ZipFile(result.zip_path) as zf:
        pdf.write_bytes(zf.read(f"{REQ}/representations/access/data/H36.01.1.002.pdf"))
        assert "Tài liệu mật" in zf.read(f"{REQ}/README.txt").decode("utf-8")
    assert all(mk.marks_on_page(pdf, n) >= 6 for n in (1, 2, 3))


def _corrupt(tmp_path: Path) -> Path:
    bad = tmp_path / "H36.01.1.009.pdf"
    bad.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> broken beyond repair")
    return bad


@pytest.mark.parametrize("images_dpi", [None, 50])
def test_failure_leaves_nothing_behind(sources, tmp_path, images_dpi):
    bad = _corrupt(tmp_path)
    spec = _spec([sources[0], bad], images_dpi=images_dpi)  # the first copy is made, then the second fails
    before = bad.read_bytes()
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    with pytest.raises(UsageError, match="cannot be read"):
        build_dip(spec, out, scratch)
    assert list(out.iterdir()) == [] and list(scratch.iterdir()) == []
    assert bad.read_bytes() == before


def test_source_that_does_not_match_its_checksum_refused(sources, tmp_path):
    spec = _spec(sources[:1])
    spec.documents[0].source_sha256 = "0" * 64
    with pytest.raises(UsageError, match="does not match its SHA-256"):
        build_dip(spec, tmp_path / "out", tmp_path / "scratch")
    assert list((tmp_path / "out").iterdir()) == [] and list((tmp_path / "scratch").iterdir()) == []


def test_encrypted_source_refused(sources, tmp_path):
    locked = tmp_path / "H36.01.1.001.pdf"
    with pikepdf.open(sources[0]) as pdf:
        pdf.save(locked, encryption=pikepdf.Encryption(owner="o", user="u"))
    with pytest.raises(UsageError, match="encrypted"):
        build_dip(_spec([locked]), tmp_path / "out", tmp_path / "scratch")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("change,message", [
    ({"request_id": "../evil"}, "cannot name a file"),
    ({"request_id": "YC 1"}, "cannot name a file"),
    ({"documents": []}, "no documents"),
    ({"created": "2026-12-01T18:30:00"}, "with an offset"),
    ({"images_dpi": 1200}, "out of range"),
])
def test_bad_spec_refused_before_any_work(sources, tmp_path, change, message):
    with pytest.raises(UsageError, match=message):
        build_dip(_spec(sources[:1], **change), tmp_path / "out", tmp_path / "scratch")
    assert not (tmp_path / "out").exists() and not (tmp_path / "scratch").exists()


def test_document_listed_twice_refused(sources, tmp_path):
    spec = _spec(sources[:1])
    spec.documents.append(spec.documents[0])
    with pytest.raises(UsageError, match="listed twice"):
        build_dip(spec, tmp_path / "out", tmp_path / "scratch")
