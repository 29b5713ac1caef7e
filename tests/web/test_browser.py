"""The web application in a real browser: Debian's chromium driven by Playwright, against a real HTTP server
(uvicorn on 127.0.0.1 in a background thread). Sign-in and sign-out, upload and ingest of a zipped batch,
search without diacritics, a copy requested, approved and downloaded, a Mật record refused, Vietnamese labels
and dates, the English switch; and the screenshots of docs/ui.md.

The screenshots go to docs/ui/<name>.png only when PRESERVE_SCREENSHOTS=1 (so `make test` does not rewrite the
committed files), otherwise into a temporary folder; either way the test checks that each one was written.
"""

from __future__ import annotations

import io
import os
import re
import socket
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} not found: the browser tests drive Debian's chromium (apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright (python) is not installed: pip install playwright")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed")

from preserve.access.rules import LEVEL_TEXT
from preserve.findings import Finding
from preserve.repository import Repository
from preserve.search.fold import fold
from preserve.sip.sample import edit_csv, make_sample, zip_sample

os.environ.setdefault("PRESERVE_OCR", "off")

ROOT = Path(__file__).resolve().parents[2]
VIEWPORT = {"width": 1366, "height": 768}
PASSWORD = "mat-khau-du-dai-1"
USERS = {  # name -> (role, full name)
    "admin": ("admin", "Quản trị hệ thống"),
    "luutru": ("archivist", "Lê Thị Lan"),
    "bandoc": ("reader", "Nguyễn Thị Hòa"),
}
SHOTS = ("sign-in", "dashboard", "browse-dossier", "search", "aip", "ingest-report", "access-approved", "audits")
TIMEOUT_MS = 20_000


# --- the site: a repository, a real server, a browser ------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A repository with users admin, luutru (archivist), bandoc (reader) and one ingested dossier whose one
    document is Mật; a zipped batch to upload (dossier 1 conditional, dossier 2 open); the app served on
    127.0.0.1 by uvicorn in a background thread."""
    from preserve.web.app import create_app

    tmp = tmp_path_factory.mktemp("web")
    secret = make_sample(tmp / "lo-mat", dossiers=1, docs=1, seed=23, form="csv", checksums=False, pages=(1, 1))
    edit_csv(tmp / "lo-mat" / "hoso.csv", "HoSo", {0: {"mode": "01"}})
    edit_csv(tmp / "lo-mat" / "tailieu.csv", "TaiLieu", {0: {"mode": "", "secrecy": "Mật"}})
    repo = Repository.init(tmp / "repo", "Lưu trữ lịch sử Tỉnh ủy (test)", offsite=False)
    try:
        result = repo.ingest(tmp / "lo-mat")
        assert len(result.aips) == 1, result
        users = repo.users()
        for name, (role, full) in USERS.items():
            users.add(name, role, full_name=full, password=PASSWORD)
    finally:
        repo.close()

    batch = make_sample(tmp / "lo-tai-len", dossiers=2, docs=2, seed=5, pages=(1, 1), form="csv")
    edit_csv(tmp / "lo-tai-len" / "hoso.csv", "HoSo", {0: {"mode": "02"}})
    edit_csv(tmp / "lo-tai-len" / "hoso.csv", "HoSo", {1: {"mode": "01"}})
    for i in range(len(batch.doc_codes)):
        edit_csv(tmp / "lo-tai-len" / "tailieu.csv", "TaiLieu", {i: {"mode": "", "secrecy": ""}})
    if (tmp / "lo-tai-len" / "checksums.sha256").exists():  # the csv changed: make the checksums agree again
        import hashlib

        lines = []
        for line in (tmp / "lo-tai-len" / "checksums.sha256").read_text(encoding="utf-8").splitlines():
            _digest, _, name = line.partition("  ")
            p = tmp / "lo-tai-len" / name
            lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {name}" if p.is_file() else line)
        (tmp / "lo-tai-len" / "checksums.sha256").write_text("\n".join(lines) + "\n", encoding="utf-8")
    archive = zip_sample(tmp / "lo-tai-len", tmp / "lo-tai-len.zip")

    app = create_app(tmp / "repo")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    shots = ROOT / "docs" / "ui" if os.environ.get("PRESERVE_SCREENSHOTS") == "1" else tmp / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", app=app, repo=app.state.repo, batch=batch,
                          zip=archive, secret=secret, shots=shots, taken=set())
    server.should_exit = True
    thread.join(timeout=10)
    app.state.repo.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM),
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


class Session:
    """One user's browser context (its own cookies) and page, on the test site."""

    def __init__(self, browser, site, name: str | None):
        self.site = site
        self.context = browser.new_context(viewport=VIEWPORT, base_url=site.url, accept_downloads=True,
                                           locale="vi-VN")
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        if name:
            self.sign_in(name)

    def sign_in(self, name: str, password: str = PASSWORD):
        page = self.page
        page.goto("/login")
        page.fill("#username", name)
        page.fill("#password", password)
        with page.expect_navigation():
            page.click("#sign-in")
        return page

    def go(self, path: str):
        resp = self.page.goto(path)
        assert resp is not None and resp.status < 400, f"GET {path}: HTTP {resp.status if resp else '?'}"
        return self.page

    def shot(self, name: str) -> Path:
        assert name in SHOTS
        path = self.site.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        self.site.taken.add(name)
        return path

    def close(self):
        self.context.close()


