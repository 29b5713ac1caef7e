"""A realistic Aip object, built in code: a 1965–1967 dossier of the Hải Dương Provincial Party Committee."""

from __future__ import annotations

import hashlib

import pytest

from preserve.aip.model import (ROLE_DESCRIPTIVE, ROLE_ORIGINAL, ROLE_PRESERVATION, ROLE_SUBMISSION, Agent, Aip,
                                AipFile, Event)

AIP_ID = "uuid-3f2b8c1e-5d4a-4e8f-9b7c-2a1d0e6f4b93"
CREATED = "2026-11-25T11:30:00+07:00"
REP = "representations/original/data"


def _file(path: str, role: str, content: bytes, **kw) -> AipFile:
    return AipFile(path=path, size=len(content), sha256=hashlib.sha256(content).hexdigest(),
                   sha512=hashlib.sha512(content).hexdigest(), role=role, **kw)


def _pdf(path: str, doc_code: str, original: str, pages: int) -> AipFile:
    return _file(path, ROLE_ORIGINAL, f"%PDF-1.4 {doc_code}".encode(), mime="application/pdf", puid="fmt/354",
                 format_name="Acrobat PDF/A - Portable Document Format", format_version="1b",
                 original_name=original, doc_code=doc_code, pages=pages)


@pytest.fixture
def sample_aip() -> Aip:
    dossier = {
        "fileCode": "HD01.1.12", "fondsCode": "HD01", "fondsName": "Phông Tỉnh uỷ Hải Dương (1948–1967)",
        "catalogNo": "1", "fileNo": "12", "boxNo": "3",
        "title": "Tập nghị quyết, chỉ thị của Tỉnh uỷ Hải Dương về công tác hợp tác hoá nông nghiệp năm 1965–1967",
        "maintenance": "01", "mode": "02", "language": "Tiếng Việt",
        "startDate": "03/1965", "startDate_iso": "1965-03", "endDate": "12/1967", "endDate_iso": "1967-12",
        "totalDoc": 3, "numberOfPaper": 21, "numberOfPage": 40, "format": "02",
        "keyword": "hợp tác hoá; nông nghiệp; Tỉnh uỷ", "inforSign": "NN",
        "description": "Bản gốc, giấy ố vàng, chữ đánh máy",
    }
    docs = [
        {"docCode": "HD01.1.12.001", "fileCode": "HD01.1.12", "docOrdinal": 1, "typeName": "01",
         "codeNumber": "15", "codeNotation": "NQ/TU", "issuedDate": "12/03/1965", "issuedDate_iso": "1965-03-12",
         "organName": "Tỉnh uỷ Hải Dương", "subject": "Về đẩy mạnh phong trào hợp tác hoá nông nghiệp",
         "language": "Tiếng Việt", "numberOfPage": 12, "signer": "Nguyễn Văn Đức", "secrecy": "01", "mode": "02",
         "autograph": "Có bút tích", "keyword": "hợp tác xã", "description": "", "file": "scan/NQ15.pdf"},
        {"docCode": "HD01.1.12.002", "fileCode": "HD01.1.12", "docOrdinal": 2, "typeName": "03",
         "codeNumber": "07", "codeNotation": "CT/TU", "issuedDate": "1966", "issuedDate_iso": "1966",
         "organName": "Ban Thường vụ Tỉnh uỷ", "subject": "Về việc chống hạn, bảo vệ sản xuất vụ chiêm",
         "numberOfPage": 8, "file": "scan/CT07.pdf"},
        {"docCode": "HD01.1.12.003", "fileCode": "HD01.1.12", "docOrdinal": 3, "typeName": "09",
         "issuedDate": "20/12/1967", "issuedDate_iso": "1967-12-20", "organName": "Tỉnh uỷ Hải Dương",
         "subject": "Báo cáo tổng kết công tác hợp tác hoá năm 1967", "numberOfPage": 20,
         "keyword": "tổng kết", "file": "scan/BC 1967.pdf"},
    ]
    files = [
        _pdf(f"{REP}/HD01.1.12.001.pdf", "HD01.1.12.001", "scan/NQ15.pdf", 12),
        _pdf(f"{REP}/HD01.1.12.002.pdf", "HD01.1.12.002", "scan/CT07.pdf", 8),
        _pdf(f"{REP}/HD01.1.12.003.pdf", "HD01.1.12.003", "scan/BC 1967.pdf", 20),
        _file("metadata/descriptive/dc.xml", ROLE_DESCRIPTIVE, b"<dc/>", mime="application/xml"),
        _file("metadata/descriptive/hoso.xml", ROLE_DESCRIPTIVE, b"<hoSo/>", mime="application/xml"),
        _file("metadata/preservation/premis.xml", ROLE_PRESERVATION, b"<premis/>", mime="application/xml"),
        _file("submission/mucluc.xlsx", ROLE_SUBMISSION, b"PK\x03\x04 workbook",
              mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", puid="fmt/214",
              format_name="Microsoft Excel for Windows", format_version="2007 onwards", original_name="mucluc.xlsx"),
        _file("submission/validation-report.json", ROLE_SUBMISSION, b"{}", mime="application/json",
              puid="fmt/817", format_name="JSON Data Interchange Format"),
    ]
    originals = [f.path for f in files if f.role == ROLE_ORIGINAL]
    sw, person, org = "agent-software-preserve", "agent-person-nguyenthilan", "agent-organization-lttu-hd"
    sf = "agent-software-siegfried"
    events = [
        Event(f"uuid-0000000{i}-1111-4222-8333-444444444444", t, f"2026-11-25T11:2{i}:00+07:00", "success", d,
              agents, objs)
        for i, (t, d, agents, objs) in enumerate([
            ("ingestion", "Tiếp nhận lô số hoá HD01-2026-11 (3 tài liệu, 40 trang)",
             [(sw, "executing program"), (person, "implementer")], [AIP_ID]),
            ("validation", "Mục lục và tệp quét hợp lệ theo hồ sơ vn-party-archive",
             [(sw, "executing program")], originals),
            ("format identification", "PRONOM fmt/354 (PDF/A-1b)", [(sf, "executing program")], originals),
            ("message digest calculation", "SHA-256, SHA-512", [(sw, "executing program")], originals),
            ("creation", "Tạo AIP phiên bản 1", [(sw, "executing program"), (org, "authorizer")], [AIP_ID]),
        ], start=1)
    ]
    agents = [
        Agent(sw, "preserve 0.1.0", "software", "0.1.0"),
        Agent(sf, "Siegfried", "software", "1.11.2"),
        Agent(person, "Nguyễn Thị Lan", "person", "cán bộ lưu trữ"),
        Agent(org, "Kho Lưu trữ Tỉnh uỷ Hải Dương", "organization"),
    ]
    return Aip(id=AIP_ID, version=1, created=CREATED, profile="vn-party-archive", dossier=dossier, documents=docs,
               files=files, events=events, agents=agents, organisation="Kho Lưu trữ Tỉnh uỷ Hải Dương")
