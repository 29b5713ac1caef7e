"""Catalog fixtures: every test runs on SQLite (tmp_path) and, when 127.0.0.1:5432 answers, on PostgreSQL in a
schema of its own (dropped afterwards). Set PRESERVE_TEST_PG_URL to use another PostgreSQL server."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator

import pytest

from preserve.aip.model import (
    ROLE_DESCRIPTIVE,
    ROLE_ORIGINAL,
    ROLE_PRESERVATION,
    ROLE_SUBMISSION,
    Agent,
    Aip,
    AipFile,
    Event,
)
from preserve.catalog import Catalog


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A URL to an empty catalog database: SQLite file, or a fresh PostgreSQL schema (tests/conftest.py)."""
    if request.param == "sqlite":
        yield "sqlite:///" + str(tmp_path / "catalog.sqlite")
        return
    yield request.getfixturevalue("pg_schema_url")


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    cat = Catalog.open(catalog_url)
    try:
        yield cat
    finally:
        cat.close()


def _digests(data: bytes) -> tuple[str, str]:
    return hashlib.sha256(data).hexdigest(), hashlib.sha512(data).hexdigest()


def build_aip(file_code: str = "TUHD.01.125", version: int = 1, n_docs: int = 3, fonds_name: str | None = None,
              aip_id: str | None = None) -> Aip:
    """A realistic AIP of one dossier of the Hải Dương provincial Party committee (values as the SIP reader
    gives them: codes resolved, ints as ints, dates as received plus <key>_iso)."""
    fonds, catalog_no, file_no = file_code.split(".")
    aip_id = aip_id or f"uuid-{uuid.uuid4()}"
    created = "2026-11-25T11:30:00+07:00"
    dossier = {
        "fileCode": file_code, "fondsCode": fonds,
        "fondsName": fonds_name or "Phông Tỉnh uỷ Hải Dương (1948–1967)",
        "catalogNo": catalog_no, "fileNo": file_no, "boxNo": "12",
        "title": "Tập nghị quyết, chỉ thị của Ban Thường vụ Tỉnh uỷ về công tác xây dựng Đảng năm 1965",
        "maintenance": "01", "mode": "02", "language": "Tiếng Việt",
        "startDate": "05/01/1965", "startDate_iso": "1965-01-05",
        "endDate": "12/1965", "endDate_iso": "1965-12",
        "totalDoc": n_docs, "numberOfPaper": 4 * n_docs, "numberOfPage": 7 * n_docs,
        "format": "02", "keyword": "xây dựng Đảng; nghị quyết; Ban Thường vụ",
        "inforSign": "KHTT-125", "description": "Bản gốc; một số trang ố vàng, chữ mờ",
    }
    documents, files = [], []
    for n in range(1, n_docs + 1):
        doc_code = f"{file_code}.{n:03d}"
        received = f"scans/hop12/{doc_code}.pdf"
        path = f"representations/original/data/{doc_code}.pdf"
        documents.append({
            "docCode": doc_code, "fileCode": file_code, "docOrdinal": n, "typeName": "01" if n == 1 else "09",
            "codeNumber": str(40 + n), "codeNotation": "NQ/TU" if n == 1 else "BC/TU",
            "issuedDate": f"{n:02d}/03/1965", "issuedDate_iso": f"1965-03-{n:02d}",
            "organName": "Ban Thường vụ Tỉnh uỷ Hải Dương",
            "subject": f"Nghị quyết về việc củng cố tổ chức cơ sở Đảng ở nông thôn, đợt {n}",
            "language": "Tiếng Việt", "numberOfPage": 7, "signer": "Nguyễn Văn Đức",
            "secrecy": "01" if n == 2 else None, "mode": "02", "autograph": "Có bút phê của Bí thư",
            "keyword": "cơ sở Đảng", "description": "", "file": received,
        })
        s256, s512 = _digests(f"%PDF-1.7 {doc_code}".encode())
        files.append(AipFile(path=path, size=150_000 + n, sha256=s256, sha512=s512, role=ROLE_ORIGINAL,
                             mime="application/pdf", puid="fmt/480", format_name="PDF/A-2b", format_version="2b",
                             original_name=received, doc_code=doc_code, pages=7))
    for rel, role, mime in [("metadata/descriptive/ead.xml", ROLE_DESCRIPTIVE, "application/xml"),
                            ("metadata/preservation/premis.xml", ROLE_PRESERVATION, "application/xml"),
                            ("submission/mucluc.xlsx", ROLE_SUBMISSION,
                             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")]:
        s256, s512 = _digests(f"{aip_id} {rel}".encode())
        files.append(AipFile(path=rel, size=2048, sha256=s256, sha512=s512, role=role, mime=mime,
                             puid="fmt/101" if mime == "application/xml" else "fmt/214"))
    agents = [Agent("agent-software-preserve", "preserve 0.1.0", "software", "digital-preservation repository"),
              Agent("agent-person-nguyen-thi-hoa", "Nguyễn Thị Hoà", "person", "cán bộ lưu trữ"),
              Agent("agent-org-tinh-uy-hai-duong", "Kho lưu trữ Tỉnh uỷ Hải Dương", "organization")]
    ex = [("agent-software-preserve", "executing program"), ("agent-person-nguyen-thi-hoa", "implementer")]
    events = [Event(f"uuid-{uuid.uuid4()}", t, created, "success", d, ex, [aip_id])
              for t, d in [("ingestion", "Tiếp nhận lô số hoá 2026-11"), ("validation", "SIP hợp lệ"),
                           ("format identification", "Siegfried: fmt/480"),
                           ("message digest calculation", "SHA-256, SHA-512"), ("creation", f"AIP v{version}")]]
    return Aip(id=aip_id, version=version, created=created, profile="vn-party-archive", dossier=dossier,
               documents=documents, files=files, events=events, agents=agents,
               organisation="Kho lưu trữ Tỉnh uỷ Hải Dương")


@pytest.fixture
def make_aip() -> Callable[..., Aip]:
    return build_aip


def aip_path(aip: Aip) -> str:
    u = aip.uuid.replace("-", "")
    return f"aips/{u[:2]}/{u[2:4]}/{aip.uuid}/v{aip.version}"


@pytest.fixture
def register(catalog: Catalog) -> Callable[[Aip], Aip]:
    def _register(aip: Aip) -> Aip:
        catalog.register_aip(aip, aip_path(aip), "primary", "ab" * 32, "2026-11-25T11:31:00+07:00")
        return aip
    return _register