@pytest.fixture
def session(browser, site):
    """session(name) -> a signed-in Session (name None: signed out); closed after the test."""
    made = []

    def make(name: str | None) -> Session:
        s = Session(browser, site, name)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def _text(page, selector: str) -> str:
    return page.locator(selector).first.inner_text()


# --- the shared flows: done once, whichever test asks first ------------------------------------------------
@pytest.fixture(scope="module")
def uploaded(browser, site):
    """The archivist uploads the zipped batch on /ingest, sees the report, ingests it: the result page."""
    s = Session(browser, site, "luutru")
    try:
        page = s.go("/ingest")
        page.set_input_files("#batch-file", str(site.zip))
        with page.expect_navigation(url=re.compile(r"/ingest/[^/]+$"), timeout=60_000):
            page.click("#upload-form [type=submit]")  # the form's script sends it by XMLHttpRequest, then goes on
        page.wait_for_selector("#findings, #valid")
        report = {"url": page.url, "valid": _text(page, "#valid") if page.locator("#valid").count() else None}
        s.shot("ingest-report")
        with page.expect_navigation(timeout=60_000):
            page.click("#ingest-now")
        page.wait_for_selector("#ingest-result", timeout=120_000)  # the progress page refreshes until done
        stored = page.locator("#ingest-result .stored").all_inner_texts()
        refused = page.locator("#ingest-result .refused").all_inner_texts()
        return SimpleNamespace(report=report, stored=stored, refused=refused, result_url=page.url)
    finally:
        s.close()


def _aips_by_file(site) -> dict[str, str]:
    return {a.get("fileCode"): a["id"] for a in site.repo.list_aips()}


