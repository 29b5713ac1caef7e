"""JSON API for ingest, access requests and audits: the same operations and rules as the pages (work.py).
401 without a session or token, 403 when the role may not (or the rules refuse: `code` names the finding),
400 for a usage problem ({"error", "hint"}); calls that change something, made with the session cookie, need
the X-CSRF-Token header."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from ..access.requests import AccessRefused
from ..errors import UsageError
from . import security, work
from .api import api_user

router = APIRouter(prefix="/api", tags=["api"])


def _refused(e: AccessRefused) -> JSONResponse:
    f = e.finding
    return JSONResponse({"error": f"{f.code}: {f.message_vi} / {f.message_en}", "code": f.code,
                         "message_vi": f.message_vi, "message_en": f.message_en, "hint": e.hint,
                         "request": e.request}, status_code=403)


@router.post("/ingest", openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["batch"],
               "properties": {"batch": {"type": "string", "format": "binary"}}}}}}})
async def api_ingest(request: Request, ingest: bool = False, user=Depends(api_user)) -> dict[str, Any]:
    """Upload a batch (.zip, multipart field `batch`, streamed to staging): its validation report (valid,
    findings, dossiers, accepted, refused); with ?ingest=true, also ingest it ("ingest": aips, refused,
    findings). The upload is not kept."""
    security.require(request, "ingest")
    repo = work.repo_of(request)
    upload_id = await work.store_upload(request, user, form_csrf=False)
    try:
        out = await run_in_threadpool(work.upload_report, repo, upload_id)
        out.pop("upload", None)
        if ingest:
            out["ingest"] = await run_in_threadpool(work.ingest_upload, repo, upload_id, user)
        return out
    finally:
        repo.uploads().remove(upload_id)


@router.get("/requests")
def api_requests(request: Request, user=Depends(api_user)) -> dict[str, Any]:
    """Access requests: the caller's own; every request for approvers."""
    security.require(request, "request", "approve")
    return {"requests": work.list_requests(work.repo_of(request), user)}


@router.post("/requests")
def api_new_request(request: Request, body: dict[str, Any] = Body(...), user=Depends(api_user)):
    """A new request {"doc": code} or {"dossier": code}, with "purpose": decided at once by the rules (approved
    for an open record, whose copy is then made; pending; or refused with the reason)."""
    security.require(request, "request")
    doc, dossier = body.get("doc"), body.get("dossier")
    if not isinstance(body.get("purpose", ""), str) or not all(isinstance(x, (str, type(None))) for x in (doc, dossier)):
        raise UsageError("doc, dossier and purpose must be text", hint='{"doc": "…", "purpose": "…"}')
    req = work.new_request(work.repo_of(request), user, body.get("purpose", ""), doc, dossier)
    return JSONResponse(req, status_code=201)


@router.get("/requests/{request_id}")
def api_request(request: Request, request_id: str, user=Depends(api_user)) -> dict[str, Any]:
    """One request (the caller's own, or any for approvers)."""
    security.require(request, "request", "approve")
    repo = work.repo_of(request)
    req = work.get_request(repo, user, request_id)
    req["download"] = (f"/api/requests/{req['id']}/download"
                       if req["status"] == "approved" and repo.latest_access_copy(req["id"]) else None)
    return req


def _decide(request: Request, request_id: str, body: dict[str, Any] | None, user, approve: bool):
    security.require(request, "approve")
    reason = (body or {}).get("reason")
    if reason is not None and not isinstance(reason, str):
        raise UsageError("reason must be text", hint='{"reason": "…"}')
    try:
        return work.decide(work.repo_of(request), user, request_id, approve, reason)
    except AccessRefused as e:
        return _refused(e)


@router.post("/requests/{request_id}/approve")
def api_approve(request: Request, request_id: str, body: dict[str, Any] | None = Body(None),
                user=Depends(api_user)):
    """Approve a pending request {"reason": "…"} (required for a record of conditional use); the copy is made
    at once. Refused (403) for one's own request."""
    return _decide(request, request_id, body, user, True)


@router.post("/requests/{request_id}/deny")
def api_deny(request: Request, request_id: str, body: dict[str, Any] | None = Body(None), user=Depends(api_user)):
    """Deny a pending request {"reason": "…"}."""
    return _decide(request, request_id, body, user, False)


@router.get("/requests/{request_id}/download")
def api_download(request: Request, request_id: str, user=Depends(api_user)):
    """The access copy (application/zip): only the requester, or approvers."""
    security.require(request, "request", "approve")
    path = work.download_path(work.repo_of(request), user, request_id)
    return FileResponse(path, media_type="application/zip", filename=path.name)


@router.get("/audits")
def api_audits(request: Request, user=Depends(api_user)) -> dict[str, Any]:
    """Latest audit reports (name, bytes, modified; GET /audits/reports/{name}), damaged or missing replicas,
    recent repairs, last verification per tier, scheduler status."""
    security.require(request, "audit", "report")
    return work.audits_data(work.repo_of(request))

