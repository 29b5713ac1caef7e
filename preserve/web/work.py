"""Ingest (upload, validation report, ingest), access requests (request, approve or deny, download) and
audits (reports, damage, repairs, scheduler status).

The operations shared with the JSON API (work_api.py) are the plain functions at the top; the page handlers
below only add forms, CSRF checks and templates."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from ..access.requests import AccessRefused
from ..errors import PreserveError, UsageError
from . import security, work_text  # noqa: F401 - work_text adds the labels
from .app import lang_of, render

router = APIRouter(include_in_schema=False)


# ---- operations shared by the pages and the API ----------------------------------------------------------------
def repo_of(request: Request):
    return request.app.state.repo


def message_of(e: Exception) -> str:
    """A PreserveError's message without its hint (shown apart)."""
    return str(e.args[0]) if e.args else str(e)


FIELD_LIMIT = 4096  # bytes of a text field of the upload form (the CSRF token)


class _BatchReceiver:
    """multipart/form-data callbacks: the file part `field` goes straight to an UploadWriter in staging, chunk by
    chunk; small text fields are kept; other files are ignored."""

    def __init__(self, uploads, owner: str, field: str):
        self.uploads, self.owner, self.field = uploads, owner, field
        self.fields: dict[str, str] = {}
        self.writer = None
        self._hname = self._hvalue = self._disposition = b""
        self._name, self._kind, self._data = "", "text", bytearray()

    def on_part_begin(self) -> None:
        self._disposition, self._name, self._kind, self._data = b"", "", "text", bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def on_header_end(self) -> None:
        if self._hname.lower() == b"content-disposition":
            self._disposition = self._hvalue
        self._hname = self._hvalue = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            self._kind = "text"
        elif self._name == self.field and self.writer is None:
            self._kind = "batch"
            self.writer = self.uploads.begin(options[b"filename"].decode("utf-8", "replace"), self.owner)
        else:
            self._kind = "ignored"

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._kind == "batch":
            self.writer.write(data[start:end])
        elif self._kind == "text":
            self._data += data[start:end]
            if len(self._data) > FIELD_LIMIT:
                raise UsageError(f"Trường '{self._name}' quá dài / form field '{self._name}' is too long.",
                                 hint="Send the batch as the file field 'batch'.")

    def on_part_end(self) -> None:
        if self._kind == "text":
            self.fields[self._name] = self._data.decode("utf-8", "replace")


async def receive_batch(request: Request, user, *, form_csrf: bool) -> str:
    """Stream the multipart field `batch` to <staging>/sip-upload-<id>/batch.zip as it arrives: refused (and
    removed) when not a .zip, past the repository's zip limit, or, with `form_csrf`, when the form's csrf field
    is wrong (checked as soon as it has arrived). Returns the upload id."""
    uploads = repo_of(request).uploads()
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        if form_csrf:
            security.check_csrf(request, None)
        raise UsageError("Cần gửi tệp dạng multipart/form-data / send the batch as multipart/form-data.",
                         hint="e.g. curl -F batch=@lo.zip …")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > uploads.max_bytes + 1_000_000:
        raise UsageError(f"Tệp quá lớn (hơn {uploads.max_bytes:,} byte) / the file is larger than the limit of "
                         f"{uploads.max_bytes:,} bytes.", hint="Split the batch, or raise [limits] zip_max_bytes.")
    rx = _BatchReceiver(uploads, user.name, "batch")
    parser = MultipartParser(params[b"boundary"], {
        "on_part_begin": rx.on_part_begin, "on_part_data": rx.on_part_data, "on_part_end": rx.on_part_end,
        "on_header_field": rx.on_header_field, "on_header_value": rx.on_header_value,
        "on_header_end": rx.on_header_end, "on_headers_finished": rx.on_headers_finished})
    checked = not form_csrf
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if not checked and "csrf" in rx.fields:
                security.check_csrf(request, rx.fields["csrf"])
                checked = True
        parser.finalize()
        if not checked:
            security.check_csrf(request, rx.fields.get("csrf"))
        if rx.writer is None:
            raise UsageError("Chưa chọn tệp .zip / no .zip file was sent.",
                             hint="Chọn tệp .zip của lô hồ sơ / choose the .zip of the batch (field 'batch').")
        return rx.writer.finish()
    except FormParserError as e:
        if rx.writer is not None:
            rx.writer.abort()
        raise UsageError(f"Dữ liệu tải lên không hợp lệ / the upload is not valid multipart data ({e}).",
                         hint="Upload the .zip again.") from None
    except BaseException:
        if rx.writer is not None:
            rx.writer.abort()
        raise


