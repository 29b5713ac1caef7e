"""The access log: the events of requests, refusals, approvals, denials, copies made and user administration,
read from the catalog's chain (so the log is as tamper-evident as the chain: `preserve events verify`)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlmodel import select

from ..catalog.db import read_session
from ..catalog.models import EventRecord
from ..errors import UsageError
from .events import ACCESS_EVENT_TYPES, user_agent
from .users import normal_name


def parse_since(text: str | None, tz: str) -> str | None:
    """yyyy-mm-dd, dd/mm/yyyy or a full ISO 8601 time → the ISO time it starts (in the repository's zone)."""
    if not text:
        return None
    text = text.strip()
    for form in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, form).date().isoformat() + "T00:00:00" + tz
        except ValueError:
            pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text!r} is not a date.", hint="Write it as 2026-12-01 or 01/12/2026.") from None
    return when.isoformat(timespec="seconds") if when.tzinfo else when.isoformat(timespec="seconds") + tz


def access_log(engine, user: str | None = None, since: str | None = None, limit: int | None = None
               ) -> list[dict[str, Any]]:
    """Access events, oldest first; of one user (as requester, decider, maker or subject) and/or since a time."""
    with read_session(engine) as s:
        q = select(EventRecord).where(EventRecord.type.in_(ACCESS_EVENT_TYPES))  # type: ignore[attr-defined]
        if user:
            agent = json.dumps(user_agent(normal_name(user)))  # with its quotes: "doc1" must not match "doc10"
            q = q.where(EventRecord.agents.contains(agent, autoescape=True))  # type: ignore[attr-defined]
        rows = list(s.exec(q.order_by(EventRecord.seq)))
    out = []
    cutoff = datetime.fromisoformat(since) if since else None
    for r in rows:
        if cutoff is not None and datetime.fromisoformat(r.datetime) < cutoff:
            continue
        objects = json.loads(r.objects)
        request = next((o.removeprefix("request:") for o in objects if o.startswith("request:")), None)
        agents = json.loads(r.agents)
        out.append({"seq": r.seq, "datetime": r.datetime, "type": r.type, "outcome": r.outcome, "request": request,
                    "aip": r.aip_id, "users": [a.removeprefix("agent-user-") for a, _ in agents
                                               if a.startswith("agent-user-")],
                    "agents": agents, "detail": r.detail})
    return out[-limit:] if limit else out

