"""The JSON API under /api: the same operations as the pages, for scripts and other systems. Every call needs a
signed-in session or `Authorization: Bearer TOKEN` (`preserve users token NAME`): 401 otherwise, 403 when the
role may not. Calls that change something, made with the session cookie, need the X-CSRF-Token header."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from . import security

router = APIRouter(prefix="/api", tags=["api"])


def api_user(request: Request):
    """The caller; unsafe methods with a session cookie (not a token) must carry the CSRF header."""
    user = security.require_user(request)
    if request.method not in ("GET", "HEAD", "OPTIONS") and not getattr(request.state, "via_token", False):
        security.check_csrf(request, request.headers.get(security.CSRF_HEADER))
    return user


@router.get("/me")
def me(request: Request, user=Depends(api_user)) -> dict[str, Any]:
    """Who is signed in: name, role, fonds granted, and the CSRF token for calls made with the session."""
    return {"name": user.name, "full_name": user.full_name, "role": user.role, "fonds": sorted(user.grants),
            "csrf": security.csrf_token(request) if not getattr(request.state, "via_token", False) else None}


@router.get("/dashboard")
def dashboard(request: Request, user=Depends(api_user)) -> dict[str, Any]:
    """Counts, tiers (copies, free space, last audit), open alerts, recent events."""
    from .views import dashboard_data

    return dashboard_data(request.app.state.repo)


@router.get("/aips")
def list_aips(request: Request, user=Depends(api_user)) -> dict[str, Any]:
    """Every AIP version: id, fileCode, version, documents, pages, bytes, created."""
    security.require(request, "read", "audit")
    return {"aips": request.app.state.repo.list_aips()}


@router.get("/aips/{aip_id}")
def show_aip(request: Request, aip_id: str, user=Depends(api_user)) -> dict[str, Any]:
    """One AIP: dossier, documents, files with digests and formats, replicas, PREMIS events."""
    from .browse import aip_or_404

    return aip_or_404(request.app.state.repo, security.require(request, "read", "audit"), aip_id)
