"""The FastAPI application: one Repository for the process, sessions, templates, error pages, routers.

Pages are in pages.py (sign-in, dashboard), browse.py (fonds, dossiers, documents, search, AIPs) and work.py
(ingest, access requests, audits); the JSON API under /api is in api.py. Every one of them calls only the
Repository façade and checks the user's role with security.require()."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from ..errors import PreserveError
from . import i18n, security

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters["vndate"] = i18n.vndate
templates.env.filters["size"] = i18n.size

NAV = [  # (path, label key, actions that show it; empty: every signed-in user)
    ("/", "dashboard", ()),
    ("/browse", "browse", ()),
    ("/search", "search", ()),
    ("/ingest", "ingest", ("ingest",)),
    ("/access", "access", ("request", "approve")),
    ("/audits", "audits", ("audit", "report")),
    ("/users", "users", ("manage-users",)),
]


# nothing inline and nothing from elsewhere: the only script is /static/upload.js
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
       "form-action 'self'; base-uri 'none'")


def lang_of(request: Request) -> str:
    lang = request.cookies.get("lang", "vi")
    return lang if lang in i18n.LANGS else "vi"


def render(request: Request, template: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    lang = lang_of(request)
    user = security.current_user(request)
    nav = [(path, i18n.t(key, lang)) for path, key, actions in NAV if user and (not actions or security.may(user, *actions))]
    base = {"request": request, "user": user, "lang": lang, "nav": nav, "csrf": security.csrf_token(request),
            "t": lambda key, **p: i18n.t(key, lang, **p), "may": lambda *a: security.may(user, *a),
            "path": request.url.path}
    return templates.TemplateResponse(request, template, {**base, **ctx}, status_code=status_code)


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api")


def create_app(root: Path | str, *, https_only: bool = False) -> FastAPI:
    from ..repository import Repository

    repo = Repository.open(root)
    app = FastAPI(title="preserve", version=__import__("preserve").__version__,
                  description="Kho lưu trữ số / Digital preservation repository: JSON API (sign in, or "
                              "`Authorization: Bearer TOKEN` from `preserve users token NAME`).",
                  docs_url=None, openapi_url="/api/openapi.json", redoc_url=None)  # no CDN-hosted viewer: works offline
    app.state.repo = repo
    app.state.limiter = security.SignInLimiter()
    from .jobs import Jobs

    app.state.jobs = Jobs()  # background ingests, one registry for the process
    app.add_middleware(SessionMiddleware, secret_key=security.session_secret(repo.settings.keys_dir),
                       session_cookie=security.SESSION_COOKIE, max_age=security.SESSION_HOURS * 3600,
                       same_site="strict", https_only=https_only)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        """No framing (clickjacking), no MIME sniffing, nothing loaded from elsewhere, no referrer leaks."""
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.url.path != "/login" and not request.url.path.startswith("/static"):
            response.headers.setdefault("Cache-Control", "no-store")  # records' pages are not kept by browsers
        return response

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if wants_json(request):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        if exc.status_code == 401:
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        key = {403: "csrf" if exc.detail == "csrf" else "forbidden", 404: "not_found"}.get(exc.status_code)
        return render(request, "error.html", exc.status_code,
                      message=i18n.t(key, lang_of(request)) if key else str(exc.detail), hint=None)

    @app.exception_handler(PreserveError)
    async def preserve_error(request: Request, exc: PreserveError):
        hint = getattr(exc, "hint", None)
        if wants_json(request):
            return JSONResponse({"error": str(exc), "hint": hint}, status_code=400)
        return render(request, "error.html", 400, message=str(exc), hint=hint)

    from . import api, browse, browse_api, pages, users, work, work_api

    app.include_router(pages.router)
    app.include_router(browse.router)
    app.include_router(work.router)
    app.include_router(api.router)
    app.include_router(browse_api.router)
    app.include_router(work_api.router)
    app.include_router(users.router)
    return app
