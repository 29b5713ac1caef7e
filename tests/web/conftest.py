"""The web application over a real, ingested repository (module scope: one ingest for many tests), users of
every role, and `signed_in(client, name)` that signs a TestClient in through the /login form.

The batch: 3 dossiers × 2 documents, values set in its own hoso.csv / tailieu.csv before ingest:
- dossier 0: mode 01 Công khai, 01/02/2015–20/11/2015, documents of type 01 Nghị quyết and 02 Quyết định;
  document 0's subject mentions "xã Đồng Tâm";
- dossier 1: mode 02 Sử dụng có điều kiện, 03/2019–12/2019, two documents of type 03 Chỉ thị;
- dossier 2: mode 03 Mật (secret: a reader without a grant for the fonds sees none of it), 2021, types 01, 04.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from preserve.repository import Repository
from preserve.sip.sample import edit_csv, make_sample

PASSWORD = "mat-khau-du-dai-1"
ROLES = {"admin": "admin", "archivist": "archivist", "auditor": "auditor", "reader": "reader"}
SUBJECT = "Nghị quyết về phát triển đảng viên ở xã Đồng Tâm"

DOSSIERS = [  # (mode, startDate, endDate, [(typeName, issuedDate), …])
    ("01", "01/02/2015", "20/11/2015", [("01", "10/03/2015"), ("02", "15/06/2015")]),
    ("02", "03/2019", "12/2019", [("03", "05/04/2019"), ("03", "09/09/2019")]),
    ("03", "2021", "2021", [("01", "12/05/2021"), ("04", "20/10/2021")]),
]


@dataclass
class WebWorld:
    repo: Repository
    root: Path
    fonds: str
    dossiers: list[str]                      # fileCodes, in the order of DOSSIERS
    docs: list[list[str]]                    # docCodes of each dossier
    aips: dict[str, str] = field(default_factory=dict)  # fileCode -> AIP id
    tokens: dict[str, str] = field(default_factory=dict)  # user name -> API token


@pytest.fixture(scope="module")
def web_world(tmp_path_factory) -> WebWorld:
    tmp = tmp_path_factory.mktemp("web")
    lot = tmp / "lo"
    info = make_sample(lot, dossiers=len(DOSSIERS), docs=2, seed=8, form="csv", checksums=False, pages=(1, 1))
    edit_csv(lot / "hoso.csv", "HoSo", {i: {"mode": m, "startDate": s, "endDate": e}
                                      for i, (m, s, e, _) in enumerate(DOSSIERS)})
    doc_rows = edit_csv(lot / "tailieu.csv", "TaiLieu", {})
    edits: dict[int, dict[str, str]] = {}
    docs: list[list[str]] = []
    for i, code in enumerate(info.file_codes):
        rows = [j for j, r in enumerate(doc_rows) if r["fileCode"] == code]
        docs.append([doc_rows[j]["docCode"] for j in rows])
        for j, (type_code, issued) in zip(rows, DOSSIERS[i][3]):
            edits[j] = {"typeName": type_code, "issuedDate": issued, "mode": "", "secrecy": ""}
    edits[next(j for j, r in enumerate(doc_rows) if r["docCode"] == docs[0][0])]["subject"] = SUBJECT
    edit_csv(lot / "tailieu.csv", "TaiLieu", edits)

    repo = Repository.init(tmp / "repo", "Lưu trữ lịch sử Tỉnh ủy (test)", offsite=False)
    result = repo.ingest(lot)
    assert len(result.aips) == len(DOSSIERS), result
    fonds = repo.show_aip(result.aips[0]["id"])["dossier"]["fondsCode"]
    users = repo.users()
    for name, role in ROLES.items():
        users.add(name, role, full_name=f"Người dùng {name}", password=PASSWORD)
    world = WebWorld(repo=repo, root=tmp / "repo", fonds=fonds, dossiers=list(info.file_codes), docs=docs,
                     aips={a["fileCode"]: a["id"] for a in result.aips})
    world.tokens = {name: users.create_token(name, "test") for name in ROLES}
    yield world
    repo.close()


@pytest.fixture(scope="module")
def web_app(web_world):
    from preserve.web.app import create_app

    app = create_app(web_world.root)
    yield app
    app.state.repo.close()


@pytest.fixture
def client(web_app):
    from fastapi.testclient import TestClient

    with TestClient(web_app, follow_redirects=False) as c:
        yield c


CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def _csrf_of(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "no csrf hidden field in the page"
    return m.group(1)


def _signed_in(client, name: str, password: str = PASSWORD):
    """Sign `client` in as `name` through the form (GET /login, read the csrf field, POST); returns the client."""
    page = client.get("/login")
    assert page.status_code == 200, page.text
    resp = client.post("/login", data={"username": name, "password": password, "csrf": _csrf_of(page.text),
                                       "next": "/"}, follow_redirects=False)
    assert resp.status_code == 303, resp.text
    return client


@pytest.fixture
def signed_in():
    """The helper: `signed_in(client, "reader")` (tests/ is not a package, so it comes as a fixture)."""
    return _signed_in


@pytest.fixture
def csrf_of():
    """The helper: `csrf_of(html)`, the value of a page's csrf hidden field."""
    return _csrf_of