def validate_upload(repo, upload_id: str) -> None:
    """Validate an upload and keep its report with it (the upload is removed when validation cannot run)."""
    uploads = repo.uploads()
    try:
        uploads.save_report(upload_id, repo.validation_report(uploads.zip_path(upload_id)))
    except BaseException:
        uploads.remove(upload_id)
        raise


async def store_upload(request: Request, user, *, form_csrf: bool) -> str:
    upload_id = await receive_batch(request, user, form_csrf=form_csrf)
    await run_in_threadpool(validate_upload, repo_of(request), upload_id)
    return upload_id


def upload_report(repo, upload_id: str) -> dict[str, Any]:
    uploads = repo.uploads()
    try:
        meta = uploads.meta(upload_id)
    except UsageError:
        raise HTTPException(status_code=404, detail=f"no upload {upload_id}") from None
    report = uploads.report(upload_id)
    if report is None:
        report = repo.validation_report(uploads.zip_path(upload_id))
        uploads.save_report(upload_id, report)
    return {"upload": meta, **report}


def ingest_upload(repo, upload_id: str, user, progress=None) -> dict[str, Any]:
    """Ingest an uploaded batch as `user`; the upload is removed afterwards (refused dossiers go to quarantine)."""
    uploads = repo.uploads()
    try:
        path = uploads.zip_path(upload_id)
    except UsageError:
        raise HTTPException(status_code=404, detail=f"no upload {upload_id}") from None
    result = repo.ingest(path, officer=user.name, progress=progress)
    uploads.remove(upload_id)
    data = result.to_dict()
    data.pop("replication", None)
    return data


def get_request(repo, user, request_id: str) -> dict[str, Any]:
    """A request the user may see (their own, or any for an approver): 404 unknown, 403 someone else's."""
    try:
        req = repo.access_requests().get(request_id)
    except UsageError:
        raise HTTPException(status_code=404, detail=f"no request {request_id}") from None
    if req["user"] != user.name and not user.may("approve"):
        raise HTTPException(status_code=403, detail="forbidden")
    return req


def list_requests(repo, user) -> list[dict[str, Any]]:
    reqs = repo.access_requests().list(user=None if user.may("approve") else user.name)
    return list(reversed(reqs))


def make_copy(repo, request_id: str, by: str | None) -> dict[str, Any]:
    """Make the access copy now into <repository>/dip/<id>/ (by None: the requester)."""
    return repo.make_access_copy(request_id, repo.access_copy_dir(request_id), by=by)


def copy_after_approval(repo, req: dict[str, Any], by: str | None) -> str | None:
    """Make the copy of an approved request at once; the error text when it could not be made."""
    if req["status"] != "approved":
        return None
    try:
        make_copy(repo, req["id"], by if by != req["user"] else None)
    except PreserveError as e:
        return message_of(e) + (f" → {e.hint}" if getattr(e, "hint", None) else "")
    return None


def new_request(repo, user, purpose: str, doc: str | None, dossier: str | None) -> dict[str, Any]:
    """A request decided at once by the rules; an open record's copy is made at once (by the requester)."""
    made = repo.access_requests().request(user.name, purpose, doc=doc or None, dossier=dossier or None)
    req = repo.access_requests().get(made["id"])
    error = copy_after_approval(repo, req, None)
    req = repo.access_requests().get(req["id"])
    req["copyError"] = error
    return req


def decide(repo, user, request_id: str, approve: bool, reason: str | None) -> dict[str, Any]:
    """Approve (then make the copy at once, by the approver) or deny. AccessRefused / UsageError propagate."""
    get_request(repo, user, request_id)
    reqs = repo.access_requests()
    req = reqs.approve(request_id, user.name, reason) if approve else reqs.deny(request_id, user.name, reason)
    error = copy_after_approval(repo, req, user.name) if approve else None
    req = reqs.get(request_id)
    req["copyError"] = error
    return req


def may_download(user, req: dict[str, Any]) -> bool:
    return req["user"] == user.name or user.may("approve")


def download_path(repo, user, request_id: str):
    req = get_request(repo, user, request_id)
    if not may_download(user, req):
        raise HTTPException(status_code=403, detail="forbidden")
    path = repo.latest_access_copy(req["id"]) if req["status"] == "approved" else None
    if path is None:
        raise HTTPException(status_code=404, detail=f"no copy has been made for request {req['id']}: make it from its page /access/{req['id']}")
    return path


