"""User administration for administrators (role action "manage-users"): the list of users, adding one, and per
user: password reset, disable/enable, fonds grants, API tokens. Pages here, and the JSON API under /api/users.

Every change goes through the Users store made with the signed-in administrator as actor, so each
`user administration` event names who made it. An administrator cannot disable their own account."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse

from ..access.rules import ROLES, User
from ..errors import UsageError
from . import i18n, security, users_text  # noqa: F401 - users_text adds the labels
from .api import api_user
from .app import lang_of, render
from .work import message_of

pages_router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["api"])
router = APIRouter()  # both, included at the end of this module (app.py includes `router`)

ACTION = "manage-users"
Caller = Annotated[User, Depends(api_user)]  # 401 without a session or token; CSRF header with a session


# ---- operations shared by the pages and the API ----------------------------------------------------------------
def store_of(request: Request, admin):
    """The Users store; changes are recorded as made by the signed-in administrator."""
    return request.app.state.repo.users(actor=admin.name)


def fonds_list(value: Any) -> list[str]:
    """Fonds codes from a comma- (or semicolon-) separated text, or a list of them."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else re.split(r"[,;]", str(value))
    return [str(c).strip() for c in items if str(c).strip()]


def existing(store, name: str) -> dict[str, Any]:
    if store.get(name) is None:
        raise HTTPException(status_code=404, detail=f"no user {name}")
    return store.show(name)


def set_state(store, admin, name: str, disabled: bool) -> dict[str, Any]:
    existing(store, name)
    if disabled and store.get(name).name == admin.name:
        raise UsageError(i18n.TEXT["u.self_disable"][0], hint=i18n.TEXT["u.self_disable_hint"][1])
    return store.set_disabled(name, disabled)


# ---- pages -------------------------------------------------------------------------------------------------------
def _list_page(request: Request, status: int = 200, error: str | None = None, hint: str | None = None,
               form: dict[str, str] | None = None, flash: str | None = None):
    return render(request, "users.html", status, users=request.app.state.repo.users().list(), roles=ROLES,
                  error=error, hint=hint, form=form or {"role": "reader"},
                  flash=flash or request.session.pop("u_flash", None))


def _user_page(request: Request, u: dict[str, Any], status: int = 200, error: str | None = None,
               hint: str | None = None, token: str | None = None):
    admin = security.current_user(request)
    return render(request, "user.html", status, u=u, error=error, hint=hint, token=token,
                  is_self=(admin is not None and admin.name == u["name"]),
                  flash=request.session.pop("u_flash", None))


def _flash(request: Request, key: str, **params: Any) -> None:
    request.session["u_flash"] = i18n.t(key, lang_of(request), **params)


@pages_router.get("/users")
def users_page(request: Request):
    security.require(request, ACTION)
    return _list_page(request)


@pages_router.post("/users")
def users_add(request: Request, name: str = Form(""), full_name: str = Form(""), role: str = Form("reader"),
              fonds: str = Form(""), password: str = Form(""), csrf: str = Form("")):
    admin = security.require(request, ACTION)
    security.check_csrf(request, csrf)
    try:
        u = store_of(request, admin).add(name, role, full_name=full_name, fonds=fonds_list(fonds), password=password)
    except UsageError as e:
        return _list_page(request, 400, message_of(e), e.hint,
                          form={"name": name, "full_name": full_name, "role": role, "fonds": fonds})
    _flash(request, "u.added", name=u["name"])
    return RedirectResponse("/users", status_code=303)


@pages_router.get("/users/{name}")
def user_page(request: Request, name: str):
    admin = security.require(request, ACTION)
    return _user_page(request, existing(store_of(request, admin), name))


@pages_router.post("/users/{name}/password")
def user_password(request: Request, name: str, password: str = Form(""), csrf: str = Form("")):
    admin = security.require(request, ACTION)
    security.check_csrf(request, csrf)
    store = store_of(request, admin)
    u = existing(store, name)
    try:
        store.set_password(name, password)
    except UsageError as e:
        return _user_page(request, u, 400, message_of(e), e.hint)
    _flash(request, "u.password_set", name=u["name"])
    return RedirectResponse(f"/users/{u['name']}", status_code=303)


def _state_page(request: Request, name: str, csrf: str, disabled: bool):
    admin = security.require(request, ACTION)
    security.check_csrf(request, csrf)
    store = store_of(request, admin)
    u = existing(store, name)
    try:
        u = set_state(store, admin, name, disabled)
    except UsageError as e:
        return _user_page(request, u, 400, message_of(e), e.hint)
    _flash(request, "u.disabled_done" if disabled else "u.enabled_done", name=u["name"])
    return RedirectResponse(f"/users/{u['name']}", status_code=303)


