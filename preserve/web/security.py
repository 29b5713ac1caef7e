"""Who is asking, and may they: signed session cookies, API tokens, CSRF tokens on every form, and a limit on
failed sign-ins. Roles and their actions are those of the CLI (preserve.access.rules.PERMISSIONS)."""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from collections import deque
from pathlib import Path

from fastapi import HTTPException, Request

from ..access.rules import User

SESSION_COOKIE = "preserve_session"
SESSION_HOURS = 8
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


def session_secret(keys_dir: Path) -> str:
    """The key that signs session cookies: keys/web-session-secret, made on first use (mode 600). Removing it
    signs everyone out."""
    path = Path(keys_dir) / "web-session-secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


class SignInLimiter:
    """At most `limit` failed sign-ins per `window` seconds for one client address and for one user name;
    beyond that, sign-in is refused (HTTP 429) until the oldest failure leaves the window."""

    def __init__(self, limit: int = 5, window: float = 300.0):
        self.limit, self.window = limit, window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and now - q[0] > self.window:
            q.popleft()
        return q

    def wait(self, *keys: str) -> int:
        """Seconds until a sign-in may be tried again (0: now)."""
        now = time.monotonic()
        with self._lock:
            waits = [self.window - (now - q[0]) for q in (self._recent(k, now) for k in keys) if len(q) >= self.limit]
        return int(max(waits)) + 1 if waits else 0

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for k in keys:
                self._recent(k, now).append(now)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._failures.pop(k, None)


def csrf_token(request: Request) -> str:
    token = request.session.get(CSRF_FIELD)
    if not token:
        token = request.session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    """A form (or an API call made with the session cookie) must carry the session's CSRF token."""
    expected = request.session.get(CSRF_FIELD)
    if not expected or not submitted or not hmac.compare_digest(str(expected), str(submitted)):
        raise HTTPException(status_code=403, detail="csrf")


def bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def current_user(request: Request) -> User | None:
    """The signed-in user (session cookie) or the API token's user; None when neither, or the account was
    disabled since."""
    cached = getattr(request.state, "user", False)
    if cached is not False:
        return cached
    users = request.app.state.repo.users()
    user = None
    token = bearer(request)
    if token:
        user = users.token_user(token)
        request.state.via_token = user is not None
    elif request.session.get("user"):
        user = users.get(request.session["user"])
        if user is None or user.disabled:
            request.session.clear()
            user = None
    request.state.user = user
    return user


def require_user(request: Request) -> User:
    user = current_user(request)
    if user is None:
        raise HTTPException(status_code=401, detail="sign in")
    return user


def require(request: Request, *actions: str) -> User:
    """The user, who must be allowed at least one of `actions` (403 otherwise, even when called directly)."""
    user = require_user(request)
    if actions and not any(user.may(a) for a in actions):
        raise HTTPException(status_code=403, detail="forbidden")
    return user


def may(user: User | None, *actions: str) -> bool:
    return user is not None and any(user.may(a) for a in actions)
