"""The hash-chained event log (DESIGN principle 4): a removed or edited event is detectable.

Each event row holds `prev_hash` (the previous event's hash; 64 zeros for the first) and
`hash = sha256(prev_hash + canonical JSON of the event's fields)`, where the fields are seq, id, aip, type,
datetime, outcome, detail, agents and objects, and canonical JSON is UTF-8, keys sorted, no spaces,
non-ASCII kept as is (text is NFC). `seq` runs 1, 2, 3, … without gaps: it is taken from `chain_head`, not from
a database sequence.

Appends happen inside the caller's write transaction, after locking the one-row `chain_head` table
(SELECT … FOR UPDATE; on SQLite the transaction already holds the write lock from BEGIN IMMEDIATE), so that
concurrent writers extend the chain one after the other and the rows and the head commit or vanish together.

What the chain cannot prove on its own: someone with write access to the database can rewrite every hash
from the edit onward and the head too. Anchor the head elsewhere (e.g. in each AIP's PREMIS or a signed log
line) to close that gap.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable
from typing import Any

from sqlmodel import Session, select

from preserve.aip.model import Event
from preserve.errors import CatalogError

from .models import ZERO_HASH, ChainHead, EventRecord

HEAD_ID = 1
_VERIFY_BATCH = 1000


def nfc(value: Any) -> Any:
    """NFC for strings, recursively in lists, tuples and dicts; other values unchanged."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, (list, tuple)):
        return [nfc(v) for v in value]
    if isinstance(value, dict):
        return {nfc(k): nfc(v) for k, v in value.items()}
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def event_fields(seq: int, event_id: str, aip_id: str | None, type_: str, datetime: str, outcome: str,
                 detail: str, agents: list, objects: list) -> dict[str, Any]:
    """The fields the hash covers, in their stored form."""
    return {"seq": seq, "id": event_id, "aip": aip_id, "type": type_, "datetime": datetime,
            "outcome": outcome, "detail": detail, "agents": agents, "objects": objects}


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(fields)).encode("utf-8")).hexdigest()


def ensure_head(session: Session) -> None:
    """Create the chain_head row if missing (a new catalog)."""
    if session.get(ChainHead, HEAD_ID) is None:
        session.add(ChainHead(id=HEAD_ID, seq=0, hash=ZERO_HASH))
        session.flush()


def lock_head(session: Session) -> ChainHead:
    """Lock and return the chain head: call first in every transaction that appends events."""
    head = session.exec(select(ChainHead).where(ChainHead.id == HEAD_ID).with_for_update()
                        .execution_options(populate_existing=True)).first()
    if head is None:
        raise CatalogError("the catalog has no event chain head", hint="create the catalog tables (create_all)")
    return head


def append(session: Session, head: ChainHead, events: Iterable[Event], aip_id: str | None) -> list[EventRecord]:
    """Append events after `head` (locked by lock_head in this transaction) and move the head."""
    rows = []
    for ev in events:
        agents = nfc([[str(a), str(r)] for a, r in ev.agents])
        objects = nfc([str(o) for o in ev.objects])
        seq = head.seq + 1
        fields = event_fields(seq, nfc(ev.id), nfc(aip_id), nfc(ev.type), nfc(ev.datetime), nfc(ev.outcome),
                              nfc(ev.detail or ""), agents, objects)
        digest = event_hash(head.hash, fields)
        row = EventRecord(seq=seq, id=fields["id"], aip_id=fields["aip"], type=fields["type"],
                          datetime=fields["datetime"], outcome=fields["outcome"], detail=fields["detail"],
                          agents=canonical_json(agents), objects=canonical_json(objects),
                          prev_hash=head.hash, hash=digest)
        session.add(row)
        rows.append(row)
        head.seq, head.hash = seq, digest
    session.add(head)
    session.flush()
    return rows


def row_fields(row: EventRecord) -> dict[str, Any]:
    return event_fields(row.seq, row.id, row.aip_id, row.type, row.datetime, row.outcome, row.detail,
                        json.loads(row.agents), json.loads(row.objects))


def row_dict(row: EventRecord) -> dict[str, Any]:
    """An event as the Catalog API returns it."""
    return {"seq": row.seq, "id": row.id, "type": row.type, "datetime": row.datetime, "outcome": row.outcome,
            "detail": row.detail, "agents": [{"id": a, "role": r} for a, r in json.loads(row.agents)],
            "objects": json.loads(row.objects), "aip": row.aip_id, "hash": row.hash}


def verify(session: Session) -> list[str]:
    """Walk the chain in seq order; return the problems found (empty = intact). Read-only."""
    problems: list[str] = []
    prev_seq, prev_hash = 0, ZERO_HASH
    last = 0
    while True:
        rows = session.exec(select(EventRecord).where(EventRecord.seq > last)
                            .order_by(EventRecord.seq).limit(_VERIFY_BATCH)).all()
        if not rows:
            break
        for row in rows:
            if row.seq != prev_seq + 1:
                missing = (f"event seq {prev_seq + 1} is" if row.seq == prev_seq + 2 else
                           f"events seq {prev_seq + 1}..{row.seq - 1} are")
                problems.append(f"E-CHAIN-GAP: {missing} missing (removed) before event seq {row.seq} ({row.id})")
            if row.prev_hash != prev_hash:
                problems.append(f"E-CHAIN-BREAK: event seq {row.seq} ({row.id}) does not follow the previous "
                                f"event's hash: an event before it was removed or altered")
            try:
                expected = event_hash(row.prev_hash, row_fields(row))
            except (ValueError, TypeError) as exc:  # agents/objects no longer valid JSON
                expected = f"unreadable: {exc}"
            if row.hash != expected:
                problems.append(f"E-CHAIN-EDITED: event seq {row.seq} ({row.id}) was edited: its content no "
                                f"longer matches its hash")
            prev_seq, prev_hash = row.seq, row.hash
        last = rows[-1].seq
        session.expunge_all()
    head = session.get(ChainHead, HEAD_ID)
    if head is None:
        problems.append("E-CHAIN-HEAD: the chain head row is missing")
    elif (head.seq, head.hash) != (prev_seq, prev_hash):
        if head.seq > prev_seq:
            problems.append(f"E-CHAIN-TAIL: the chain head is at seq {head.seq} but the log ends at seq "
                            f"{prev_seq}: the last events were removed")
        else:
            problems.append(f"E-CHAIN-HEAD: the chain head (seq {head.seq}) does not match the last event "
                            f"(seq {prev_seq})")
    return problems