@pytest.fixture(scope="module")
def approved(browser, site, uploaded):
    """The reader asks for a copy of a conditional document; the archivist approves it; the reader downloads."""
    doc = site.batch.doc_codes[0]  # of the first dossier, mode 02: an archivist must approve
    reader = Session(browser, site, "bandoc")
    archivist = Session(browser, site, "luutru")
    try:
        page = reader.go(f"/browse/document/{doc}")
        with page.expect_navigation():
            page.click("#request-copy")
        page.fill("#purpose", "Nghiên cứu lịch sử Đảng bộ tỉnh")
        with page.expect_navigation():
            page.click("#request-submit")
        m = re.search(r"/access/([^/?#]+)$", page.url)
        assert m, f"after #request-submit the reader is at {page.url}, not /access/{{id}}"
        rid = m.group(1)
        status_before = _text(page, "#request-status")

        page = archivist.go(f"/access/{rid}")
        page.fill("#decision-reason", "Phục vụ nghiên cứu, đúng mục đích")
        with page.expect_navigation(timeout=60_000):
            page.click("#approve")
        page.wait_for_selector("#request-status")
        status_after = _text(page, "#request-status")

        page = reader.go(f"/access/{rid}")
        page.wait_for_selector("#download")
        reader.shot("access-approved")
        with page.expect_download(timeout=60_000) as info:
            page.click("#download")
        download = info.value
        data = Path(download.path()).read_bytes()
        return SimpleNamespace(id=rid, doc=doc, before=status_before, after=status_after, data=data,
                               filename=download.suggested_filename)
    finally:
        reader.close()
        archivist.close()


# --- the tests ---------------------------------------------------------------------------------------------
def test_sign_in_and_out(session):
    s = session(None)
    page = s.go("/")  # signed out: sent to the sign-in page
    assert "/login" in page.url
    page.fill("#username", "luutru")
    page.fill("#password", "sai-mat-khau")
    page.click("#sign-in")
    page.wait_for_selector("#login-error")
    assert page.locator("#login-error").inner_text().strip()
    s.sign_in("luutru")
    page.wait_for_selector("#counts")
    assert page.url.rstrip("/") == s.site.url
    assert "Lê Thị Lan" in _text(page, "#who")
    with page.expect_navigation():
        page.click("#sign-out")
    assert "/login" in page.url
    page.goto("/")
    assert "/login" in page.url, "after sign-out the dashboard must ask to sign in again"


def test_vietnamese_labels_dates_and_english_switch(session):
    s = session(None)
    page = s.go("/login")
    assert "Đăng nhập" in page.locator("#sign-in").inner_text()
    s.shot("sign-in")
    s.sign_in("admin")
    page.wait_for_selector("#counts")
    assert "Tổng quan" in page.locator("h1").first.inner_text()
    dates = page.locator("#events tbody tr td:first-child").all_inner_texts()
    assert dates, "the dashboard shows no events (the Mật batch was ingested before the server started)"
    for d in dates:
        assert re.fullmatch(r"\d{2}/\d{2}/\d{4}( \d{2}:\d{2}(:\d{2})?)?", d.strip()), d
    s.shot("dashboard")
    with page.expect_navigation():
        page.click("#lang-switch")
    page.wait_for_selector("#counts")
    assert "Dashboard" in page.locator("h1").first.inner_text()
    assert "Sign out" in page.locator("#sign-out").inner_text()
    with page.expect_navigation():
        page.click("#sign-out")
    assert "Sign in" in page.locator("#sign-in").inner_text()


def test_upload_and_ingest(uploaded, site):
    assert uploaded.report["valid"] is None or uploaded.report["valid"].strip(), uploaded.report
    assert len(uploaded.stored) == 2, f"stored: {uploaded.stored}, refused: {uploaded.refused}"
    assert not uploaded.refused, uploaded.refused
    stored = _aips_by_file(site)
    for code in site.batch.file_codes:
        assert code in stored, f"dossier {code} not in the repository after the web ingest"
    assert any(site.batch.file_codes[0] in t or stored[site.batch.file_codes[0]] in t for t in uploaded.stored)


def _search_case(site) -> tuple[str, str, str]:
    """(docCode, its subject, a word of it folded to plain letters) for a document of the open dossier."""
    doc = site.batch.doc_codes[2]
    info = site.repo.show_aip(_aips_by_file(site)[site.batch.file_codes[1]])
    subject = next(d for d in info["documents"] if d["docCode"] == doc)["subject"]
    words = [w for w in re.findall(r"\w{5,}", subject) if not w.isdigit() and fold(w) != w.lower()]
    assert words, f"no word with diacritics in the subject {subject!r}"
    return doc, subject, fold(max(words, key=len))


