"""The hash-chained event log: intact after many appends, tampering detected, concurrent appends serialised."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid

from sqlalchemy import text

from preserve.aip.model import Event
from preserve.catalog import Catalog
from preserve.catalog.chain import canonical_json, event_hash
from preserve.catalog.models import ZERO_HASH


def _event(n: int, detail: str = "") -> Event:
    return Event(f"uuid-{uuid.uuid4()}", "validation", f"2026-11-25T08:{n // 60 % 60:02d}:{n % 60:02d}+07:00",
                 "failure", detail or f"Lô bị từ chối: thiếu tệp quét số {n}",
                 [("agent-software-preserve", "executing program")], [f"batch-{n}"])


def _sql(catalog: Catalog, statement: str) -> None:
    with catalog.engine.begin() as conn:
        conn.execute(text(statement))


def test_chain_intact_after_many_appends(catalog, make_aip, register):
    aip = register(make_aip())
    for n in range(200):
        catalog.append_event(_event(n), None if n % 2 else aip.id)
    events = catalog.events()
    assert len(events) == 205 and [e["seq"] for e in events] == list(range(1, 206))
    assert catalog.verify_chain() == []
    assert catalog.chain_head() == {"seq": 205, "hash": events[-1]["hash"]}
    assert len(catalog.events(aip.id)) == 5 + 100
    last = catalog.events(limit=3)
    assert [e["seq"] for e in last] == [203, 204, 205]
    assert last[-1]["aip"] is None and last[-1]["objects"] == ["batch-199"]


def test_hash_is_sha256_of_prev_hash_and_canonical_json(catalog):
    ev = _event(1, "Lô bị từ chối")
    catalog.append_event(ev, None)
    with catalog.engine.connect() as conn:
        prev_hash, hash_ = conn.execute(text("SELECT prev_hash, hash FROM event WHERE seq = 1")).one()
    fields = {"seq": 1, "id": ev.id, "aip": None, "type": ev.type, "datetime": ev.datetime, "outcome": "failure",
              "detail": "Lô bị từ chối", "agents": [["agent-software-preserve", "executing program"]],
              "objects": ["batch-1"]}
    assert prev_hash == ZERO_HASH
    assert hash_ == event_hash(ZERO_HASH, fields)
    assert canonical_json(fields).startswith('{"agents":[["agent-software-preserve"')
    assert '"detail":"Lô bị từ chối"' in canonical_json(fields)


def test_edited_event_is_detected(catalog):
    for n in range(5):
        catalog.append_event(_event(n), None)
    _sql(catalog, "UPDATE event SET detail = 'Lô hợp lệ' WHERE seq = 3")
    problems = catalog.verify_chain()
    assert len(problems) == 1 and problems[0].startswith("E-CHAIN-EDITED") and "seq 3" in problems[0]


def test_edited_agents_are_detected(catalog):
    for n in range(3):
        catalog.append_event(_event(n), None)
    _sql(catalog, """UPDATE event SET agents = '[["agent-person-x","implementer"]]' WHERE seq = 2""")
    assert [p[:14] for p in catalog.verify_chain()] == ["E-CHAIN-EDITED"]


def test_deleted_event_is_detected(catalog):
    for n in range(5):
        catalog.append_event(_event(n), None)
    _sql(catalog, "DELETE FROM event WHERE seq = 3")
    problems = catalog.verify_chain()
    assert any(p.startswith("E-CHAIN-GAP: event seq 3 is missing") for p in problems)
    assert any(p.startswith("E-CHAIN-BREAK") and "seq 4" in p for p in problems)


def test_deleted_and_renumbered_event_is_detected(catalog):
    for n in range(5):
        catalog.append_event(_event(n), None)
    _sql(catalog, "DELETE FROM event WHERE seq = 3")
    _sql(catalog, "UPDATE event SET seq = seq - 1 WHERE seq > 3")
    problems = catalog.verify_chain()
    assert any(p.startswith("E-CHAIN-BREAK") for p in problems)
    assert any(p.startswith("E-CHAIN-EDITED") for p in problems)  # seq is under the hash


def test_deleted_last_event_is_detected(catalog):
    for n in range(4):
        catalog.append_event(_event(n), None)
    _sql(catalog, "DELETE FROM event WHERE seq = 4")
    problems = catalog.verify_chain()
    assert len(problems) == 1 and problems[0].startswith("E-CHAIN-TAIL")


def test_concurrent_appends_from_threads(catalog):
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for n in range(40):
                catalog.append_event(_event(1000 * k + n), None)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [e["seq"] for e in catalog.events()] == list(range(1, 81))
    assert catalog.verify_chain() == []


_WORKER = textwrap.dedent("""
    import sys, time, uuid
    from preserve.aip.model import Event
    from preserve.catalog import Catalog
    url, start, k, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    cat = Catalog(url)
    while time.time() < start:
        time.sleep(0.005)
    for i in range(n):
        cat.append_event(Event(f"uuid-{uuid.uuid4()}", "fixity check", "2026-11-25T09:00:00+07:00", "success",
                               f"tiến trình {k}, lần {i}", [("agent-software-preserve", "executing program")]), None)
    cat.close()
""")


def test_concurrent_appends_from_processes(catalog, catalog_url):
    n = 50
    start = time.time() + 3  # both processes start appending at the same instant
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, catalog_url, str(start), str(k), str(n)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(2)]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    events = catalog.events()
    assert [e["seq"] for e in events] == list(range(1, 2 * n + 1))
    details = [e["detail"] for e in events]
    assert {d.split(",")[0] for d in details} == {"tiến trình 0", "tiến trình 1"}
    assert catalog.verify_chain() == []
