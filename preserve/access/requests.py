"""Requests for access copies: made by a user for one document or a whole dossier, decided by the rules
(approved automatically, pending an archivist, or refused with the reason), approved or denied by an archivist,
and expiring after a number of days. Each change and each refused attempt is an event, written in the same
transaction as the change."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlmodel import select

from ..catalog import chain
from ..catalog.db import read_session, write_session
from ..catalog.models import (REQUEST_APPROVED, REQUEST_DENIED, REQUEST_PENDING, REQUEST_REFUSED, AccessRequest,
                              AipRecord, Document, Dossier)
from ..errors import PreserveError, UsageError
from ..findings import Finding
from . import events
from .rules import CONDITIONAL, LEVEL_TEXT, Record, User, check_decider, decide_request, is_expired, record_level
from .users import Users, normal_name

EXPIRED = "expired"


class AccessRefused(PreserveError):
    """A request, approval, denial or copy the rules refuse: exit 1, with the finding (already logged)."""

    exit_code = 1

    def __init__(self, finding: Finding, request: dict[str, Any] | None = None):
        hints = [h for h in (finding.hint("vi"), finding.hint("en")) if h]
        super().__init__(f"{finding.code}: {finding.message_vi}\n  {finding.message_en}",
                         hint=" / ".join(hints) or None)
        self.finding = finding
        self.request = request


def reason_text(f: Finding) -> str:
    return f"{f.code}: {f.message_vi} / {f.message_en}"


@dataclass
class Requests:
    engine: Any
    users: Users
    now: Callable[[], str]
    default_days: int = 30
    max_days: int = 365

    # --- what a request is for --------------------------------------------------------------------------
    def resolve(self, doc: str | None = None, dossier: str | None = None) -> tuple[Record, dict[str, Any]]:
        """The record asked for, with its access class as the catalog has it now, and where it is kept."""
        if (doc is None) == (dossier is None):
            raise UsageError("Nêu đúng một trong --doc hoặc --dossier / Name exactly one of --doc or --dossier.",
                             hint="--doc DOCCODE asks for one document; --dossier FILECODE for the whole dossier.")
        with read_session(self.engine) as s:
            if doc is not None:
                d = s.get(Document, chain.nfc(doc.strip()))
                if d is None:
                    raise UsageError(f"Không có tài liệu / No document with code '{doc}'.",
                                     hint="Look it up with `preserve aips show AIP` (documents and their codes).")
                file_code, docs = d.file_code, [d]
            else:
                file_code = chain.nfc(dossier.strip())
                docs = list(s.exec(select(Document).where(Document.file_code == file_code)
                                   .order_by(Document.doc_ordinal)))
            ds = s.get(Dossier, file_code)
            if ds is None:
                raise UsageError(f"Không có hồ sơ / No dossier with code '{file_code}'.",
                                 hint="List the dossiers with `preserve aips list`.")
            aip = s.get(AipRecord, ds.aip_id)
            level = record_level(ds.mode, [(d.mode, d.secrecy) for d in docs])
            kind, code = ("document", docs[0].doc_code) if doc is not None else ("dossier", file_code)
            where = {"aip_id": aip.id, "aip_version": aip.version, "title": ds.title,
                     "documents": [{"docCode": d.doc_code, "subject": d.subject, "file": d.file} for d in docs]}
            return Record(kind, code, file_code, ds.fonds_code, level), where

    def resolve_row(self, row: AccessRequest) -> tuple[Record, dict[str, Any]]:
        """What an existing request is for, as the catalog has it now."""
        if row.target_kind == "dossier":
            return self.resolve(dossier=row.target_code)
        return self.resolve(doc=row.target_code)

    # --- making and deciding ----------------------------------------------------------------------------
    def request(self, user_name: str, purpose: str, *, doc: str | None = None, dossier: str | None = None,
                days: int | None = None) -> dict[str, Any]:
        """A new request, decided at once by the rules: {"id", "status", "reason"} (refused ones are kept too)."""
        purpose = chain.nfc((purpose or "").strip())
        if len(purpose) < 3:
            raise UsageError("Chưa nêu mục đích khai thác / The purpose of the request is missing or too short.",
                             hint='Say what the copy is for, e.g. --purpose "Nghiên cứu lịch sử Đảng bộ tỉnh".')
        days = self.default_days if days is None else days
        if not 1 <= days <= self.max_days:
            raise UsageError(f"--days {days}: phải từ 1 đến {self.max_days} / must be 1 to {self.max_days}.",
                             hint="The longest validity is [access] max_days in preserve.toml.")
        user = self.users.require(user_name)
        record, where = self.resolve(doc, dossier)
        decision = decide_request(user, record)
        when = self.now()
        row = AccessRequest(id="", user_name=user.name, target_kind=record.kind, target_code=record.code,
                            file_code=record.file_code, fonds_code=record.fonds, aip_id=where["aip_id"],
                            aip_version=where["aip_version"], level=record.level, purpose=purpose,
                            status=decision.status, created=when, days=days, expires=_plus_days(when, days))
        if decision.refused:
            f = decision.finding
            row.reason_code, row.reason_vi, row.reason_en = f.code, f.message_vi, f.message_en
        elif decision.status == REQUEST_APPROVED:
            row.decided_by, row.decided_at = "rules", when
            row.decision_reason = "Công khai: duyệt tự động / open record: approved automatically"
        with write_session(self.engine) as s:
            row.id = _new_id(s, when)
            s.add(row)
            s.flush()
            events.upsert_person(s, events.user_agent(user.name), user.full_name or user.name, user.role)
            kind = events.REFUSAL if decision.refused else events.REQUEST
            outcome = {"approved": "success", "pending": "pending", "refused": "failure"}[decision.status]
            detail = (f"request {row.id} by {user.name} for {record.kind} {record.code} ({record.level}), "
                      f"purpose: {purpose}; {decision.status}"
                      + (f": {reason_text(decision.finding)}" if decision.refused else ""))
            events.record(s, kind, when, outcome, detail, [(events.user_agent(user.name), "requester")],
                          [row.aip_id, f"request:{row.id}", record.code], row.aip_id)
        return {"id": row.id, "status": row.status, "reason": self._reason(row)}

    def approve(self, request_id: str, by: str, reason: str | None) -> dict[str, Any]:
        return self._decide(request_id, by, reason, approve=True)

    def deny(self, request_id: str, by: str, reason: str | None) -> dict[str, Any]:
        return self._decide(request_id, by, reason, approve=False)

    def _decide(self, request_id: str, by: str, reason: str | None, approve: bool) -> dict[str, Any]:
        reason = chain.nfc((reason or "").strip())
        decider = self.users.require(by)
        row = self._row(request_id)
        record, _ = self.resolve_row(row)
        if not reason and approve and record.level == CONDITIONAL:  # "an archivist must approve, with a reason"
            raise UsageError("Cần nêu lý do duyệt / A reason is required to approve a record of conditional use.",
                             hint='Add --reason "…": it is kept with the decision and shown to the reader.')
        reason = reason or ("Duyệt (không nêu lý do) / approved (no reason given)" if approve else
                            "Không duyệt (không nêu lý do) / denied (no reason given)")
        when = self.now()
        problem = check_decider(decider, row.user_name, record, row.status, is_expired(row.expires, when))
        if problem is None and approve:
            again = decide_request(self.users.require(row.user_name), record)  # grants or account changed since
            problem = again.finding if again.refused else None
        if problem is not None:
            self.log_refusal(decider, row, "approve" if approve else "deny", problem)
            raise AccessRefused(problem, self.get(request_id))
        with write_session(self.engine) as s:
            live = s.get(AccessRequest, row.id)
            if live.status != REQUEST_PENDING:  # decided by someone else meanwhile
                raise UsageError(f"Yêu cầu {row.id} vừa được quyết định / was just decided ({live.status}).",
                                 hint=f"See it with `preserve access show {row.id}`.")
            live.status = REQUEST_APPROVED if approve else REQUEST_DENIED
            live.decided_by, live.decided_at, live.decision_reason = decider.name, when, reason
            live.level = record.level
            if approve:
                live.expires = _plus_days(when, live.days)  # the copy may be made for `days` after approval
            s.add(live)
            events.upsert_person(s, events.user_agent(decider.name), decider.full_name or decider.name, decider.role)
            events.record(s, events.APPROVAL if approve else events.DENIAL, when, "success",
                          f"request {row.id} by {row.user_name} for {row.target_kind} {row.target_code} "
                          f"{'approved' if approve else 'denied'} by {decider.name}: {reason}",
                          [(events.user_agent(decider.name), "authorizer"),
                           (events.user_agent(row.user_name), "requester")],
                          [row.aip_id, f"request:{row.id}", row.target_code], row.aip_id)
        return self.get(request_id)

    def log_refusal(self, actor: User, row: AccessRequest, action: str, problem: Finding) -> None:
        """A refused attempt (approve, deny, make) on an existing request: an `access refusal` event."""
        with write_session(self.engine) as s:
            events.upsert_person(s, events.user_agent(actor.name), actor.full_name or actor.name, actor.role)
            agents = [(events.user_agent(actor.name), "requester" if actor.name == row.user_name else "implementer")]
            if actor.name != row.user_name:
                agents.append((events.user_agent(row.user_name), "requester"))
            events.record(s, events.REFUSAL, self.now(), "failure",
                          f"{action} of request {row.id} ({row.target_kind} {row.target_code}) by {actor.name} "
                          f"refused: {reason_text(problem)}", agents,
                          [row.aip_id, f"request:{row.id}", row.target_code], row.aip_id)

    # --- reads ------------------------------------------------------------------------------------------
    def _row(self, request_id: str) -> AccessRequest:
        with read_session(self.engine) as s:
            row = s.get(AccessRequest, request_id.strip().upper())
        if row is None:
            raise UsageError(f"Không có yêu cầu / No request with id '{request_id}'.",
                             hint="List requests with `preserve access list`.")
        return row

    def get(self, request_id: str) -> dict[str, Any]:
        return self._dict(self._row(request_id))

    def list(self, user: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        statuses = (REQUEST_PENDING, REQUEST_APPROVED, REQUEST_REFUSED, REQUEST_DENIED, EXPIRED)
        if status is not None and status not in statuses:
            raise UsageError(f"Trạng thái không hợp lệ / Unknown status '{status}'.",
                             hint=f"One of: {', '.join(statuses)}.")
        with read_session(self.engine) as s:
            q = select(AccessRequest)
            if user:
                q = q.where(AccessRequest.user_name == normal_name(user))
            rows = list(s.exec(q.order_by(AccessRequest.created, AccessRequest.id)))
        out = [self._dict(r) for r in rows]
        return [r for r in out if r["status"] == status] if status else out

    def status(self, row: AccessRequest) -> str:
        """The stored status, or expired when a pending or approved request has run past its date."""
        if row.status in (REQUEST_PENDING, REQUEST_APPROVED) and is_expired(row.expires, self.now()):
            return EXPIRED
        return row.status

    def _reason(self, row: AccessRequest) -> str:
        if row.status == REQUEST_REFUSED:
            return f"{row.reason_code}: {row.reason_vi} / {row.reason_en}"
        if row.status == REQUEST_PENDING:
            return (f"Chờ lưu trữ viên duyệt (tài liệu {LEVEL_TEXT[row.level]['vi']}) / "
                    f"waiting for an archivist's approval ({LEVEL_TEXT[row.level]['en']} record)")
        return row.decision_reason or ""

    def _dict(self, row: AccessRequest) -> dict[str, Any]:
        return {"id": row.id, "status": self.status(row), "reason": self._reason(row), "user": row.user_name,
                "target": {"kind": row.target_kind, "code": row.target_code}, "fileCode": row.file_code,
                "fonds": row.fonds_code, "aip": row.aip_id, "aipVersion": row.aip_version, "level": row.level,
                "purpose": row.purpose, "created": row.created, "days": row.days, "expires": row.expires,
                "decidedBy": row.decided_by, "decidedAt": row.decided_at, "decisionReason": row.decision_reason,
                "refusalCode": row.reason_code, "copies": row.copies}

    def row(self, request_id: str) -> AccessRequest:
        return self._row(request_id)


def _plus_days(when: str, days: int) -> str:
    return (datetime.fromisoformat(when) + timedelta(days=days)).isoformat(timespec="seconds")


def _new_id(s, when: str) -> str:
    """YC-yyyymmdd-XXXXXX (YC: yêu cầu), unique in the table."""
    day = when[:10].replace("-", "")
    while True:
        rid = f"YC-{day}-{secrets.token_hex(3).upper()}"
        if s.get(AccessRequest, rid) is None:
            return rid
