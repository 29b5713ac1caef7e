"""Browse (fonds → dossiers → documents), search and the AIP view.

Every page needs a signed-in user. Browse and search show only what the user's access rules let them see
(preserve.access.visibility, as `preserve search --user`); the AIP view is for roles that may read or audit, and
its "audit now" button for roles that may audit or ingest. Metadata is shown with the profile's Vietnamese labels,
codes as "01 – Công khai", dates dd/mm/yyyy."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from markupsafe import Markup, escape

from ..errors import UsageError
from ..sip.profile import load_profile
from . import browse_text, i18n, security  # noqa: F401 - browse_text merges its labels into i18n.TEXT
from .app import render, templates

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
SEARCH_LIMIT = 50


def _hits(text: str | None) -> Markup:
    """A search snippet with its hits (marked « ») in <mark>, everything else escaped."""
    out = escape(text or "")
    return Markup(re.sub(r"«(.*?)»", r"<mark>\1</mark>", str(out)))


templates.env.filters["hits"] = _hits


def code_label(list_name: str, code: str | None) -> str:
    """'01 – Công khai' (the code alone when the profile does not know it)."""
    if not code:
        return ""
    text = load_profile().code_text(list_name, code)
    return f"{code} – {text}" if text else str(code)


def field_rows(sheet, record: dict[str, Any], skip: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """(key, label, shown value) for every field of a profile sheet, in the profile's order."""
    rows = []
    for f in sheet.fields:
        if f.key in skip:
            continue
        value = record.get(f.key)
        if f.codes:
            shown = code_label(f.codes, value)
        elif f.kind == "date":
            shown = i18n.vndate(record.get(f.key + "_iso") or value)
        else:
            shown = "" if value is None else str(value)
        rows.append({"key": f.key, "label": f.label, "value": shown})
    return rows


def codes(list_name: str) -> list[tuple[str, str]]:
    return list(load_profile().code_lists[list_name].items())


def _int(value: str | None, default: int, lo: int = 0, hi: int = 10**9) -> int:
    try:
        return max(lo, min(hi, int(value))) if value not in (None, "") else default
    except ValueError:
        return default


def viewer(user) -> str | None:
    """The user name whose visibility applies (None: an administrator sees everything)."""
    return None if user.role == "admin" else user.name


# ------------------------------------------------------------------ browse
@router.get("/browse")
def fonds_page(request: Request):
    user = security.require_user(request)
    fonds = request.app.state.repo.browse_fonds(user=viewer(user))
    return render(request, "browse_fonds.html", fonds=fonds)


@router.get("/browse/fonds/{code}")
def dossiers_page(request: Request, code: str, type: str | None = None, mode: str | None = None,
                  offset: str | None = None):
    user = security.require_user(request)
    repo = request.app.state.repo
    q = request.query_params
    form = {"type": type or "", "from": q.get("from", ""), "to": q.get("to", ""), "mode": mode or ""}
    off = _int(offset, 0)
    error = hint = None
    try:
        page = repo.browse_dossiers(code, type_name=form["type"], date_from=form["from"], date_to=form["to"],
                                    mode=form["mode"], user=viewer(user), limit=PAGE_SIZE, offset=off)
    except UsageError as e:
        error, hint = str(e), e.hint
        page = repo.browse_dossiers(code, user=viewer(user), limit=PAGE_SIZE, offset=0)
    if page is None:
        raise HTTPException(status_code=404, detail=f"no fonds {code}")
    fonds = next((f for f in repo.browse_fonds(user=viewer(user)) if f["code"] == code), None)
    for d in page["dossiers"]:
        d["span"] = " – ".join(x for x in (i18n.vndate(d.get("startDate_iso") or d.get("startDate")),
                                           i18n.vndate(d.get("endDate_iso") or d.get("endDate"))) if x)
        d["mode_text"] = code_label("mode", d.get("mode"))
    keep = urlencode({k: v for k, v in form.items() if v})
    return render(request, "browse_dossiers.html", fonds=fonds or {"code": code, "name": ""}, page=page,
                  form=form, error=error, hint=hint, types=codes("typeName"), modes=codes("mode"),
                  keep=keep, page_size=PAGE_SIZE)


