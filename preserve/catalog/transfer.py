"""Moving catalog content that no AIP holds in and out of the catalog, for disaster recovery:

- the event log, exported in chain order by `Catalog.iter_events` (offsite.backup_eventlog) and imported back
  verbatim, every event's hash recomputed from its fields and its predecessor before it is accepted, so a
  rebuilt catalog continues the very chain the lost one had;
- the access tables (users with their argon2 hashes, fonds grants, access requests) and the agents (the people
  the access events name are in no AIP).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from . import chain
from .db import read_session, write_session
from .models import ZERO_HASH, AccessRequest, AgentRecord, ChainHead, EventRecord, UserAccount, UserGrant

# agents too: the people of the access events (users, officers) are in no AIP
ACCESS_TABLES = (("users", UserAccount), ("grants", UserGrant), ("requests", AccessRequest), ("agents", AgentRecord))
_FLUSH = 2000


def export_access(engine) -> dict[str, list[dict[str, Any]]]:
    with read_session(engine) as s:
        return {name: [row.model_dump() for row in s.exec(select(model))] for name, model in ACCESS_TABLES}


def import_access(engine, data: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Rows of an export into empty access tables (rows already there, by primary key, are kept as they are)."""
    counts = {}
    with write_session(engine) as s:
        for name, model in ACCESS_TABLES:
            n = 0
            for values in data.get(name, []):
                values = {k: v for k, v in values.items() if k in model.model_fields}
                if name == "grants":
                    values.pop("id", None)
                    exists = s.exec(select(UserGrant).where(UserGrant.user_name == values["user_name"],
                                                            UserGrant.fonds_code == values["fonds_code"])).first()
                else:
                    key = values["name"] if name == "users" else values["id"]  # requests, agents: by id
                    exists = s.get(model, key)
                if exists is None:
                    s.add(model(**values))
                    n += 1
            s.flush()
            counts[name] = n
    return counts


def chain_is_empty(engine) -> bool:
    with read_session(engine) as s:
        head = s.get(ChainHead, 1)
        return (head is None or head.seq == 0) and not s.exec(select(func.count()).select_from(EventRecord)).one()


def import_chain(engine, events: Iterable[dict[str, Any]]) -> tuple[int, list[str]]:
    """Append exported events (Catalog.iter_events dicts, chain order) to an EMPTY chain, each checked against
    its own hash. Import stops at the first event that does not verify (that event and everything after are
    left out, and said): (events imported, problems)."""
    if not chain_is_empty(engine):
        return 0, ["E-CHAIN-NOT-EMPTY: the catalog already holds events; an exported log is imported only into "
                   "an empty one"]
    problems: list[str] = []
    n = 0
    with write_session(engine) as s:
        head = chain.lock_head(s)
        prev_seq, prev_hash = 0, ZERO_HASH
        for ev in events:
            agents = [[a["id"], a["role"]] for a in ev.get("agents", [])]
            fields = chain.event_fields(ev["seq"], ev["id"], ev.get("aip"), ev["type"], ev["datetime"],
                                        ev["outcome"], ev.get("detail") or "", agents, ev.get("objects", []))
            if ev["seq"] != prev_seq + 1 or chain.event_hash(prev_hash, fields) != ev.get("hash"):
                problems.append(f"E-CHAIN-BREAK: exported event seq {ev['seq']} ({ev['id']}) does not verify "
                                f"against its hash and the event before it; the import stops at seq {prev_seq}")
                break
            s.add(EventRecord(seq=ev["seq"], id=fields["id"], aip_id=fields["aip"], type=fields["type"],
                              datetime=fields["datetime"], outcome=fields["outcome"], detail=fields["detail"],
                              agents=chain.canonical_json(fields["agents"]),
                              objects=chain.canonical_json(fields["objects"]), prev_hash=prev_hash,
                              hash=ev["hash"]))
            prev_seq, prev_hash = ev["seq"], ev["hash"]
            n += 1
            if n % _FLUSH == 0:
                s.flush()
                s.expunge_all()
                head = chain.lock_head(s)
        head.seq, head.hash = prev_seq, prev_hash
        s.add(head)
    return n, problems


def known_event_ids(engine, ids: Iterable[str]) -> set[str]:
    """Those of `ids` already in the chain."""
    wanted = sorted(set(ids))
    found: set[str] = set()
    with read_session(engine) as s:
        for i in range(0, len(wanted), 500):
            found.update(s.exec(select(EventRecord.id).where(EventRecord.id.in_(wanted[i:i + 500]))))  # type: ignore
    return found
