"""The job callables. APScheduler stores a reference to `run_job` with simple picklable arguments (the
repository root and the job id), so a stored job survives restarts and code upgrades; each run opens its own
Repository, reads the current plan and policy, records itself in the run log and closes everything.

A job that raises PreserveError or OSError ends `failed` (alert E-SCHED-JOB-FAILED); one that returns
not-ok ends `findings` (alert W-SCHED-JOB-FINDINGS; the operation raised its own specific alerts too).
Anything else propagates to APScheduler, whose EVENT_JOB_ERROR listener (service.py) records and alerts it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Callable

from ..errors import PreserveError, UsageError
from ..findings import Finding
from .plan import JobSpec, load_plan
from .runlog import CAUSE_SCHEDULE, FAILED, FINDINGS, OK, RunLog

log = logging.getLogger("preserve.scheduler")

_running: set[str] = set()      # job ids running in this process (a resumed run and its schedule never overlap)
_running_lock = threading.Lock()
# Jobs that run restic take turns: `restic check` locks the repository exclusively, so an off-site check, backup,
# drill, audit or replication meeting another one would fail on the lock instead of waiting its turn.
_restic_turn = threading.Lock()
RESTIC_KINDS = frozenset({"offsite-backup", "offsite-check", "restore-drill"})
SCHED_PROBLEMS = ("E-SCHED-JOB-FAILED", "W-SCHED-JOB-FINDINGS", "W-SCHED-MISSED", "W-SCHED-INTERRUPTED")


def run_job(root: str, job_id: str, cause: str = CAUSE_SCHEDULE) -> None:
    """Run one job of the repository at `root` (the callable every stored job names)."""
    from ..repository import Repository

    with _running_lock:
        if job_id in _running:
            log.warning("job %s is already running in this scheduler: this run is skipped", job_id)
            return
        _running.add(job_id)
    try:
        with Repository.open(root) as repo:
            _run(repo, job_id, cause)
    finally:
        with _running_lock:
            _running.discard(job_id)


def _run(repo: Any, job_id: str, cause: str) -> None:
    runlog = RunLog(repo.catalog.engine, repo.settings.timezone)
    seq = runlog.start(job_id, cause)
    log.info("job %s started (%s)", job_id, cause)
    spec: JobSpec | None = None
    try:
        spec = load_plan(repo).job(job_id)
        if spec is None:
            raise UsageError(f"The job {job_id} is no longer in the schedule (preserve.toml or the policy changed).",
                             hint="Restart the scheduler so that it applies the new schedule.")
        with _restic_turn if _uses_restic(repo, spec) else contextlib.nullcontext():
            ok, summary = RUNNERS[spec.kind](repo, spec)
    except (PreserveError, OSError) as e:
        detail = str(e).split("\n")[0]
        runlog.finish(seq, FAILED, detail)
        log.error("job %s failed: %s", job_id, detail)
        alert(repo.alerter(), Finding("E-SCHED-JOB-FAILED", job_id, {"job": job_id, "detail": detail}), spec)
        return
    runlog.finish(seq, OK if ok else FINDINGS, summary)
    log.info("job %s finished: %s: %s", job_id, OK if ok else FINDINGS, summary)
    if not ok:
        alert(repo.alerter(), Finding("W-SCHED-JOB-FINDINGS", job_id, {"job": job_id, "summary": summary}), spec)
        return
    resolve = getattr(repo.alerter(), "resolve", None)
    for code in SCHED_PROBLEMS if resolve is not None else ():  # a clean run closes this job's problems
        resolve(code, where=job_id)


def _uses_restic(repo: Any, spec: JobSpec) -> bool:
    if spec.kind in RESTIC_KINDS:
        return True
    if spec.kind == "audit":
        return repo.tier(spec.tier).kind == "restic"
    return spec.kind == "replicate" and any(repo.tier(t).kind == "restic" for t in repo.policy().copy_tiers)


def alert(alerter: Any, finding: Finding, spec: JobSpec | None) -> None:
    """Raise a scheduler alert, naming the tier for a tier's job."""
    alerter.alert(finding, tier=spec.tier if spec is not None else None)


