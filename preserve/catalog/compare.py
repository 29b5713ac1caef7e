"""Compare two catalogs, e.g. a rebuilt one with the one it replaces: counts, identifiers, digests, metadata,
replicas, events and the access tables. Every difference is listed, with where it is and both values.

Events the second catalog holds and the first does not (the restore, replication and audits that followed a
rebuild) are not differences: they are counted by type under `added_events`. Memory stays bounded by the
number of AIPs (their ids), not by files or events.
"""

from __future__ import annotations

from typing import Any, Iterator

from sqlmodel import select

from .db import read_session
from .models import AgentRecord, Fonds
from .transfer import export_access

_BATCH = 500
_EVENT_FIELDS = ("type", "datetime", "outcome", "detail", "agents", "objects", "aip")


def compare_catalogs(a, b, limit: int = 1000) -> dict[str, Any]:
    """What differs between catalog `a` (the reference) and catalog `b`; at most `limit` differences listed
    (all are counted)."""
    out: dict[str, Any] = {"counts": {"a": a.counts(), "b": b.counts()}, "differences": [], "total": 0,
                           "added_events": {}}

    def diff(where: str, va: Any, vb: Any) -> None:
        out["total"] += 1
        if len(out["differences"]) < limit:
            out["differences"].append({"where": where, "a": va, "b": vb})

    for key, va in out["counts"]["a"].items():
        if out["counts"]["b"].get(key) != va:
            diff(f"counts.{key}", va, out["counts"]["b"].get(key))
    _rows(a, b, Fonds, "code", "fonds", diff)
    _rows(a, b, AgentRecord, "id", "agent", diff)
    ids_a, ids_b = {x["id"] for x in a.list_aips()}, {x["id"] for x in b.list_aips()}
    for aid in sorted(ids_a - ids_b):
        diff(f"aip {aid}", "present", "absent")
    for aid in sorted(ids_b - ids_a):
        diff(f"aip {aid}", "absent", "present")
    for aid in sorted(ids_a & ids_b):
        _aip(aid, a.get_aip(aid), b.get_aip(aid), diff)
    _events(a, b, diff, out["added_events"])
    acc_a, acc_b = export_access(a.engine), export_access(b.engine)
    for table in ("users", "grants", "requests"):  # agents: compared above
        key = "id" if table != "users" else "name"
        ra = {_access_key(table, r, key): r for r in acc_a[table]}
        rb = {_access_key(table, r, key): r for r in acc_b[table]}
        for k in sorted(set(ra) | set(rb)):
            if table == "grants":
                if (k in ra) != (k in rb):
                    diff(f"{table} {k}", "present" if k in ra else "absent", "present" if k in rb else "absent")
            elif ra.get(k) != rb.get(k):
                diff(f"{table} {k}", ra.get(k), rb.get(k))
    out["equal"] = out["total"] == 0
    return out


def _access_key(table: str, row: dict[str, Any], key: str) -> str:
    return f"{row['user_name']}:{row['fonds_code']}" if table == "grants" else str(row[key])


def _rows(a, b, model, key: str, label: str, diff) -> None:
    def load(cat) -> dict[str, dict[str, Any]]:
        with read_session(cat.engine) as s:
            return {getattr(r, key): r.model_dump() for r in s.exec(select(model))}

    ra, rb = load(a), load(b)
    for k in sorted(set(ra) | set(rb)):
        if ra.get(k) != rb.get(k):
            diff(f"{label} {k}", ra.get(k), rb.get(k))


def _aip(aid: str, xa: dict[str, Any], xb: dict[str, Any], diff) -> None:
    skip = {"events", "replicas", "files"}
    for key in sorted((set(xa) | set(xb)) - skip):
        if xa.get(key) != xb.get(key):
            _deep(f"aip {aid}.{key}", xa.get(key), xb.get(key), diff)
    fa, fb = ({f["path"]: f for f in x["files"]} for x in (xa, xb))
    for path in sorted(set(fa) | set(fb)):
        if fa.get(path) != fb.get(path):
            _deep(f"aip {aid} file {path}", fa.get(path), fb.get(path), diff)
    ta, tb = ({r["tier"] for r in x["replicas"]} for x in (xa, xb))  # where it is held (the location's
    for tier in sorted(ta ^ tb):                                       # spelling differs by who wrote it)
        diff(f"aip {aid} replica {tier}", "present" if tier in ta else "absent", "present" if tier in tb else "absent")


def _deep(where: str, va: Any, vb: Any, diff) -> None:
    """Differences inside dicts and lists, down to the field."""
    if isinstance(va, dict) and isinstance(vb, dict):
        for k in sorted(set(va) | set(vb), key=str):
            if va.get(k) != vb.get(k):
                _deep(f"{where}.{k}", va.get(k), vb.get(k), diff)
    elif isinstance(va, list) and isinstance(vb, list) and len(va) == len(vb):
        for i, (x, y) in enumerate(zip(va, vb)):
            if x != y:
                _deep(f"{where}[{i}]", x, y, diff)
    else:
        diff(where, va, vb)


def _events(a, b, diff, added: dict[str, int]) -> None:
    """Every event of `a` must be in `b` with the same fields; b's others are counted as added."""
    for batch in _batches(a.iter_events()):
        found = _by_id(b, [e["id"] for e in batch])
        for ev in batch:
            other = found.get(ev["id"])
            if other is None:
                diff(f"event {ev['id']} ({ev['type']}, {ev['datetime']})", "present", "absent")
                continue
            for f in _EVENT_FIELDS:
                if ev.get(f) != other.get(f):
                    diff(f"event {ev['id']}.{f}", ev.get(f), other.get(f))
    for batch in _batches(b.iter_events()):
        known = _by_id(a, [e["id"] for e in batch])
        for ev in batch:
            if ev["id"] not in known:
                added[ev["type"]] = added.get(ev["type"], 0) + 1


def _batches(events: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for ev in events:
        batch.append(ev)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _by_id(cat, ids: list[str]) -> dict[str, dict[str, Any]]:
    from . import chain
    from .models import EventRecord

    with read_session(cat.engine) as s:
        rows = s.exec(select(EventRecord).where(EventRecord.id.in_(ids)))  # type: ignore[attr-defined]
        return {r.id: chain.row_dict(r) for r in rows}