@pages_router.post("/users/{name}/disable")
def user_disable(request: Request, name: str, csrf: str = Form("")):
    return _state_page(request, name, csrf, True)


@pages_router.post("/users/{name}/enable")
def user_enable(request: Request, name: str, csrf: str = Form("")):
    return _state_page(request, name, csrf, False)


def _grant_page(request: Request, name: str, fonds: str, csrf: str, revoke: bool):
    admin = security.require(request, ACTION)
    security.check_csrf(request, csrf)
    store = store_of(request, admin)
    u = existing(store, name)
    try:
        u = store.grant(name, fonds_list(fonds), revoke=revoke)
    except UsageError as e:
        return _user_page(request, u, 400, message_of(e), e.hint)
    _flash(request, "u.granted", name=u["name"])
    return RedirectResponse(f"/users/{u['name']}", status_code=303)


@pages_router.post("/users/{name}/grant")
def user_grant(request: Request, name: str, fonds: str = Form(""), csrf: str = Form("")):
    return _grant_page(request, name, fonds, csrf, False)


@pages_router.post("/users/{name}/revoke")
def user_revoke(request: Request, name: str, fonds: str = Form(""), csrf: str = Form("")):
    return _grant_page(request, name, fonds, csrf, True)


@pages_router.post("/users/{name}/token")
def user_token(request: Request, name: str, label: str = Form(""), csrf: str = Form("")):
    """The new token is shown in this response only (never stored in the session, never shown again)."""
    admin = security.require(request, ACTION)
    security.check_csrf(request, csrf)
    store = store_of(request, admin)
    u = existing(store, name)
    token = store.create_token(u["name"], label)
    resp = _user_page(request, u, token=token)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@pages_router.post("/users/{name}/tokens/revoke")
def user_tokens_revoke(request: Request, name: str, csrf: str = Form("")):
    admin = security.require(request, ACTION)
    security.check_csrf(request, csrf)
    store = store_of(request, admin)
    u = existing(store, name)
    count = store.revoke_tokens(u["name"])
    _flash(request, "u.tokens_revoked", name=u["name"], count=count)
    return RedirectResponse(f"/users/{u['name']}", status_code=303)


# ---- JSON API ----------------------------------------------------------------------------------------------------
NEW_USER_EXAMPLE = {"name": "nguyenvana", "role": "reader", "full_name": "Nguyễn Văn A", "fonds": ["F01"],
                    "password": "mot cum tu du dai"}


@api_router.get("/users")
def api_users(request: Request, user: Caller) -> dict[str, Any]:
    """Every user: name, full_name, role, disabled, fonds, can_sign_in, created, updated (administrators)."""
    security.require(request, ACTION)
    return {"users": request.app.state.repo.users().list()}


@api_router.get("/users/{name}")
def api_user_show(request: Request, name: str, user: Caller) -> dict[str, Any]:
    """One user (administrators)."""
    admin = security.require(request, ACTION)
    return existing(store_of(request, admin), name)


@api_router.post("/users", status_code=201)
def api_users_add(request: Request, user: Caller,
                  body: Annotated[dict[str, Any], Body(examples=[NEW_USER_EXAMPLE])]) -> Any:
    """Add a user: {name, role, full_name, fonds (list or comma-separated), password (at least 10 characters;
    without it the account cannot sign in yet)}. 400 {"error", "hint"} for a bad name, a duplicate, a short
    password or an unknown role."""
    admin = security.require(request, ACTION)
    password = body.get("password")
    return store_of(request, admin).add(str(body.get("name") or ""), str(body.get("role") or "reader"),
                                        full_name=str(body.get("full_name") or ""),
                                        fonds=fonds_list(body.get("fonds")),
                                        password=None if password is None else str(password))


@api_router.post("/users/{name}/disable")
def api_user_disable(request: Request, name: str, user: Caller) -> dict[str, Any]:
    """Disable an account (not one's own): it can no longer sign in or use its tokens."""
    admin = security.require(request, ACTION)
    return set_state(store_of(request, admin), admin, name, True)


@api_router.post("/users/{name}/enable")
def api_user_enable(request: Request, name: str, user: Caller) -> dict[str, Any]:
    """Enable a disabled account again."""
    admin = security.require(request, ACTION)
    return set_state(store_of(request, admin), admin, name, False)


router.include_router(pages_router)
router.include_router(api_router)