# --- one function per kind: (repo, spec) -> (ok, bilingual summary) ----------------------------------------
def audit_job(repo: Any, spec: JobSpec) -> tuple[bool, str]:
    """The tier's due audit within the window; then, when the policy repairs automatically and the audit
    found damage, the repair. Damage found is `findings` even when repaired: a person should know."""
    window = spec.window.total_seconds() if spec.window else None
    res = repo.audit(tier=spec.tier, due=True, time_limit=window)
    d = res.to_dict()
    if res.audits or res.damaged:
        repo.write_audit_report(res)  # the HTML report, listed on the web app's audits page
    damaged = len(res.damaged)
    vi = f"tầng '{spec.tier}': kiểm tra {d.get('replicas', 0)} bản sao, hỏng/thiếu {damaged}"
    en = f"tier '{spec.tier}': {d.get('replicas', 0)} replica(s) audited, {damaged} damaged or missing"
    if d.get("remaining"):
        vi += f", còn {d['remaining']} để lần sau"
        en += f", {d['remaining']} left for the next run"
    if d.get("unreachable"):
        vi += ", tầng không kết nối được"
        en += ", tier unreachable"
    if damaged and repo.policy().auto_repair:
        rep = repo.repair(tier=spec.tier)
        r = rep.to_dict()
        vi += f"; tự sửa: {r.get('repaired', 0)} đã sửa, {r.get('failed', 0) + r.get('no-source', 0)} chưa sửa được"
        en += f"; auto-repair: {r.get('repaired', 0)} repaired, {r.get('failed', 0) + r.get('no-source', 0)} not"
    return bool(res.ok), f"{vi} / {en}"


def replicate_job(repo: Any, spec: JobSpec) -> tuple[bool, str]:
    """Catch up every under-replicated AIP. Waits for a replication already running (an ingest's) instead
    of failing: the catch-up then finds little left to do."""
    res = repo.replicate(wait=True)
    d = res.to_dict()
    under = len(d["under_replicated"])
    return (res.ok and not under,
            f"sao {d['copied']}, nhận {d['adopted']}, lỗi {d['failed']}, AIP thiếu bản sao {under} / "
            f"copied {d['copied']}, adopted {d['adopted']}, failed {d['failed']}, under-replicated {under}")


def offsite_backup_job(repo: Any, spec: JobSpec) -> tuple[bool, str]:
    d = repo.offsite_backup()
    rep = d["replication"]
    snaps = ", ".join(f"{s['tier']}: {s.get('snapshot') or 'FAILED'}" for s in d["eventlog"])
    return (bool(d["ok"]), f"sao {rep['copied']}, lỗi {rep['failed']}; nhật ký sự kiện {snaps} / "
                           f"copied {rep['copied']}, failed {rep['failed']}; event log {snaps}")


def offsite_check_job(repo: Any, spec: JobSpec) -> tuple[bool, str]:
    d = repo.offsite_check()
    parts = []
    for c in d["checks"]:
        verdict = "intact / nguyên vẹn" if c["ok"] else "DAMAGED / LỖI"
        parts.append(f"{c['tier']} {c['subset']}: {verdict} ({c['parts_done']}/{c['parts']})")
    return bool(d["ok"]), "; ".join(parts) or "-"


def capacity_job(repo: Any, spec: JobSpec) -> tuple[bool, str]:
    rows = repo.tiers_status()
    bad = []
    for x in rows:
        if not x["copy_tier"]:
            continue
        if not x["reachable"]:
            bad.append(f"{x['tier']}: không kết nối được / unreachable")
        elif x["low_space"]:
            bad.append(f"{x['tier']}: sắp hết chỗ / low space")
        if x.get("missing"):
            bad.append(f"{x['tier']}: thiếu / missing {x['missing']} AIP")
    if bad:
        return False, "; ".join(bad)
    return True, f"{len(rows)} tầng bình thường / {len(rows)} tier(s) fine"


def restore_drill_job(repo: Any, spec: JobSpec) -> tuple[bool, str]:
    d = repo.drill(sample=spec.sample)
    good = sum(1 for a in d["aips"] if a["status"] == "restored")
    return bool(d["ok"]), (f"{d['tier']}: khôi phục và kiểm tra {good}/{d['sample']} AIP / restored and verified "
                           f"{good} of {d['sample']} AIP(s), {d['seconds']} s")


RUNNERS: dict[str, Callable[[Any, JobSpec], tuple[bool, str]]] = {
    "audit": audit_job,
    "replicate": replicate_job,
    "offsite-backup": offsite_backup_job,
    "offsite-check": offsite_check_job,
    "capacity": capacity_job,
    "restore-drill": restore_drill_job,
}
