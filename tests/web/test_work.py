"""Ingest (upload, validation report, ingest), access requests (request, approve, deny, download) and audits,
through the pages and the JSON API, over the shared web repository (tests/web/conftest.py)."""

from __future__ import annotations

import html
import importlib.util
import io
import re
import sys
import time
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from preserve.sip.sample import make_sample, zip_sample


def _conftest():
    """tests/ is not a package (--import-mode=importlib): load the shared helpers by path."""
    name = "preserve_tests_web_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("conftest.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


PASSWORD = _conftest().PASSWORD
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: str) -> str:
    m = _CSRF.search(page)
    assert m, "no csrf hidden field in the page"
    return m.group(1)


@pytest.fixture(scope="module")
def world(web_world):
    web_world.repo.users().add("reader2", "reader", full_name="Người đọc thứ hai", password=PASSWORD)
    return web_world


@pytest.fixture
def as_user(web_app, world, signed_in):
    """as_user(name): a TestClient signed in as `name` (None: anonymous); redirects are not followed."""
    made = []

    def make(name: str | None = None) -> TestClient:
        c = TestClient(web_app, follow_redirects=False)
        made.append(c)
        return signed_in(c, name) if name else c

    yield make
    for c in made:
        c.close()


def _csrf(client: TestClient, page: str = "/") -> str:
    r = client.get(page)
    assert r.status_code == 200, r.text[:300]
    return csrf_of(r.text)


def _uploads(world) -> list[Path]:
    return sorted(world.repo.settings.staging.glob("sip-upload-*"))


