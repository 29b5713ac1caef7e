"""The events access writes into the catalog's hash-chained log, and the agents they name."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session

from ..aip.model import SOFTWARE_AGENT, Event
from ..catalog import chain
from ..catalog.models import AgentRecord

REQUEST, REFUSAL, APPROVAL, DENIAL, DISSEMINATION, USER_ADMIN = (
    "access request", "access refusal", "access approval", "access denial", "dissemination", "user administration")
ACCESS_EVENT_TYPES = (REQUEST, REFUSAL, APPROVAL, DENIAL, DISSEMINATION, USER_ADMIN)


def user_agent(name: str) -> str:
    return f"agent-user-{name}"


def officer_agent(officer: str) -> str:
    """The person at the terminal (an OS account), for changes made from the CLI without a named user."""
    return f"agent-officer-{officer}"


def upsert_person(s: Session, agent_id: str, name: str, note: str | None = None) -> None:
    row = s.get(AgentRecord, agent_id)
    if row is None:
        s.add(AgentRecord(id=agent_id, name=chain.nfc(name), type="person", note=chain.nfc(note)))
    elif row.name != name or row.note != note:
        row.name, row.note = chain.nfc(name), chain.nfc(note)
        s.add(row)
    s.flush()


def record(s: Session, type_: str, when: str, outcome: str, detail: str, agents: list[tuple[str, str]],
           objects: list[str], aip_id: str | None = None) -> Event:
    """Append one event to the chain in the caller's transaction (which also holds the change it records)."""
    ev = Event(f"uuid-{uuid.uuid4()}", type_, when, outcome, detail, [*agents, SOFTWARE_AGENT], objects)
    chain.append(s, chain.lock_head(s), [ev], aip_id)
    return ev


def params_text(params: dict[str, Any], lang: str) -> dict[str, Any]:
    return {k: (v.get(lang, "") if isinstance(v, dict) else v) for k, v in params.items()}
