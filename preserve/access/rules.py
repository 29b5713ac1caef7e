"""The access rules as pure functions: a record's access class, and whether a user may ask for it, approve a
request for it, or receive the copy. docs/access.md has them as a table; tests/access/test_rules.py tests every
cell. Nothing here reads or writes the catalog.

Classes, from the dossier's and the document's mode (Chế độ sử dụng) and the document's secrecy (Độ mật); the
most restrictive one wins:
- open (mode 01 Công khai): a request is approved automatically;
- conditional (mode 02 Sử dụng có điều kiện): an archivist must approve, with a reason;
- secret (mode 03 Mật, or secrecy 01 Mật / 02 Tối mật): the requester needs a grant for the fonds, an archivist
  must approve with a reason, and the copy carries the strong watermark;
- closed (secrecy 03 Tuyệt mật, never digitised under HD 40-HD/VPTW): no copy, whoever asks.
A missing or unknown mode counts as conditional: nothing opens by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from ..findings import Finding, bilingual

OPEN, CONDITIONAL, SECRET, CLOSED = "open", "conditional", "secret", "closed"
LEVELS = (OPEN, CONDITIONAL, SECRET, CLOSED)  # least to most restrictive
LEVEL_TEXT = {
    OPEN: bilingual("Công khai", "open"),
    CONDITIONAL: bilingual("Sử dụng có điều kiện", "conditional use"),
    SECRET: bilingual("Mật", "secret"),
    CLOSED: bilingual("Tuyệt mật (không số hóa)", "top secret (never digitised)"),
}
_MODE = {"01": OPEN, "02": CONDITIONAL, "03": SECRET}
_SECRECY = {"01": SECRET, "02": SECRET, "03": CLOSED}

ROLES = ("admin", "archivist", "auditor", "reader")
# What each role may do (the web app shows only these; the CLI and the façade refuse the rest).
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({"ingest", "request", "approve", "make", "audit", "report", "read", "manage-users"}),
    "archivist": frozenset({"ingest", "request", "approve", "make", "read"}),
    "auditor": frozenset({"audit", "report", "read"}),
    "reader": frozenset({"request"}),
}
ACTION_TEXT = {
    "request": bilingual("yêu cầu bản sao", "request copies"),
    "approve": bilingual("duyệt hoặc từ chối yêu cầu", "approve or deny requests"),
    "make": bilingual("tạo bản sao", "make access copies"),
}


@dataclass(frozen=True)
class User:
    name: str
    role: str
    full_name: str = ""
    disabled: bool = False
    grants: frozenset[str] = field(default_factory=frozenset)  # fonds codes

    def may(self, action: str) -> bool:
        return not self.disabled and action in PERMISSIONS.get(self.role, frozenset())

    @property
    def display(self) -> str:
        return f"{self.full_name} ({self.name})" if self.full_name else self.name


@dataclass(frozen=True)
class Record:
    """What a request asks for: one document, or a whole dossier."""

    kind: str            # "document" | "dossier"
    code: str            # docCode or fileCode
    file_code: str
    fonds: str
    level: str


def level_of(mode: Any = None, secrecy: Any = None) -> str:
    """The class of one dossier or document row from its mode and secrecy codes."""
    levels = [_MODE.get(str(mode).strip(), CONDITIONAL) if mode not in (None, "") else OPEN]
    if secrecy not in (None, ""):
        levels.append(_SECRECY.get(str(secrecy).strip(), SECRET))
    return most_restrictive(levels)


def most_restrictive(levels: Iterable[str]) -> str:
    return max(levels, key=LEVELS.index, default=CONDITIONAL)


def record_level(dossier_mode: Any, documents: Iterable[tuple[Any, Any]]) -> str:
    """The class of a dossier, or of one of its documents (pass just that one): the dossier's own mode (required
    by the profile; missing counts as conditional) and each document's mode and secrecy."""
    dossier = _MODE.get(str(dossier_mode or "").strip(), CONDITIONAL)
    return most_restrictive([dossier, *(level_of(m, s) for m, s in documents)])


def _finding(code: str, record: Record | None, **params: Any) -> Finding:
    if record is not None:
        params = {"target": record.code, "fileCode": record.file_code, "fonds": record.fonds,
                  "level": LEVEL_TEXT[record.level], **params}
    return Finding(code, record.code if record else "", params)


def _common(user: User, action: str, record: Record | None) -> Finding | None:
    if user.disabled:
        return _finding("E-ACC-USER-DISABLED", record, user=user.name)
    if not user.may(action):
        return _finding("E-ACC-ROLE", record, user=user.name, role=user.role, action=ACTION_TEXT[action])
    if record is not None and user.role != "admin" and user.grants and record.fonds not in user.grants:
        return _finding("E-ACC-FONDS-SCOPE", record, user=user.name, granted=", ".join(sorted(user.grants)))
    return None


@dataclass(frozen=True)
class Decision:
    status: str                       # approved | pending | refused
    finding: Finding | None = None    # why, when refused

    @property
    def refused(self) -> bool:
        return self.status == "refused"


def decide_request(user: User, record: Record) -> Decision:
    """What happens to a request as it is made. Also re-checked at approval and when the copy is made, since
    grants, accounts and records change."""
    problem = _common(user, "request", record)
    if problem is None and record.level == CLOSED:
        problem = _finding("E-ACC-CLOSED", record)
    if problem is None and record.level == SECRET and user.role != "admin" and record.fonds not in user.grants:
        problem = _finding("E-ACC-SECRET-GRANT", record, user=user.name)
    if problem is not None:
        return Decision("refused", problem)
    return Decision("approved" if record.level == OPEN else "pending")


def check_decider(decider: User, requester_name: str, record: Record, status: str, expired: bool) -> Finding | None:
    """Whether `decider` may approve or deny a request now."""
    problem = _common(decider, "approve", record)
    if problem is not None:
        return problem
    if decider.name == requester_name:
        return _finding("E-ACC-SELF-APPROVAL", record, user=decider.name)
    if status != "pending":
        return _finding("E-ACC-NOT-PENDING", record, status=status)
    if expired:
        return _finding("E-ACC-EXPIRED", record)
    return None


def check_maker(maker: User | None, requester: User, record: Record, status: str, expired: bool) -> Finding | None:
    """Whether the copy may be made now: the request approved and not expired, the requester still allowed (the
    record's class is re-read from the catalog), and the maker, when named, an archivist or the requester."""
    if status != "approved":
        return _finding("E-ACC-NOT-APPROVED", record, status=status)
    if expired:
        return _finding("E-ACC-EXPIRED", record)
    again = decide_request(requester, record)
    if again.refused:
        return again.finding
    if maker is not None and maker.name != requester.name:
        return _common(maker, "make", record)
    return None


def is_expired(expires: str, now: str) -> bool:
    return datetime.fromisoformat(now) >= datetime.fromisoformat(expires)
