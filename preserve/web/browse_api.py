"""The JSON API of browse, search and the AIP audit: the same data and rules as the pages (preserve.web.browse).

    GET  /api/fonds                                  fonds with what the caller may see of them
    GET  /api/fonds/{code}/dossiers?type=&from=&to=&mode=&limit=&offset=
    GET  /api/dossiers/{fileCode}                    a dossier and its (visible) documents
    GET  /api/documents/{docCode}
    GET  /api/search?q=&fonds=&type=&from=&to=&limit=
    POST /api/aips/{id}/audit                        audit every replica of an AIP now (audit or ingest roles)

401 without a session or token, 403 when the role may not, 404 for unknown codes or records the caller may not
see, 400 {"error", "hint"} for a bad filter (an unknown type, a date that is not one)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from . import security
from .api import api_user
from .browse import audit_outcome, viewer

router = APIRouter(prefix="/api", tags=["api"])
CALLER = Depends(api_user)


@router.get("/fonds")
def fonds(request: Request, user=CALLER) -> dict[str, Any]:
    """Fonds with the dossiers, documents and pages the caller may see."""
    return {"fonds": request.app.state.repo.browse_fonds(user=viewer(user))}


@router.get("/fonds/{code}/dossiers")
def dossiers(request: Request, code: str, type: str | None = None, from_: str | None = Query(None, alias="from"),
             to: str | None = None, mode: str | None = None, limit: int = Query(50, ge=1, le=500),
             offset: int = Query(0, ge=0), user=CALLER) -> dict[str, Any]:
    """A page of a fonds' dossiers: type (code or name of a document type some document has), from/to
    (dd/mm/yyyy, mm/yyyy or yyyy: dossiers whose dates overlap), mode (the dossier's access mode, code or name)."""
    page = request.app.state.repo.browse_dossiers(code, type_name=type, date_from=from_, date_to=to, mode=mode,
                                                  user=viewer(user), limit=limit, offset=offset)
    if page is None:
        raise HTTPException(status_code=404, detail=f"no fonds {code}")
    return page


@router.get("/dossiers/{file_code}")
def dossier(request: Request, file_code: str, user=CALLER) -> dict[str, Any]:
    """A dossier by profile key, with its documents the caller may see."""
    d = request.app.state.repo.browse_dossier(file_code, user=viewer(user))
    if d is None:
        raise HTTPException(status_code=404, detail=f"no dossier {file_code}")
    return d


@router.get("/documents/{doc_code}")
def document(request: Request, doc_code: str, user=CALLER) -> dict[str, Any]:
    """A document by profile key, with aipId, level, fondsCode, fondsName, dossierTitle."""
    d = request.app.state.repo.browse_document(doc_code, user=viewer(user))
    if d is None:
        raise HTTPException(status_code=404, detail=f"no document {doc_code}")
    return d


@router.get("/search")
def search(request: Request, q: str, fonds: str | None = None, type: str | None = None,
           from_: str | None = Query(None, alias="from"), to: str | None = None,
           limit: int = Query(20, ge=1, le=500), user=CALLER) -> dict[str, Any]:
    """Full-text search (diacritics-insensitive) of what the caller may see: {"results", "total", "totalExact"}."""
    return request.app.state.repo.search(q, fonds=fonds or None, type_name=type or None, date_from=from_ or None,
                                         date_to=to or None, user=user.name, limit=limit)


@router.post("/aips/{aip_id}/audit")
def audit(request: Request, aip_id: str, user=CALLER) -> dict[str, Any]:
    """Re-read and verify every replica of one AIP now: {"ok", "replicas": [{tier, outcome, …}], "unreachable"}."""
    security.require(request, "audit", "ingest")
    repo = request.app.state.repo
    # a fixity check reveals no record content: any AIP may be verified, as with `preserve audit --aip`;
    # its view (dossier, documents, events) follows the access rules (aip_or_404)
    if repo.find_aip(aip_id) is None:
        raise HTTPException(status_code=404, detail=f"no AIP {aip_id}")
    return {"aip": aip_id, **audit_outcome(repo, aip_id)}