@router.get("/browse/dossier/{file_code}")
def dossier_page(request: Request, file_code: str):
    user = security.require_user(request)
    d = request.app.state.repo.browse_dossier(file_code, user=viewer(user))
    if d is None:
        raise HTTPException(status_code=404, detail=f"no dossier {file_code}")
    profile = load_profile()
    for doc in d["documents"]:
        doc["issued_text"] = i18n.vndate(doc.get("issuedDate_iso") or doc.get("issuedDate"))
        doc["type_text"] = code_label("typeName", doc.get("typeName"))
    return render(request, "browse_dossier.html", d=d, fields=field_rows(profile.dossier, d),
                  labels={f.key: f.label for f in profile.document.fields})


@router.get("/browse/document/{doc_code}")
def document_page(request: Request, doc_code: str):
    user = security.require_user(request)
    doc = request.app.state.repo.browse_document(doc_code, user=viewer(user))
    if doc is None:
        raise HTTPException(status_code=404, detail=f"no document {doc_code}")
    return render(request, "browse_document.html", doc=doc, fields=field_rows(load_profile().document, doc))


# ------------------------------------------------------------------ search
@router.get("/search")
def search_page(request: Request, q: str = "", fonds: str = "", type: str = "", limit: str | None = None):
    user = security.require_user(request)
    repo = request.app.state.repo
    params = request.query_params
    form = {"q": q, "fonds": fonds, "type": type, "from": params.get("from", ""), "to": params.get("to", "")}
    result = error = hint = None
    if q.strip():
        try:
            result = repo.search(q, fonds=fonds or None, type_name=type or None, date_from=form["from"] or None,
                                 date_to=form["to"] or None, user=user.name,
                                 limit=_int(limit, SEARCH_LIMIT, 1, 500))
        except UsageError as e:
            error, hint = str(e), e.hint
    if result:
        for r in result["results"]:
            r["issued_text"] = i18n.vndate(r.get("issued"))
    fonds_list = repo.browse_fonds(user=viewer(user))
    return render(request, "search.html", form=form, result=result, error=error, hint=hint,
                  types=codes("typeName"), fonds_list=fonds_list)


# ------------------------------------------------------------------ AIP view
def aip_or_404(repo, user, aip_id: str) -> dict[str, Any]:
    """The AIP view, when the AIP exists and `user` may see its dossier under the access rules (404 otherwise,
    as for a record that is not there): the pages and the API share this check."""
    aip = repo.find_aip(aip_id)
    if aip is None or not repo.aip_visible(aip_id, user=viewer(user)):
        raise HTTPException(status_code=404, detail=f"no AIP {aip_id}")
    return aip


def audit_outcome(repo, aip_id: str) -> dict[str, Any]:
    """Audit every replica of one AIP now: {"ok", "replicas": [{tier, outcome, findings}], "unreachable"}."""
    result = repo.audit(aip_ids=[aip_id], due=False)
    report = repo.write_audit_report(result)  # listed on /audits
    return {"ok": result.ok, "report": report.name,
            "replicas": [{"tier": a.tier, "outcome": a.outcome, "files": a.files, "bytes": a.bytes,
                          "findings": [f.to_dict() for f in a.findings]} for a in result.audits],
            "unreachable": list(result.unreachable)}


def _aip_page(request: Request, aip_id: str, audit: dict[str, Any] | None = None):
    user = security.require(request, "read", "audit")
    aip = aip_or_404(request.app.state.repo, user, aip_id)
    for e in aip["events"]:
        e["when"] = i18n.vndate(e.get("datetime"), True)
    return render(request, "aip.html", aip=aip, audit=audit)


@router.get("/aips/{aip_id}")
def aip_page(request: Request, aip_id: str):
    return _aip_page(request, aip_id)


@router.post("/aips/{aip_id}/audit")
def aip_audit(request: Request, aip_id: str, csrf: str = Form("")):
    security.require(request, "audit", "ingest")
    user = security.require(request, "read", "audit")
    security.check_csrf(request, csrf)
    repo = request.app.state.repo
    aip_or_404(repo, user, aip_id)
    return _aip_page(request, aip_id, audit=audit_outcome(repo, aip_id))

