"""Sign-in, sign-out, the language switch and the dashboard."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from . import i18n, security
from .app import lang_of, render

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """A path on this site, else "/": never another host ("//x", "/\\x" which browsers read as "//x", or a
    scheme), never control characters."""
    from urllib.parse import urlsplit

    t = target or ""
    if (not t.startswith("/") or t.startswith("//") or "\\" in t or any(ord(c) < 32 for c in t)
            or urlsplit(t).netloc or urlsplit(t).scheme):
        return "/"
    return t


@router.get("/login")
def login_page(request: Request, next: str | None = None):
    return render(request, "login.html", next=_safe_next(next), error=None)


@router.post("/login")
def login(request: Request, username: str = Form(""), password: str = Form(""), csrf: str = Form(""),
          next: str = Form("/")):
    security.check_csrf(request, csrf)
    lang = lang_of(request)
    limiter = request.app.state.limiter
    keys = (f"ip:{request.client.host if request.client else '?'}", f"user:{username.strip().lower()}")
    wait = limiter.wait(*keys)
    if wait:
        return render(request, "login.html", 429, next=_safe_next(next), error=i18n.t("too_many", lang, seconds=wait))
    user = request.app.state.repo.users().authenticate(username, password)
    if user is None:
        limiter.failed(*keys)
        return render(request, "login.html", 401, next=_safe_next(next), error=i18n.t("bad_login", lang))
    limiter.succeeded(*keys)
    request.session.clear()  # a new session at sign-in: no fixation
    request.session["user"] = user.name
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")):
    security.check_csrf(request, csrf)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/lang/{code}")
def set_lang(request: Request, code: str, back: str = "/"):
    resp = RedirectResponse(_safe_next(back), status_code=303)
    resp.set_cookie("lang", code if code in i18n.LANGS else "vi", max_age=365 * 86400, samesite="strict",
                    httponly=True)
    return resp


@router.get("/")
def dashboard(request: Request):
    security.require_user(request)
    from .views import dashboard_data

    return render(request, "dashboard.html", **dashboard_data(request.app.state.repo))