def audits_data(repo) -> dict[str, Any]:
    try:
        scheduler, scheduler_error = repo.scheduler_status(), None
    except PreserveError as e:
        scheduler, scheduler_error = None, str(e)
    return {"reports": repo.audit_reports(), "damaged": repo.damaged_replicas(), "repairs": repo.recent_repairs(),
            "last_verified": repo.last_verified_by_tier(), "scheduler": scheduler,
            "scheduler_error": scheduler_error}


# ---- ingest pages ----------------------------------------------------------------------------------------------
def _sees_all_uploads(user) -> bool:
    return user.may("manage-users")


def _my_upload(request: Request, user, upload_id: str) -> str:
    """An upload of this user's (an administrator may act on every one); 404 for anyone else's."""
    try:
        owner = repo_of(request).uploads().meta(upload_id).get("owner")
    except UsageError:
        raise HTTPException(status_code=404, detail=f"no upload {upload_id}") from None
    if owner != user.name and not _sees_all_uploads(user):
        raise HTTPException(status_code=404, detail=f"no upload {upload_id}")
    return upload_id


def _ingest_page(request: Request, status: int = 200, error: str | None = None, hint: str | None = None):
    user = security.require(request, "ingest")
    uploads = repo_of(request).uploads().list(owner=None if _sees_all_uploads(user) else user.name)
    return render(request, "ingest.html", status, uploads=uploads, error=error, hint=hint)


@router.get("/ingest")
def ingest_page(request: Request):
    security.require(request, "ingest")
    return _ingest_page(request)


@router.post("/ingest/upload")
async def ingest_upload_page(request: Request):
    """The upload form (multipart: csrf, then the file `batch`), streamed to staging, then validated."""
    user = security.require(request, "ingest")
    try:
        upload_id = await store_upload(request, user, form_csrf=True)
    except UsageError as e:
        return _ingest_page(request, 400, message_of(e), e.hint)
    return RedirectResponse(f"/ingest/{upload_id}", status_code=303)


@router.get("/ingest/{upload_id}")
def ingest_report_page(request: Request, upload_id: str):
    _my_upload(request, security.require(request, "ingest"), upload_id)
    return render(request, "ingest_report.html", **upload_report(repo_of(request), upload_id))


@router.post("/ingest/{upload_id}/ingest")
def ingest_now_page(request: Request, upload_id: str, csrf: str = Form("")):
    """Start the ingest in the background (OCR takes seconds a page) and show its progress."""
    user = security.require(request, "ingest")
    security.check_csrf(request, csrf)
    repo = repo_of(request)
    _my_upload(request, user, upload_id)  # 404 now, not in the background
    request.app.state.jobs.start(upload_id, user.name, lambda progress: ingest_upload(repo, upload_id, user, progress),
                         lambda e: (message_of(e), getattr(e, "hint", None)))
    return RedirectResponse(f"/ingest/{upload_id}/progress", status_code=303)


@router.get("/ingest/{upload_id}/progress")
def ingest_progress_page(request: Request, upload_id: str):
    user = security.require(request, "ingest")
    job = request.app.state.jobs.get(upload_id)
    if job is None or (job.owner != user.name and not _sees_all_uploads(user)):
        raise HTTPException(status_code=404, detail=f"no ingest of upload {upload_id}")
    if job.state == "finished":
        return render(request, "ingest_result.html", result=job.result)
    if job.state == "failed":
        return render(request, "error.html", 400, message=job.error, hint=job.hint)
    return render(request, "ingest_progress.html", job=job)


@router.post("/ingest/{upload_id}/discard")
def ingest_discard_page(request: Request, upload_id: str, csrf: str = Form("")):
    security.check_csrf(request, csrf)
    _my_upload(request, security.require(request, "ingest"), upload_id)
    repo_of(request).uploads().remove(upload_id)
    return RedirectResponse("/ingest", status_code=303)


# ---- access pages ----------------------------------------------------------------------------------------------
@router.get("/access")
def access_page(request: Request):
    user = security.require(request, "request", "approve")
    return render(request, "access.html", requests=list_requests(repo_of(request), user))


def _new_form(request: Request, doc: str, dossier: str, purpose: str = "", status: int = 200,
              error: str | None = None, hint: str | None = None):
    return render(request, "access_new.html", status, doc=doc, dossier=dossier, purpose=purpose, error=error,
                  hint=hint)


@router.get("/access/new")
def access_new_page(request: Request, doc: str = "", dossier: str = ""):
    security.require(request, "request")
    return _new_form(request, doc.strip(), dossier.strip())