@pytest.fixture(scope="module")
def batch_zip(world, tmp_path_factory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("upload")
    info = make_sample(tmp / "lo-tai-len", dossiers=2, docs=1, seed=23, pages=(1, 1))
    return zip_sample(info.root, tmp / "lo-tai-len.zip"), list(info.file_codes)


def _status(page: str) -> str:
    m = re.search(r'id="request-status"[^>]*data-status="([a-z]+)"', page)
    assert m, page[:2000]
    return m.group(1)


def _request(client: TestClient, doc: str, purpose: str = "Nghiên cứu lịch sử Đảng bộ tỉnh") -> tuple[str, str]:
    """Make a request through /access/new; (request id, the request page)."""
    form = client.get(f"/access/new?doc={doc}")
    assert form.status_code == 200 and 'id="request-form"' in form.text
    r = client.post("/access/new", data={"doc": doc, "dossier": "", "purpose": purpose, "csrf": csrf_of(form.text)})
    assert r.status_code == 303, r.text[:500]
    rid = r.headers["location"].rsplit("/", 1)[1]
    page = client.get(f"/access/{rid}")
    assert page.status_code == 200
    return rid, page.text


# ---- ingest ----------------------------------------------------------------------------------------------------
def test_upload_report_and_ingest(as_user, world, batch_zip):
    path, codes = batch_zip
    c = as_user("archivist")
    page = c.get("/ingest")
    assert page.status_code == 200
    for element in ('id="upload-form"', 'id="batch-file"', 'name="batch"', 'id="upload-progress"'):
        assert element in page.text
    r = c.post("/ingest/upload", data={"csrf": csrf_of(page.text)},
               files={"batch": ("lo-tai-len.zip", path.read_bytes(), "application/zip")})
    assert r.status_code == 303, r.text[:1000]
    upload_id = r.headers["location"].rsplit("/", 1)[1]
    assert [p.name for p in _uploads(world)] == [f"sip-upload-{upload_id}"]
    report = c.get(f"/ingest/{upload_id}")
    assert report.status_code == 200
    assert re.search(r'id="valid"[^>]*>có<', report.text), report.text[:3000]
    assert 'id="findings"' in report.text and 'id="ingest-now"' in report.text
    started = c.post(f"/ingest/{upload_id}/ingest", data={"csrf": csrf_of(report.text)})
    assert started.status_code == 303 and started.headers["location"] == f"/ingest/{upload_id}/progress"
    done = c.get(started.headers["location"])  # runs in the background; the page refreshes itself meanwhile
    for _ in range(300):
        if 'id="ingest-running"' not in done.text:
            break
        assert 'http-equiv="refresh"' in done.text and 'id="ingest-progress"' in done.text
        time.sleep(0.1)
        done = c.get(started.headers["location"])
    assert done.status_code == 200, done.text[:1000]
    assert 'id="ingest-result"' in done.text
    assert done.text.count('class="stored"') == 2 and 'class="refused"' not in done.text
    stored = {a["fileCode"] for a in world.repo.list_aips()}
    assert set(codes) <= stored
    assert _uploads(world) == []  # the upload is removed after ingest


def test_duplicate_batch_shows_findings(as_user, world, batch_zip):
    """The same batch again: its dossiers are already stored, so the report lists coded findings with their
    location and the Vietnamese message (English under it), and says it is not valid."""
    path, codes = batch_zip
    c = as_user("admin")
    r = c.post("/ingest/upload", data={"csrf": _csrf(c, "/ingest")},
               files={"batch": ("lai.zip", path.read_bytes(), "application/zip")})
    assert r.status_code == 303
    upload_id = r.headers["location"].rsplit("/", 1)[1]
    page = c.get(f"/ingest/{upload_id}").text
    assert re.search(r'id="valid"[^>]*>không<', page)
    report = world.repo.uploads().report(upload_id)
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert errors and set(report["refused"]) == set(codes)
    first = errors[0]
    assert f'data-code="{first["code"]}"' in page
    assert html.escape(first["message_vi"], quote=False) in html.unescape(page) or first["message_vi"] in html.unescape(page)
    assert first["message_en"] in html.unescape(page)
    assert 'id="ingest-now"' not in page  # nothing to ingest
    r = c.post(f"/ingest/{upload_id}/discard", data={"csrf": csrf_of(page)})
    assert r.status_code == 303 and _uploads(world) == []


def test_an_upload_is_its_uploaders(as_user, world, batch_zip):
    """Another archivist can neither see, open, ingest nor discard someone's upload; an administrator can."""
    world.repo.users().add("archivist2", "archivist", password=PASSWORD)
    path, _codes = batch_zip
    owner = as_user("archivist")
    r = owner.post("/ingest/upload", data={"csrf": _csrf(owner, "/ingest")},
                   files={"batch": ("cua-toi.zip", path.read_bytes(), "application/zip")})
    upload_id = r.headers["location"].rsplit("/", 1)[1]
    other = as_user("archivist2")
    csrf = _csrf(other, "/ingest")
    assert upload_id not in other.get("/ingest").text
    assert other.get(f"/ingest/{upload_id}").status_code == 404
    assert other.post(f"/ingest/{upload_id}/ingest", data={"csrf": csrf}).status_code == 404
    assert other.post(f"/ingest/{upload_id}/discard", data={"csrf": csrf}).status_code == 404
    assert [p.name for p in _uploads(world)] == [f"sip-upload-{upload_id}"]
    admin = as_user("admin")
    assert upload_id in admin.get("/ingest").text and admin.get(f"/ingest/{upload_id}").status_code == 200
    assert owner.post(f"/ingest/{upload_id}/discard", data={"csrf": _csrf(owner, "/ingest")}).status_code == 303
    assert _uploads(world) == []


def test_bad_upload_is_refused_and_nothing_stored(as_user, world):
    c = as_user("archivist")
    before = len(world.repo.list_aips())
    csrf = _csrf(c, "/ingest")
    r = c.post("/ingest/upload", data={"csrf": csrf}, files={"batch": ("ghichu.txt", b"hello", "text/plain")})
    assert r.status_code == 400
    assert 'id="upload-error"' in r.text and "không phải tệp .zip" in r.text
    r = c.post("/ingest/upload", data={"csrf": csrf}, files={"batch": ("gia.zip", b"not a zip at all", "application/zip")})
    assert r.status_code == 400 and "không phải tệp zip hợp lệ" in r.text
    assert _uploads(world) == [] and len(world.repo.list_aips()) == before


def test_reader_may_not_ingest(as_user, batch_zip):
    c = as_user("reader")
    assert c.get("/ingest").status_code == 403
    assert 'href="/ingest"' not in c.get("/").text  # not in the navigation either
    r = c.post("/ingest/upload", data={"csrf": _csrf(c)},
               files={"batch": ("lo.zip", batch_zip[0].read_bytes(), "application/zip")})
    assert r.status_code == 403


def test_csrf_missing_is_refused(as_user, world, batch_zip):
    c = as_user("archivist")
    r = c.post("/ingest/upload", files={"batch": ("lo.zip", batch_zip[0].read_bytes(), "application/zip")})
    assert r.status_code == 403 and _uploads(world) == []
    n = len(world.repo.access_requests().list())
    r = c.post("/access/new", data={"doc": world.docs[1][0], "purpose": "Nghiên cứu", "csrf": "sai"})
    assert r.status_code == 403 and len(world.repo.access_requests().list()) == n


# ---- access ----------------------------------------------------------------------------------------------------
def test_conditional_request_approved_then_downloaded(as_user, world):
    reader = as_user("reader")
    rid, page = _request(reader, world.docs[1][0])
    assert _status(page) == "pending" and 'id="download"' not in page and 'id="approve"' not in page
    archivist = as_user("archivist")
    listing = archivist.get("/access").text
    assert f'data-id="{rid}"' in listing  # approvers see everyone's requests
    page = archivist.get(f"/access/{rid}").text
    assert 'id="approve"' in page and 'id="deny"' in page and 'id="decision-reason"' in page
    r = archivist.post(f"/access/{rid}/approve", data={"reason": "Phục vụ nghiên cứu đã được xác minh",
                                                       "csrf": csrf_of(page)})
    assert r.status_code == 303, r.text[:1000]
    page = reader.get(f"/access/{rid}").text
    assert _status(page) == "approved" and "Phục vụ nghiên cứu đã được xác minh" in page
    assert 'id="download"' in page
    assert (world.root / "dip" / rid).is_dir()
    z = reader.get(f"/access/{rid}/download")
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        assert zf.testzip() is None
        pdfs = [n for n in zf.namelist() if n.lower().endswith(".pdf")]
        assert pdfs and zf.read(pdfs[0]).startswith(b"%PDF")
    other = as_user("reader2")
    assert other.get(f"/access/{rid}/download").status_code == 403
    assert other.get(f"/access/{rid}").status_code == 403
    assert f'data-id="{rid}"' not in other.get("/access").text  # a reader sees only their own


def test_denied_request(as_user, world):
    reader = as_user("reader2")
    rid, _ = _request(reader, world.docs[1][1])
    archivist = as_user("archivist")
    page = archivist.get(f"/access/{rid}").text
    r = archivist.post(f"/access/{rid}/deny", data={"reason": "Mục đích chưa rõ", "csrf": csrf_of(page)})
    assert r.status_code == 303
    page = reader.get(f"/access/{rid}").text
    assert _status(page) == "denied" and "Mục đích chưa rõ" in page and 'id="download"' not in page
    assert reader.get(f"/access/{rid}/download").status_code == 404


def test_open_record_copy_made_at_once(as_user, world):
    reader = as_user("reader")
    rid, page = _request(reader, world.docs[0][0])
    assert _status(page) == "approved" and 'id="download"' in page
    z = reader.get(f"/access/{rid}/download")
    assert z.status_code == 200 and zipfile.is_zipfile(io.BytesIO(z.content))


def test_secret_record_refused_with_reason(as_user, world):
    reader = as_user("reader")
    rid, page = _request(reader, world.docs[2][0])
    assert _status(page) == "refused"
    reason = html.unescape(re.search(r'id="request-reason">(.*?)</td>', page, re.DOTALL).group(1))
    assert "E-ACC-SECRET-GRANT" in reason and "chưa được cấp quyền khai thác tài liệu mật" in reason
    assert 'id="download"' not in page and reader.get(f"/access/{rid}/download").status_code == 404


def test_requester_cannot_approve_own_request(as_user, world):
    archivist = as_user("archivist")
    rid, page = _request(archivist, world.docs[1][1], "Biên soạn kỷ yếu")
    assert _status(page) == "pending" and 'id="approve"' not in page  # no buttons on one's own request
    r = archivist.post(f"/access/{rid}/approve", data={"reason": "tự duyệt", "csrf": csrf_of(page)})
    assert r.status_code == 403 and "E-ACC-SELF-APPROVAL" in r.text
    assert world.repo.access_requests().get(rid)["status"] == "pending"
    reader = as_user("reader")  # a reader may not approve at all
    r = reader.post(f"/access/{rid}/approve", data={"reason": "x", "csrf": _csrf(reader)})
    assert r.status_code == 403 and world.repo.access_requests().get(rid)["status"] == "pending"


# ---- audits ----------------------------------------------------------------------------------------------------
def test_audits_page(as_user, world):
    aip = world.aips[world.dossiers[0]]
    report = world.repo.write_audit_report(world.repo.audit(aip_ids=[aip], due=False))
    auditor = as_user("auditor")
    page = auditor.get("/audits")
    assert page.status_code == 200
    assert 'id="scheduler"' in page.text and 'id="damaged"' in page.text and 'id="repairs"' in page.text
    assert f'href="/audits/reports/{report.name}"' in page.text
    served = auditor.get(f"/audits/reports/{report.name}")
    assert served.status_code == 200 and "Báo cáo kiểm tra toàn vẹn" in served.text
    assert auditor.get("/audits/reports/..%2Fpreserve.toml").status_code == 404
    reader = as_user("reader")
    assert reader.get("/audits").status_code == 403
    assert reader.get(f"/audits/reports/{report.name}").status_code == 403


# ---- API -------------------------------------------------------------------------------------------------------
def _bearer(world, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[name]}"}


def test_api_access_flow(web_app, world):
    c = TestClient(web_app, follow_redirects=False)
    assert c.get("/api/requests").status_code == 401
    r = c.post("/api/requests", json={"doc": world.docs[1][0], "purpose": "Viết luận văn"},
               headers=_bearer(world, "reader"))
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["status"] == "pending" and req["user"] == "reader"
    mine = c.get("/api/requests", headers=_bearer(world, "reader")).json()["requests"]
    assert req["id"] in [x["id"] for x in mine] and {x["user"] for x in mine} == {"reader"}
    assert c.post(f"/api/requests/{req['id']}/approve", json={"reason": "ok"},
                  headers=_bearer(world, "reader")).status_code == 403
    r = c.post(f"/api/requests/{req['id']}/approve", json={"reason": "Đủ điều kiện"},
               headers=_bearer(world, "archivist"))
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    z = c.get(f"/api/requests/{req['id']}/download", headers=_bearer(world, "reader"))
    assert z.status_code == 200 and zipfile.is_zipfile(io.BytesIO(z.content))
    # refused by the rules: a secret record; the reason carries the code
    r = c.post("/api/requests", json={"dossier": world.dossiers[2], "purpose": "Nghiên cứu"},
               headers=_bearer(world, "reader"))
    assert r.status_code == 201 and r.json()["status"] == "refused" and "E-ACC-SECRET-GRANT" in r.json()["reason"]
    # one's own request
    own = c.post("/api/requests", json={"doc": world.docs[1][0], "purpose": "Biên soạn"},
                 headers=_bearer(world, "archivist")).json()
    r = c.post(f"/api/requests/{own['id']}/approve", json={"reason": "x"}, headers=_bearer(world, "archivist"))
    assert r.status_code == 403 and r.json()["code"] == "E-ACC-SELF-APPROVAL"
    assert c.post("/api/requests", json={"purpose": "x y z"}, headers=_bearer(world, "reader")).status_code == 400


def test_api_session_needs_csrf_header(as_user, world):
    c = as_user("reader")
    body = {"doc": world.docs[0][1], "purpose": "Nghiên cứu"}
    assert c.post("/api/requests", json=body).status_code == 403
    token = c.get("/api/me").json()["csrf"]
    r = c.post("/api/requests", json=body, headers={"X-CSRF-Token": token})
    assert r.status_code == 201 and r.json()["status"] == "approved"
    assert c.get(f"/api/requests/{r.json()['id']}").json()["download"]


def test_api_ingest_and_audits(web_app, world, batch_zip):
    c = TestClient(web_app, follow_redirects=False)
    files = {"batch": ("lo.zip", batch_zip[0].read_bytes(), "application/zip")}
    assert c.post("/api/ingest", files=files, headers=_bearer(world, "reader")).status_code == 403
    r = c.post("/api/ingest", files=files, headers=_bearer(world, "archivist"))
    assert r.status_code == 200, r.text
    data = r.json()  # the batch is stored already (test_upload_report_and_ingest): refused as duplicates
    assert data["valid"] is False and data["findings"] and {"code", "where", "message_vi", "message_en"} <= set(
        data["findings"][0])
    bad = c.post("/api/ingest", files={"batch": ("x.txt", b"x", "text/plain")}, headers=_bearer(world, "archivist"))
    assert bad.status_code == 400 and "zip" in bad.json()["error"]
    assert _uploads(world) == []
    assert c.get("/api/audits", headers=_bearer(world, "reader")).status_code == 403
    audits = c.get("/api/audits", headers=_bearer(world, "auditor")).json()
    assert {"reports", "damaged", "repairs", "scheduler"} <= set(audits)


def test_api_ingest_true_stores_the_batch(web_app, world, tmp_path):
    info = make_sample(tmp_path / "lo-api", dossiers=1, docs=1, seed=37, pages=(1, 1))
    data = zip_sample(info.root, tmp_path / "lo-api.zip").read_bytes()
    c = TestClient(web_app, follow_redirects=False)
    r = c.post("/api/ingest?ingest=true", files={"batch": ("lo-api.zip", data, "application/zip")},
               headers=_bearer(world, "archivist"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["valid"] is True and [a["fileCode"] for a in out["ingest"]["aips"]] == info.file_codes
    assert info.file_codes[0] in {a["fileCode"] for a in world.repo.list_aips()} and _uploads(world) == []


def test_conditional_approval_needs_a_reason_and_english_labels(as_user, world):
    reader = as_user("reader2")
    rid, _ = _request(reader, world.docs[1][0])
    archivist = as_user("archivist")
    page = archivist.get(f"/access/{rid}").text
    r = archivist.post(f"/access/{rid}/approve", data={"reason": "", "csrf": csrf_of(page)})
    assert r.status_code == 400 and "Cần nêu lý do duyệt" in r.text
    assert world.repo.access_requests().get(rid)["status"] == "pending"
    archivist.cookies.set("lang", "en")
    page = archivist.get(f"/access/{rid}").text
    assert ">Approve<" in page and "pending (pending)" in page


def test_upload_larger_than_the_zip_limit_is_refused(as_user, web_app, world, batch_zip, monkeypatch):
    limits = web_app.state.repo.settings.data.setdefault("limits", {})
    monkeypatch.setitem(limits, "zip_max_bytes", 2000)
    c = as_user("archivist")
    r = c.post("/ingest/upload", data={"csrf": _csrf(c, "/ingest")},
               files={"batch": ("lo.zip", batch_zip[0].read_bytes(), "application/zip")})
    assert r.status_code == 400 and "Tệp quá lớn" in r.text and _uploads(world) == []
