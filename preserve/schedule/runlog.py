"""The run log: one row per job run in the catalog database (table `scheduler_runs`, created if missing; its
own SQLAlchemy metadata, not the catalog's models), so that `preserve scheduler status` and a restarted
scheduler see what ran, what failed and what was cut off.

Columns: seq (order), job_id, cause (schedule | resume), scheduled_at (missed runs), started_at, finished_at,
outcome, summary (bilingual, short), host, pid. Outcomes:
  running      started, not finished (yet — or the process died: see `interrupted`)
  ok           the job did its work and found nothing wrong
  findings     the job ran and found problems (damage, failed copies, low space …): alerts were raised
  failed       the job could not do its work (an error): alert E-SCHED-JOB-FAILED
  interrupted  a `running` row found at startup: the process was killed; the job is run again once
  missed       the run was due but came later than misfire_grace: not run, alert W-SCHED-MISSED
Times are ISO 8601 in the repository's time zone.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, Text, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..catalog.db import read_session, write_session
from ..errors import CatalogError

RUNS_TABLE = "scheduler_runs"
RUNNING, OK, FINDINGS, FAILED, INTERRUPTED, MISSED = "running", "ok", "findings", "failed", "interrupted", "missed"
PROBLEMS = frozenset({FINDINGS, FAILED, INTERRUPTED, MISSED})
CAUSE_SCHEDULE, CAUSE_RESUME = "schedule", "resume"
SUMMARY_MAX = 1000

_metadata = MetaData()
runs_table = Table(
    RUNS_TABLE, _metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(100), nullable=False, index=True),
    Column("cause", String(16), nullable=False),
    Column("scheduled_at", String(40)),
    Column("started_at", String(40), nullable=False),
    Column("finished_at", String(40)),
    Column("outcome", String(16), nullable=False, index=True),
    Column("summary", Text, nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
)


def host() -> str:
    return socket.gethostname()


@contextmanager
def _db(what: str) -> Iterator[None]:
    """Database failures become CatalogError, as in the catalog, so callers handle one kind of error."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise CatalogError(f"scheduler run log: {what}: {getattr(exc, 'orig', None) or exc}",
                           hint="check the catalog URL and that the database is reachable") from exc


def create_tables(engine: Engine, *tables: Table) -> None:
    """Create missing tables inside a write transaction. A plain create_all checks first in a read
    transaction, and on SQLite (WAL) turning that into a write fails at once ("database is locked", without
    waiting) when another connection wrote in between: the catalog is written all the time."""
    with _db(f"create {', '.join(t.name for t in tables)}"), write_session(engine) as s:
        conn = s.connection()
        for t in tables:
            t.create(conn, checkfirst=True)


class RunLog:
    def __init__(self, engine: Engine, tz: str) -> None:
        self.engine = engine
        self.tz = tz
        create_tables(engine, runs_table)

    def _now(self) -> str:
        from ..clock import now_iso

        return now_iso(self.tz)

    # --- writes ---------------------------------------------------------------------------------------------
    def start(self, job_id: str, cause: str) -> int:
        with _db(f"record the start of {job_id}"), write_session(self.engine) as s:
            res = s.exec(insert(runs_table).values(
                job_id=job_id, cause=cause, started_at=self._now(), outcome=RUNNING, summary="", host=host(),
                pid=os.getpid()))
            return int(res.inserted_primary_key[0])

    def finish(self, seq: int, outcome: str, summary: str) -> None:
        with _db(f"record the end of run {seq}"), write_session(self.engine) as s:
            s.exec(update(runs_table).where(runs_table.c.seq == seq)
                      .values(finished_at=self._now(), outcome=outcome, summary=summary[:SUMMARY_MAX]))

    def fail_running(self, job_id: str, summary: str) -> None:
        """The run of `job_id` this process started ends as failed (a job that raised something unexpected);
        when it never got as far as recording its start, a failed row is added."""
        mine = ((runs_table.c.job_id == job_id) & (runs_table.c.outcome == RUNNING)
                & (runs_table.c.host == host()) & (runs_table.c.pid == os.getpid()))
        with _db(f"record the failure of {job_id}"), write_session(self.engine) as s:
            res = s.exec(update(runs_table).where(mine).values(finished_at=self._now(), outcome=FAILED,
                                                                  summary=summary[:SUMMARY_MAX]))
            if not res.rowcount:
                now = self._now()
                s.exec(insert(runs_table).values(job_id=job_id, cause=CAUSE_SCHEDULE, started_at=now,
                                                    finished_at=now, outcome=FAILED, summary=summary[:SUMMARY_MAX],
                                                    host=host(), pid=os.getpid()))

    def missed(self, job_id: str, scheduled_at: str, summary: str) -> None:
        now = self._now()
        with _db(f"record the missed run of {job_id}"), write_session(self.engine) as s:
            s.exec(insert(runs_table).values(job_id=job_id, cause=CAUSE_SCHEDULE, scheduled_at=scheduled_at,
                                                started_at=now, finished_at=now, outcome=MISSED,
                                                summary=summary[:SUMMARY_MAX], host=host(), pid=os.getpid()))

    def take_interrupted(self) -> list[dict[str, Any]]:
        """Mark this machine's `running` rows interrupted and return them. Call only while holding the
        scheduler lock: then no scheduler on this machine is running them."""
        mine = (runs_table.c.outcome == RUNNING) & (runs_table.c.host == host())
        with _db("find interrupted runs"), write_session(self.engine) as s:
            rows = [dict(r._mapping) for r in s.exec(select(runs_table).where(mine).order_by(runs_table.c.seq))]
            if rows:
                s.exec(update(runs_table).where(runs_table.c.seq.in_([r["seq"] for r in rows])).values(
                    finished_at=self._now(), outcome=INTERRUPTED,
                    summary="tiến trình bị dừng giữa chừng; chạy lại khi khởi động / "
                            "the process stopped during this run; run again at startup"))
        return rows

    # --- reads ----------------------------------------------------------------------------------------------
    def runs(self, job_id: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """Rows in order (all, or one job's; `since`: only those after that seq)."""
        q = select(runs_table).where(runs_table.c.seq > since).order_by(runs_table.c.seq)
        if job_id is not None:
            q = q.where(runs_table.c.job_id == job_id)
        with _db("read runs"), read_session(self.engine) as s:
            return [dict(r._mapping) for r in s.exec(q)]

    def last_seq(self) -> int:
        with _db("read runs"), read_session(self.engine) as s:
            return int(s.exec(select(func.max(runs_table.c.seq))).scalar() or 0)

    def latest(self, job_id: str) -> dict[str, Any]:
        """{"last": the latest finished run or None, "running": the run in progress or None}."""
        base = select(runs_table).where(runs_table.c.job_id == job_id).order_by(runs_table.c.seq.desc()).limit(1)
        with _db("read runs"), read_session(self.engine) as s:
            last = s.exec(base.where(runs_table.c.outcome != RUNNING)).first()
            running = s.exec(base.where(runs_table.c.outcome == RUNNING)).first()
        return {"last": dict(last._mapping) if last else None, "running": dict(running._mapping) if running else None}
