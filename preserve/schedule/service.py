"""The running scheduler: the lock, the APScheduler instance and its job store in the catalog database, the
startup re-sync with the plan, interrupted runs, missed runs, and the status report."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from apscheduler.events import (EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED,
                                JobEvent)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING

from ..catalog.db import make_engine
from ..errors import PreserveError, UsageError
from ..findings import Finding
from .jobs import alert, run_job
from .plan import Plan, duration_text
from .runlog import CAUSE_RESUME, PROBLEMS, RunLog, create_tables

log = logging.getLogger("preserve.scheduler")

JOBSTORE_TABLE = "scheduler_jobs"
LOCK_FILE = "state/scheduler.lock"
STORE, ONCE = "default", "once"       # the persistent job store; one-off runs (resumed runs) kept in memory
RESUME_PREFIX = "resume:"
LOCK_TRIES, LOCK_PAUSE = 10, 0.1      # a status probe holds the lock for microseconds: retry briefly


# --- the lock ----------------------------------------------------------------------------------------------
@contextmanager
def scheduler_lock(root: Path) -> Iterator[None]:
    """One scheduler per repository on this machine: flock on <root>/state/scheduler.lock for the scheduler's
    life (the kernel releases it when the process ends, even killed). It does not reach other machines."""
    path = Path(root) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        for attempt in range(LOCK_TRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == LOCK_TRIES - 1:
                    pid = _holder_pid(path)
                    raise UsageError(f"Một bộ lập lịch khác đang chạy cho kho này (PID {pid}) / another scheduler "
                                     f"is running (PID {pid}) for {root}.",
                                     hint="Stop it first (systemctl stop preserve-scheduler, or kill that PID), "
                                          "or use `preserve scheduler status` to see what it does.") from None
                time.sleep(LOCK_PAUSE)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def _holder_pid(path: Path) -> int | str:
    try:
        return int(path.read_text(encoding="utf-8").split()[0])
    except (OSError, IndexError, ValueError):
        return "?"  # the holder has the lock but has not written its PID yet


def running_pid(root: Path) -> int | str | None:
    """The PID of the scheduler holding the lock on this machine, or None when none runs."""
    path = Path(root) / LOCK_FILE
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder_pid(path)
    finally:
        os.close(fd)  # also releases the probe's shared lock
    return None


# --- the scheduler -----------------------------------------------------------------------------------------
class _Scheduler(BackgroundScheduler):
    """APScheduler 3's loop runs `_process_jobs` once more after `shutdown()` (it wakes with the state STOPPED
    and only skips PAUSED): every job due at that moment would get its next run time advanced in the store
    without running — for a paused scheduler opened only to read or edit the store (status), every due job.
    Jobs are processed only while the scheduler runs."""

    def _process_jobs(self) -> float | None:
        if self.state != STATE_RUNNING:
            return None
        return super()._process_jobs()


def make_scheduler(settings: Any, plan: Plan, *, workers: int = 1) -> BackgroundScheduler:
    """A BackgroundScheduler whose jobs live in the catalog database (table scheduler_jobs). Coalesced, one
    instance per job, runs later than the grace time are missed."""
    store = SQLAlchemyJobStore(engine=make_engine(settings.catalog_url), tablename=JOBSTORE_TABLE)
    create_tables(store.engine, store.jobs_t)  # before APScheduler's own check-then-create (see create_tables)
    return _Scheduler(
        jobstores={STORE: store, ONCE: MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(max(2, workers))},
        job_defaults={"coalesce": True, "max_instances": 1,
                      "misfire_grace_time": int(plan.grace.total_seconds())},
        timezone=plan.tz)


class Service:
    """One scheduler run: sync the stored jobs with the plan, run interrupted jobs again, record misses and
    unexpected errors. Use `start` … `stop` (foreground) or `run_once`, inside `scheduler_lock` (the CLI
    does): a `running` row is taken as interrupted only because no other scheduler here can be running it."""

    def __init__(self, settings: Any, plan: Plan) -> None:
        self.settings, self.plan = settings, plan
        self.root = str(settings.root)
        self.runlog = RunLog(make_engine(settings.catalog_url), settings.timezone)
        from ..alerts import Alerter

        self.alerter = Alerter.for_settings(settings)
        self.scheduler = make_scheduler(settings, plan, workers=len(plan.jobs) + 2)
        self.scheduler.add_listener(self._on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
                                    | EVENT_JOB_MAX_INSTANCES)
        self._waiting: set[str] = set()
        self._done = threading.Condition()

    # --- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        self.scheduler.start(paused=True)
        self.sync()
        self.resume_interrupted()
        self.scheduler.resume()
        for job in self.scheduler.get_jobs():
            log.info("job %s: %s, next run %s", job.id, job.name, _iso(job.next_run_time))

    def stop(self, wait: bool = True) -> None:
        """Stop starting runs; with `wait`, let running ones finish (an audit stops at its window)."""
        self.scheduler.shutdown(wait=wait)
        self.runlog.engine.dispose()

    def run_once(self) -> list[dict[str, Any]]:
        """Run what is due now (and interrupted runs), wait for those runs, stop. Returns their run-log rows."""
        since = self.runlog.last_seq()
        self.scheduler.start(paused=True)
        self.sync()
        self.resume_interrupted()
        now = datetime.now(self.plan.tz)
        with self._done:
            self._waiting = {j.id for j in self.scheduler.get_jobs() if j.next_run_time and j.next_run_time <= now}
        self.scheduler.resume()
        with self._done:
            self._done.wait_for(lambda: not self._waiting)
        self.stop(wait=True)
        return self.runlog.runs(since=since)

    # --- startup -------------------------------------------------------------------------------------------
    def sync(self) -> None:
        """Make the stored jobs the plan's: add new ones, replace changed ones (next run from the new trigger),
        keep the next run time of unchanged ones, remove jobs no longer planned (a tier left the policy)."""
        stored = {j.id: j for j in self.scheduler.get_jobs(jobstore=STORE)}
        for spec in self.plan.jobs:
            old = stored.pop(spec.id, None)
            keep = old is not None and old.name == spec.fingerprint and old.next_run_time is not None
            extra = {"next_run_time": old.next_run_time} if keep else {}
            self.scheduler.add_job(run_job, trigger=spec.trigger, args=(self.root, spec.id), id=spec.id,
                                   name=spec.fingerprint, jobstore=STORE, replace_existing=True, **extra)
        for job_id in stored:
            log.info("job %s is no longer planned: removed", job_id)
            self.scheduler.remove_job(job_id, jobstore=STORE)

    def resume_interrupted(self) -> None:
        """Runs the log shows `running` on this machine died with the process: alert, and run each job once
        now — unless its scheduled run is due now anyway, which completes the work (never run twice)."""
        now = datetime.now(self.plan.tz)
        seen: set[str] = set()
        for row in self.runlog.take_interrupted():
            job_id = row["job_id"]
            spec = self.plan.job(job_id)
            alert(self.alerter, Finding("W-SCHED-INTERRUPTED", job_id, {"job": job_id, "started": row["started_at"]}),
                  spec)
            if job_id in seen or spec is None:
                continue
            seen.add(job_id)
            job = self.scheduler.get_job(job_id, jobstore=STORE)
            due = job is not None and job.next_run_time is not None and job.next_run_time <= now
            if due and now - job.next_run_time <= self.plan.grace:
                continue
            self.scheduler.add_job(run_job, trigger="date", run_date=now, args=(self.root, job_id, CAUSE_RESUME),
                                   id=RESUME_PREFIX + job_id, name=f"resume {job_id}", jobstore=ONCE,
                                   misfire_grace_time=None, replace_existing=True)

    # --- events --------------------------------------------------------------------------------------------
    def _on_event(self, event: JobEvent) -> None:
        """Missed runs and unexpected errors reach the run log and a person; then --once learns a run ended."""
        job_id = event.job_id.removeprefix(RESUME_PREFIX)
        try:
            if event.code == EVENT_JOB_MISSED:
                self._missed(job_id, event.scheduled_run_time)
            elif event.code == EVENT_JOB_ERROR:
                text = str(event.exception).strip()
                detail = f"{type(event.exception).__name__}: {text.splitlines()[0] if text else '-'}"
                self.runlog.fail_running(job_id, detail)
                alert(self.alerter, Finding("E-SCHED-JOB-FAILED", job_id, {"job": job_id, "detail": detail}),
                      self.plan.job(job_id))
            elif event.code == EVENT_JOB_MAX_INSTANCES:
                log.warning("job %s is still running: the run due now is skipped (coalesced)", job_id)
        except (PreserveError, OSError) as e:
            log.error("could not record what happened to job %s: %s", job_id, e)
        finally:
            with self._done:
                self._waiting.discard(event.job_id)
                self._done.notify_all()

    def _missed(self, job_id: str, scheduled: datetime) -> None:
        spec = self.plan.job(job_id)
        now = datetime.now(self.plan.tz)
        nxt = spec.trigger.get_next_fire_time(scheduled, now) if spec is not None else None
        when = _iso(scheduled)
        self.runlog.missed(job_id, when, f"không chạy lúc {when} / not run at {when}")
        alert(self.alerter, Finding("W-SCHED-MISSED", job_id, {
            "job": job_id, "scheduled": when, "grace": duration_text(self.plan.grace), "next": _iso(nxt)}), spec)


def _iso(t: datetime | None) -> str:
    return t.isoformat(timespec="seconds") if t is not None else "-"


# --- status ------------------------------------------------------------------------------------------------
def stored_jobs(settings: Any, plan: Plan) -> dict[str, Any]:
    """The jobs in the job store, read through a paused scheduler (it never runs them)."""
    sched = make_scheduler(settings, plan)
    sched.start(paused=True)
    try:
        return {j.id: j for j in sched.get_jobs(jobstore=STORE)}
    finally:
        sched.shutdown(wait=False)


def status(settings: Any, plan: Plan) -> dict[str, Any]:
    """Each planned job: trigger, last run, run in progress, next run, whether it is overdue (its next run
    is older than the grace time: the scheduler is not running or is stuck). `ok` is False when a last run
    failed, found problems, was missed or interrupted, or a job is overdue or not scheduled at all."""
    engine = make_engine(settings.catalog_url)
    try:
        runlog = RunLog(engine, settings.timezone)
        stored = stored_jobs(settings, plan)
        now = datetime.now(plan.tz)
        pid = running_pid(settings.root)
        jobs = []
        for spec in plan.jobs:
            job = stored.get(spec.id)
            nxt = job.next_run_time if job is not None else None
            runs = runlog.latest(spec.id)
            row = {"id": spec.id, "trigger": spec.fingerprint, "scheduled": job is not None,
                   "next_run": _iso(nxt) if nxt else None,
                   "overdue": bool(nxt is not None and now - nxt > plan.grace),
                   "last_run": _run_dict(runs["last"]), "running": _run_dict(runs["running"]),
                   # a run in progress while no scheduler runs here died with it (resumed at the next start)
                   "interrupted": runs["running"] is not None and pid is None}
            row["ok"] = (row["scheduled"] and not row["overdue"] and not row["interrupted"]
                         and (row["last_run"] is None or row["last_run"]["outcome"] not in PROBLEMS))
            jobs.append(row)
        stale = sorted(set(stored) - {s.id for s in plan.jobs})
        return {"scheduler": {"running": pid is not None, "pid": pid, "lock": str(Path(settings.root) / LOCK_FILE)},
                "grace": duration_text(plan.grace), "jobs": jobs, "stale_jobs": stale,
                "ok": all(j["ok"] for j in jobs)}
    finally:
        engine.dispose()


def _run_dict(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: row[k] for k in ("started_at", "finished_at", "outcome", "summary", "cause", "scheduled_at", "host",
                                "pid")}


def set_next_run_time(settings: Any, plan: Plan, job_id: str, when: datetime) -> None:
    """Move a stored job's next run (while no scheduler runs: a running one would not notice). For tests and
    for an operator who wants a job to run at the next start."""
    sched = make_scheduler(settings, plan)
    sched.start(paused=True)
    try:
        sched.modify_job(job_id, jobstore=STORE, next_run_time=when)
    finally:
        sched.shutdown(wait=False)