@router.post("/access/new")
def access_new(request: Request, purpose: str = Form(""), doc: str = Form(""), dossier: str = Form(""),
               csrf: str = Form("")):
    user = security.require(request, "request")
    security.check_csrf(request, csrf)
    try:
        req = new_request(repo_of(request), user, purpose, doc.strip(), dossier.strip())
    except UsageError as e:
        return _new_form(request, doc.strip(), dossier.strip(), purpose, 400, message_of(e), e.hint)
    if req.get("copyError"):
        request.session["copy_error"] = [req["id"], req["copyError"]]
    return RedirectResponse(f"/access/{req['id']}", status_code=303)


def _request_page(request: Request, req: dict[str, Any], status: int = 200, error: str | None = None,
                  hint: str | None = None):
    user = security.current_user(request)
    repo = repo_of(request)
    flash = request.session.pop("copy_error", None)
    copy_error = flash[1] if flash and flash[0] == req["id"] else None
    has_copy = req["status"] == "approved" and repo.latest_access_copy(req["id"]) is not None
    from ..access.rules import LEVEL_TEXT

    level = LEVEL_TEXT.get(req["level"])
    return render(request, "access_request.html", status, req=req,
                  level_text=(level.get(lang_of(request), req["level"]) if level else req["level"]), error=error, hint=hint, copy_error=copy_error,
                  has_copy=has_copy, can_decide=(user.may("approve") and user.name != req["user"]
                                                 and req["status"] == "pending"),
                  can_download=has_copy and may_download(user, req),
                  can_make=(req["status"] == "approved" and not has_copy
                            and (user.name == req["user"] or user.may("make"))))


@router.get("/access/{request_id}")
def access_request_page(request: Request, request_id: str):
    user = security.require(request, "request", "approve")
    return _request_page(request, get_request(repo_of(request), user, request_id))


def _decide_page(request: Request, request_id: str, approve: bool, reason: str, csrf: str):
    user = security.require(request, "approve")
    security.check_csrf(request, csrf)
    repo = repo_of(request)
    try:
        req = decide(repo, user, request_id, approve, reason)
    except AccessRefused as e:
        f = e.finding
        return _request_page(request, get_request(repo, user, request_id), 403,
                             f"{f.code}: {f.message_vi} / {f.message_en}", e.hint)
    except UsageError as e:
        return _request_page(request, get_request(repo, user, request_id), 400, message_of(e), e.hint)
    if req.get("copyError"):
        request.session["copy_error"] = [req["id"], req["copyError"]]
    return RedirectResponse(f"/access/{req['id']}", status_code=303)


@router.post("/access/{request_id}/approve")
def access_approve(request: Request, request_id: str, reason: str = Form(""), csrf: str = Form("")):
    return _decide_page(request, request_id, True, reason, csrf)


@router.post("/access/{request_id}/deny")
def access_deny(request: Request, request_id: str, reason: str = Form(""), csrf: str = Form("")):
    return _decide_page(request, request_id, False, reason, csrf)


@router.post("/access/{request_id}/copy")
def access_make_copy(request: Request, request_id: str, csrf: str = Form("")):
    user = security.require(request, "request", "approve")
    security.check_csrf(request, csrf)
    repo = repo_of(request)
    req = get_request(repo, user, request_id)
    if user.name != req["user"] and not user.may("make"):
        raise HTTPException(status_code=403, detail="forbidden")
    try:
        make_copy(repo, req["id"], None if user.name == req["user"] else user.name)
    except PreserveError as e:
        return _request_page(request, req, 403 if isinstance(e, AccessRefused) else 400, message_of(e),
                             getattr(e, "hint", None))
    return RedirectResponse(f"/access/{req['id']}", status_code=303)


@router.get("/access/{request_id}/download")
def access_download(request: Request, request_id: str):
    user = security.require(request, "request", "approve")
    path = download_path(repo_of(request), user, request_id)
    return FileResponse(path, media_type="application/zip", filename=path.name)


# ---- audits ----------------------------------------------------------------------------------------------------
@router.get("/audits")
def audits_page(request: Request):
    security.require(request, "audit", "report")
    return render(request, "audits.html", **audits_data(repo_of(request)))


@router.get("/audits/reports/{name}")
def audit_report(request: Request, name: str):
    security.require(request, "audit", "report")
    try:
        path = repo_of(request).audit_report_path(name)
    except FileNotFoundError:
        raise HTTPException(status_code=404, detail=f"no report {name}") from None
    return HTMLResponse(path.read_text(encoding="utf-8"),
                        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