def _search(s: Session, plain: str):
    page = s.go("/search")
    page.fill("#q", plain)
    with page.expect_navigation():
        page.click("#search-submit")
    page.wait_for_selector("#results")
    return page


def test_search_without_diacritics(uploaded, site, session):
    doc, subject, plain = _search_case(site)
    s = session("bandoc")
    page = _search(s, plain)
    hit = page.locator(f'#results li.result[data-doc="{doc}"]')
    listed = page.locator("#results li.result").evaluate_all("ls => ls.map(l => l.dataset.doc)")
    assert hit.count() == 1, f"searching «{plain}» (from «{subject}») did not list {doc}: {listed}"
    assert _text(page, "#total").strip()
    s.shot("search")


def test_request_approve_download(approved):
    assert "refused" not in approved.before.lower() and "từ chối" not in approved.before.lower(), approved.before
    assert re.search(r"approved|đã duyệt|chấp thuận|phê duyệt", approved.after, re.IGNORECASE), approved.after
    with zipfile.ZipFile(io.BytesIO(approved.data)) as zf:
        pdfs = [n for n in zf.namelist() if n.lower().endswith(".pdf")]
        assert pdfs, f"the copy {approved.filename} holds no PDF: {zf.namelist()}"
        assert zf.read(pdfs[0]).startswith(b"%PDF")


def test_mat_record_refused(site, session):
    doc = site.secret.doc_codes[0]
    s = session("bandoc")
    page = s.go(f"/access/new?doc={doc}")
    page.fill("#purpose", "Nghiên cứu lịch sử Đảng bộ tỉnh")
    with page.expect_navigation():
        page.click("#request-submit")
    page.wait_for_selector("#request-status")
    status = _text(page, "#request-status")
    assert re.search(r"refused|từ chối", status, re.IGNORECASE), status
    reason = _text(page, "#request-reason")
    fonds = next(a for a in site.repo.list_aips() if a.get("fileCode") == site.secret.file_codes[0])
    fonds = site.repo.show_aip(fonds["id"])["dossier"]["fondsCode"]
    expected = Finding("E-ACC-SECRET-GRANT", doc, {"target": doc, "fileCode": site.secret.file_codes[0],
                                                    "fonds": fonds, "level": LEVEL_TEXT["secret"],
                                                    "user": "bandoc"}).message_vi
    assert expected in reason, f"the refusal shows {reason!r}, not the rule's Vietnamese reason {expected!r}"


def test_screenshots(uploaded, approved, site, session):
    """The pages of docs/ui.md at 1366×768 (the ingest report and the approved request are taken in their flows)."""
    s = session("admin")
    file_code = site.batch.file_codes[0]
    page = s.go(f"/browse/dossier/{file_code}")
    page.wait_for_selector("#documents")
    s.shot("browse-dossier")
    page = s.go(f"/aips/{_aips_by_file(site)[file_code]}")
    page.wait_for_selector("#files")
    page.wait_for_selector("#replicas")
    s.shot("aip")
    with page.expect_navigation(timeout=60_000):
        page.click("#audit-now")
    page.wait_for_selector("#audit-result")
    assert page.locator("#audit-result").get_attribute("data-ok") == "true", _text(page, "#audit-result")
    page = s.go("/audits")
    page.wait_for_selector("#scheduler")
    s.shot("audits")
    s.go("/").wait_for_selector("#counts")  # again, now that the uploaded batch is in
    s.shot("dashboard")
    if "search" not in site.taken:  # taken by their own tests; again here if run alone
        _search(s, _search_case(site)[2])
        s.shot("search")
    if "sign-in" not in site.taken:
        s.context.clear_cookies()
        s.go("/login")
        s.shot("sign-in")
    assert site.taken == set(SHOTS), set(SHOTS) - site.taken
    for name in SHOTS:
        path = site.shots / f"{name}.png"
        assert path.is_file() and path.stat().st_size > 1000, f"{path} was not written"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

