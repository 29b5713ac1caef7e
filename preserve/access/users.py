"""User accounts: names, roles, argon2id password hashes, fonds grants. Every change is a `user administration`
event naming who made it. The web app signs users in with `authenticate`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete
from sqlmodel import select

from ..catalog import chain
from ..catalog.db import read_session, write_session
from ..catalog.models import ApiToken, UserAccount, UserGrant
from ..errors import UsageError
from . import events
from .rules import ROLES, User

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
MIN_PASSWORD = 10
_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory parameters (64 MiB, 3 passes)


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"Mật khẩu quá ngắn / The password is too short ({len(password)} characters).",
                         hint=f"Use at least {MIN_PASSWORD} characters; a phrase of several words is easiest.")
    return password


@dataclass
class Users:
    """The user store over the catalog's engine. `actor` is the agent id of whoever makes changes."""

    engine: Any
    now: Callable[[], str]
    actor: str

    # --- reads ------------------------------------------------------------------------------------------
    def get(self, name: str) -> User | None:
        name = normal_name(name)
        with read_session(self.engine) as s:
            row = s.get(UserAccount, name)
            if row is None:
                return None
            return _user(row, self._grants(s, [name]).get(name, ()))

    def require(self, name: str) -> User:
        user = self.get(name)
        if user is None:
            raise UsageError(f"Không có người dùng / No user named '{name}'.",
                             hint="List users with `preserve users list`, or add one with `preserve users add`.")
        return user

    def list(self) -> list[dict[str, Any]]:
        with read_session(self.engine) as s:
            rows = s.exec(select(UserAccount).order_by(UserAccount.name)).all()
            grants = self._grants(s, [r.name for r in rows])
            return [_public(r, grants.get(r.name, ())) for r in rows]

    def show(self, name: str) -> dict[str, Any]:
        name = self.require(name).name
        with read_session(self.engine) as s:
            return _public(s.get(UserAccount, name), self._grants(s, [name]).get(name, ()))

    def authenticate(self, name: str, password: str) -> User | None:
        """The user, when the account exists, is enabled and the password matches; else None (one answer for
        all three, so a sign-in page reveals nothing). A hash made with older parameters is upgraded."""
        name = normal_name(name)
        with read_session(self.engine) as s:
            row = s.get(UserAccount, name)
            stored = row.password_hash if row is not None and not row.disabled else None
        if stored is None:
            _hasher.hash(password)  # the same work whether or not the account exists
            return None
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if _hasher.check_needs_rehash(stored):
            with write_session(self.engine) as s:
                row = s.get(UserAccount, name)
                row.password_hash = _hasher.hash(password)
                s.add(row)
        return self.get(name)

    def create_token(self, name: str, label: str = "") -> str:
        """A new API token for `name` (shown once: only its SHA-256 is kept), recorded as an event."""
        import secrets

        user = self.require(name)
        token = "pst_" + secrets.token_urlsafe(32)
        when = self.now()
        with write_session(self.engine) as s:
            s.add(ApiToken(user_name=user.name, token_sha256=_sha256(token), label=label.strip(), created=when))
            self._event(s, when, f"API token made for {user.name}" + (f" ({label.strip()})" if label.strip() else ""),
                        user.name)
        return token

    def revoke_tokens(self, name: str) -> int:
        user = self.require(name)
        with write_session(self.engine) as s:
            rows = s.exec(select(ApiToken).where(ApiToken.user_name == user.name, ApiToken.revoked == False)).all()  # noqa: E712
            for row in rows:
                row.revoked = True
                s.add(row)
            if rows:
                self._event(s, self.now(), f"{len(rows)} API token(s) of {user.name} revoked", user.name)
        return len(rows)

    def token_user(self, token: str) -> User | None:
        """The enabled user an API token belongs to, or None (unknown, revoked, or the account disabled)."""
        if not token or not token.startswith("pst_"):
            return None
        with read_session(self.engine) as s:
            row = s.exec(select(ApiToken).where(ApiToken.token_sha256 == _sha256(token))).first()
            name = row.user_name if row is not None and not row.revoked else None
        user = self.get(name) if name else None
        return user if user is not None and not user.disabled else None

    @staticmethod
    def _grants(s, names: Iterable[str]) -> dict[str, list[str]]:
        names = list(names)
        out: dict[str, list[str]] = {}
        if not names:
            return out
        for g in s.exec(select(UserGrant).where(UserGrant.user_name.in_(names))  # type: ignore[attr-defined]
                        .order_by(UserGrant.fonds_code)):
            out.setdefault(g.user_name, []).append(g.fonds_code)
        return out

    # --- writes -----------------------------------------------------------------------------------------
    def add(self, name: str, role: str, *, full_name: str = "", fonds: Iterable[str] = (),
            password: str | None = None) -> dict[str, Any]:
        name = normal_name(name)
        if not NAME_RE.match(name):
            raise UsageError(f"Tên đăng nhập không hợp lệ / '{name}' is not a valid user name.",
                             hint="Use 2–63 lower-case letters without diacritics, digits, '.', '_' or '-', "
                                  "starting with a letter or digit (e.g. nguyenvana).")
        if role not in ROLES:
            raise UsageError(f"Vai trò không hợp lệ / Unknown role '{role}'.", hint=f"One of: {', '.join(ROLES)}.")
        hashed = _hasher.hash(check_password(password)) if password is not None else None
        codes = _fonds(fonds)
        when = self.now()
        with write_session(self.engine) as s:
            if s.get(UserAccount, name) is not None:
                raise UsageError(f"Người dùng đã tồn tại / The user '{name}' already exists.",
                                 hint="Change it with `preserve users grant`, `passwd` or `disable`.")
            s.add(UserAccount(name=name, full_name=chain.nfc(full_name.strip()), role=role, password_hash=hashed,
                              created=when, updated=when))
            s.flush()
            for code in codes:
                s.add(UserGrant(user_name=name, fonds_code=code, granted_at=when, granted_by=self.actor))
            events.upsert_person(s, events.user_agent(name), full_name or name, role)
            self._event(s, when, f"user {name} added with the role {role}"
                        + (f", fonds {', '.join(codes)}" if codes else "")
                        + ("" if hashed else "; no password yet (cannot sign in)"), name)
        return self.show(name)

    def set_password(self, name: str, password: str) -> None:
        name = normal_name(name)
        hashed = _hasher.hash(check_password(password))
        self._update(name, "password changed", password_hash=hashed)

    def set_disabled(self, name: str, disabled: bool) -> dict[str, Any]:
        self._update(name, "account disabled" if disabled else "account enabled", disabled=disabled)
        return self.show(name)

    def set_role(self, name: str, role: str) -> dict[str, Any]:
        if role not in ROLES:
            raise UsageError(f"Vai trò không hợp lệ / Unknown role '{role}'.", hint=f"One of: {', '.join(ROLES)}.")
        self._update(name, f"role set to {role}", role=role)
        return self.show(name)

    def grant(self, name: str, fonds: Iterable[str], revoke: bool = False) -> dict[str, Any]:
        codes = _fonds(fonds)
        if not codes:
            raise UsageError("Chưa nêu phông / No fonds given.", hint="Name one or more with --fonds CODE.")
        name = self.require(name).name
        when = self.now()
        with write_session(self.engine) as s:
            held = set(self._grants(s, [name]).get(name, ()))
            if revoke:
                s.exec(delete(UserGrant).where(UserGrant.user_name == name,
                                               UserGrant.fonds_code.in_(codes)))  # type: ignore[attr-defined]
                changed = [c for c in codes if c in held]
            else:
                changed = [c for c in codes if c not in held]
                for code in changed:
                    s.add(UserGrant(user_name=name, fonds_code=code, granted_at=when, granted_by=self.actor))
            if changed:
                self._event(s, when, f"{'revoked' if revoke else 'granted'} fonds {', '.join(changed)} "
                                     f"{'from' if revoke else 'to'} user {name}", name)
        return self.show(name)

    def _update(self, name: str, what: str, **values: Any) -> None:
        name = normal_name(name)
        when = self.now()
        with write_session(self.engine) as s:
            row = s.get(UserAccount, name)
            if row is None:
                raise UsageError(f"Không có người dùng / No user named '{name}'.",
                                 hint="List users with `preserve users list`.")
            for key, value in values.items():
                setattr(row, key, value)
            row.updated = when
            s.add(row)
            if "role" in values:
                events.upsert_person(s, events.user_agent(name), row.full_name or name, row.role)
            self._event(s, when, f"user {name}: {what}", name)

    def _event(self, s, when: str, detail: str, name: str) -> None:
        events.record(s, events.USER_ADMIN, when, "success", detail,
                      [(self.actor, "implementer"), (events.user_agent(name), "subject")], [f"user:{name}"])


def normal_name(name: str) -> str:
    """Sign-in names are compared case-insensitively: stored and looked up in lower case."""
    return (name or "").strip().lower()


def _fonds(codes: Iterable[str]) -> list[str]:
    return sorted({chain.nfc(c.strip()) for c in codes if c and c.strip()})


def _user(row: UserAccount, grants: Iterable[str]) -> User:
    return User(row.name, row.role, row.full_name, bool(row.disabled), frozenset(grants))


def _public(row: UserAccount, grants: Iterable[str]) -> dict[str, Any]:
    return {"name": row.name, "full_name": row.full_name, "role": row.role, "disabled": bool(row.disabled),
            "fonds": list(grants), "can_sign_in": bool(row.password_hash) and not row.disabled,
            "created": row.created, "updated": row.updated}
