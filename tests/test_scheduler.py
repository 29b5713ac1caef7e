"""The scheduler: jobs from the policy and [scheduler], runs through the real APScheduler, the run log and
`scheduler status`, the lock, restarts after SIGKILL, missed runs and failing jobs. Real parts only: real
repositories, restic, subprocesses and signals."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from preserve.alerts import Alerter, read_alerts
from preserve.cli import scheduler as scheduler_cli
from preserve.cli.main import app
from preserve.config import default_settings
from preserve.errors import ConfigError
from preserve.policy import load_policy, shipped_policies_dir
from preserve.repository import Repository
from preserve.schedule import RunLog, Service, load_plan, make_plan, set_next_run_time
from preserve.schedule.plan import crontab_weekdays, parse_trigger
from preserve.schedule.service import stored_jobs

if not any(g.name == "scheduler" for g in app.registered_groups):  # until cli/main.py registers the group
    scheduler_cli.register(app)

# The same CLI in a subprocess (signals, the lock, SIGKILL need a process of their own).
LAUNCH = ("from preserve.cli.main import app, main\nfrom preserve.cli import scheduler\n"
          "if not any(g.name == 'scheduler' for g in app.registered_groups):\n    scheduler.register(app)\nmain()\n")
runner = CliRunner()


# --- helpers -------------------------------------------------------------------------------------------------
def cli(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout


def status_json(root: Path) -> tuple[int, dict]:
    code, out = cli("scheduler", "status", "--json", "--repo", str(root))
    return code, json.loads(out)


def spawn(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", LAUNCH, "scheduler", "run", "--repo", str(root), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def configure(root: Path, scheduler: dict, policy: str | None = None) -> None:
    """Write [scheduler] (and the policy name) into preserve.toml."""
    with Repository.open(root) as r:
        r.settings.data["scheduler"] = scheduler
        if policy:
            r.settings.data["policy"]["name"] = policy
        r.settings.save()


def make_due(root: Path, job_id: str, when: datetime | None = None) -> None:
    """Store the jobs (a `--once` with nothing due), then move one job's next run (no scheduler running)."""
    with Repository.open(root) as r:
        plan = load_plan(r)
        if job_id not in stored_jobs(r.settings, plan):
            Service(r.settings, plan).run_once()
        set_next_run_time(r.settings, plan, job_id, when or datetime.now(timezone.utc))


def next_runs(root: Path) -> dict[str, datetime]:
    with Repository.open(root) as r:
        return {k: j.next_run_time for k, j in stored_jobs(r.settings, load_plan(r)).items()}


def runs(root: Path, job_id: str | None = None) -> list[dict]:
    with Repository.open(root) as r:
        return RunLog(r.catalog.engine, r.settings.timezone).runs(job_id)


def alert_codes(root: Path) -> list[str]:
    return [a["code"] for a in read_alerts(root / "alerts.log")]


def wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 60.0):
    """Poll until `predicate` holds; fail at once with its stderr if the scheduler process ended."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"the scheduler exited ({proc.returncode}) before {what}: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def plan_for(offsite: bool, scheduler: dict | None = None):
    data = default_settings(offsite=offsite)
    if scheduler is not None:
        data["scheduler"] = scheduler
    policy, _ = load_policy(data["policy"]["name"], data["tiers"], [shipped_policies_dir()])
    return make_plan(data, policy, data["tiers"])


# --- the plan ------------------------------------------------------------------------------------------------
def test_jobs_from_the_default_policy():
    plan = plan_for(offsite=True)
    jobs = {j.id: j for j in plan.jobs}
    assert list(jobs) == ["audit:primary", "audit:secondary", "audit:offsite", "replicate", "offsite-backup",
                          "capacity", "offsite-check", "restore-drill"]
    assert jobs["restore-drill"].trigger_text == "cron: 0 3 1 * *" and jobs["restore-drill"].sample == 5
    assert plan.findings == []
    assert jobs["audit:primary"].trigger_text == "cron: 0 1 * * *"
    assert jobs["audit:primary"].window == timedelta(hours=5)
    assert jobs["replicate"].trigger_text == "interval: 1h"
    # offsite: audit_interval 180d / check_parts 12 → a part every 15 days, so a cycle ends within 180 days
    assert jobs["offsite-check"].trigger_text == "interval: 15d (auto)"
    assert jobs["offsite-check"].trigger.interval == timedelta(days=15)
    assert plan.grace == timedelta(hours=1) and plan.tz.utcoffset(None) == timedelta(hours=7)

    local = [j.id for j in plan_for(offsite=False).jobs]  # no restic tier: no off-site jobs
    assert local == ["audit:primary", "audit:secondary", "replicate", "capacity", "restore-drill"]


def test_scheduler_settings_are_validated_with_coded_findings():
    plan = plan_for(True, {"audit": "cron: 0 3 * * 0", "audit_window": "2h", "replicate": "off",
                           "offsite_check": "interval: 30d", "tiers": {"offsite": {"audit": "cron: 0 4 1 * *"},
                                                                        "secondary": {"audit": "off"}},
                           "timezone": "Asia/Ho_Chi_Minh", "colour": "blue"})
    jobs = {j.id: j for j in plan.jobs}
    assert "replicate" not in jobs and "audit:secondary" not in jobs
    assert jobs["audit:offsite"].trigger_text == "cron: 0 4 1 * *"
    assert jobs["audit:primary"].window == timedelta(hours=2)
    assert [f.code for f in plan.findings] == ["W-SCHED-KEY-UNKNOWN", "W-SCHED-AUDIT-OFF", "W-SCHED-OFFSITE-CHECK-SLOW"]
    slow = plan.findings[2]
    assert slow.params["needed"] == "15d" and "30d" in slow.message_en and slow.message_vi
    # crontab weekdays: 0 and 7 are Sunday (APScheduler 3 alone would take 0 as Monday)
    sunday = jobs["audit:primary"].trigger.get_next_fire_time(None, datetime(2026, 1, 1, tzinfo=plan.tz))
    assert sunday.weekday() == 6 and sunday.hour == 3
    assert crontab_weekdays("1-5") == "mon,tue,wed,thu,fri" and crontab_weekdays("5-7") == "sun,fri,sat"
    assert crontab_weekdays("*/2") == "sun,tue,thu,sat"

    bad = plan_for(False, {"audit": "daily", "replicate": "interval: 10", "capacity": "cron: 0 25 * * *",
                           "audit_window": "0s", "misfire_grace": 5, "timezone": "Mars/Olympus",
                           "restore_drill": "monthly", "restore_drill_sample": 0})
    codes = [(f.code, f.params["key"]) for f in bad.findings]  # a global key read for each tier: once
    assert codes == [("E-SCHED-VALUE", "timezone"), ("E-SCHED-VALUE", "misfire_grace"),
                     ("E-SCHED-TRIGGER", "audit"), ("E-SCHED-VALUE", "audit_window"),
                     ("E-SCHED-TRIGGER", "replicate"), ("E-SCHED-TRIGGER", "capacity"),
                     ("E-SCHED-TRIGGER", "restore_drill"), ("E-SCHED-VALUE", "restore_drill_sample")]
    first = bad.findings[2]
    assert "daily" in first.message_en and "daily" in first.message_vi
    with pytest.raises(ValueError):
        parse_trigger("cron: 0 1 * *", plan.tz)


def test_a_bad_schedule_stops_the_scheduler_with_exit_2(repo):
    configure(repo.root, {"replicate": "every hour"})
    code, _ = cli("scheduler", "run", "--once", "--repo", str(repo.root))
    assert code == 2
    with Repository.open(repo.root) as r, pytest.raises(ConfigError, match="E-SCHED-TRIGGER"):
        load_plan(r)


# --- runs, the lock, signals ---------------------------------------------------------------------------------
def test_a_due_job_runs_once_and_status_shows_it(repo):
    root = repo.root
    code, data = status_json(root)
    assert code == 1 and not data["jobs"][0]["scheduled"]  # never started: nothing is scheduled yet
    make_due(root, "capacity")
    before = next_runs(root)
    code, out = cli("scheduler", "run", "--once", "--json", "--repo", str(root))
    assert code == 0, out
    done = json.loads(out)["runs"]
    assert [(r["job_id"], r["outcome"], r["cause"]) for r in done] == [("capacity", "ok", "schedule")]
    assert "2 tier(s) fine" in done[0]["summary"]
    code, data = status_json(root)
    assert code == 0 and data["ok"], data
    cap = next(j for j in data["jobs"] if j["id"] == "capacity")
    assert cap["last_run"]["outcome"] == "ok" and cap["last_run"]["finished_at"]
    assert datetime.fromisoformat(cap["next_run"]) > datetime.now(timezone.utc) + timedelta(hours=5)
    after = next_runs(root)
    assert {k: v for k, v in after.items() if k != "capacity"} == {k: v for k, v in before.items() if k != "capacity"}
    assert cli("scheduler", "run", "--once", "--repo", str(root))[0] == 0  # nothing due: nothing runs again
    assert len(runs(root, "capacity")) == 1


def test_interval_jobs_in_the_foreground_one_scheduler_per_repository(repo):
    root = repo.root
    configure(root, {"capacity": "interval: 1s", "replicate": "off", "audit": "off"})
    first = spawn(root)
    try:
        wait_for(lambda: len([r for r in runs(root, "capacity") if r["outcome"] == "ok"]) >= 2, first, "two runs")
        second = spawn(root, "--once")
        _, err = second.communicate(timeout=30)
        assert second.returncode == 2
        assert f"another scheduler is running (PID {first.pid})" in " ".join(err.split()), err
        code, data = status_json(root)
        assert data["scheduler"] == {"running": True, "pid": first.pid, "lock": str(root / "state/scheduler.lock")}
    finally:
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert "W-SCHED-AUDIT-OFF" in err  # the warnings are shown at start
    done = runs(root, "capacity")
    assert done and all(r["outcome"] == "ok" for r in done)  # SIGTERM let the last run finish
    assert status_json(root)[1]["scheduler"]["running"] is False  # lock released


def test_restart_after_sigkill_completes_the_interrupted_audit_once(repo, tmp_path):
    """An audit throttled for real (io_budget) is killed half-way; the next start runs it once more, and it
    resumes: every replica on the tier gets exactly one fixity check, next run times are kept."""
    from preserve.sip.sample import make_sample

    root = repo.root
    policy = (shipped_policies_dir() / "local-only.yaml").read_text(encoding="utf-8")
    (root / "storage_policies").mkdir()
    (root / "storage_policies/slow.yaml").write_text(policy.replace("io_budget: 100MiB/s", "io_budget: 2MiB/s", 1))
    info = make_sample(tmp_path / "batch", dossiers=12, docs=2, pages=(1, 1), seed=7)
    aips = [a["id"] for a in repo.ingest(info.root).aips]
    configure(root, {"tiers": {"secondary": {"audit": "off"}}}, policy="slow")
    with sqlite3.connect(root / "catalog.sqlite") as db:  # the copies were last verified long ago: all due
        db.execute("UPDATE replica SET verified_at = '2000-01-01T00:00:00+07:00' WHERE tier = 'primary'")
    make_due(root, "audit:primary")

    def fixity_checks() -> list[str]:
        with Repository.open(root) as r:
            return [e["aip"] for e in r.events() if e["type"] == "fixity check" and "'primary'" in e["detail"]]

    proc = spawn(root)
    try:
        wait_for(lambda: len(fixity_checks()) >= 2, proc, "the audit to be under way")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    checked_before = fixity_checks()
    assert 2 <= len(checked_before) < len(aips), "the audit finished before it was killed: slow it down"
    assert [r["outcome"] for r in runs(root, "audit:primary")] == ["running"]
    code, data = status_json(root)
    audit = next(j for j in data["jobs"] if j["id"] == "audit:primary")
    assert code == 1 and audit["interrupted"] and not data["scheduler"]["running"]
    kept = next_runs(root)

    code, out = cli("scheduler", "run", "--once", "--json", "--repo", str(root))
    assert code == 0, out
    rows = runs(root, "audit:primary")
    assert [(r["outcome"], r["cause"]) for r in rows] == [("interrupted", "schedule"), ("ok", "resume")]
    assert sorted(fixity_checks()) == sorted(aips)  # each replica exactly once: nothing audited twice
    assert "W-SCHED-INTERRUPTED" in alert_codes(root)
    assert next_runs(root) == kept  # the restart kept every next run time
    assert cli("scheduler", "run", "--once", "--repo", str(root))[0] == 0  # and resumes nothing a second time
    assert len(runs(root, "audit:primary")) == 2


def test_the_audit_job_finds_damage_and_repairs_it_automatically(repo, batch):
    root = repo.root
    aip = repo.ingest(batch).aips[0]["id"]
    with sqlite3.connect(root / "catalog.sqlite") as db:
        db.execute("UPDATE replica SET verified_at = '2000-01-01T00:00:00+07:00' WHERE tier = 'primary'")
    victim = next(p for p in sorted(repo.aip_dir(aip, "primary").rglob("*.pdf")))
    good = victim.read_bytes()
    victim.write_bytes(good[:-10] + b"0123456789")
    make_due(root, "audit:primary")
    code, out = cli("scheduler", "run", "--once", "--json", "--repo", str(root))
    assert code == 1
    [run] = json.loads(out)["runs"]
    assert (run["job_id"], run["outcome"]) == ("audit:primary", "findings")
    assert "1 damaged or missing" in run["summary"] and "auto-repair: 1 repaired" in run["summary"]
    assert victim.read_bytes() == good  # the policy repairs automatically: the copy is whole again
    assert "W-SCHED-JOB-FINDINGS" in alert_codes(root)


def test_restart_resyncs_jobs_with_the_policy_and_keeps_unchanged_next_runs(repo):
    root = repo.root
    assert cli("scheduler", "run", "--once", "--repo", str(root))[0] == 0
    before = next_runs(root)
    assert set(before) == {"audit:primary", "audit:secondary", "replicate", "capacity", "restore-drill"}
    (root / "storage_policies").mkdir()
    (root / "storage_policies/one.yaml").write_text("copies:\n  tiers: [primary]\n  required: 1\n  minimum: 1\n")
    configure(root, {"replicate": "interval: 2h"}, policy="one")
    assert cli("scheduler", "run", "--once", "--repo", str(root))[0] == 0
    after = next_runs(root)
    assert set(after) == {"audit:primary", "replicate", "capacity", "restore-drill"}  # the tier left: its job too
    assert after["audit:primary"] == before["audit:primary"] and after["capacity"] == before["capacity"]
    assert after["replicate"] - before["replicate"] >= timedelta(hours=1)  # changed trigger: rescheduled


def test_a_run_missed_beyond_its_grace_alerts_and_is_not_run_late(repo):
    root = repo.root
    configure(root, {"capacity": "cron: 0 0 1 1 *", "misfire_grace": "1m"})
    make_due(root, "capacity", datetime.now(timezone.utc) - timedelta(minutes=10))
    code, data = status_json(root)
    cap = next(j for j in data["jobs"] if j["id"] == "capacity")
    assert code == 1 and cap["overdue"]
    code, out = cli("scheduler", "run", "--once", "--json", "--repo", str(root))
    assert code == 1
    assert [(r["job_id"], r["outcome"]) for r in json.loads(out)["runs"]] == [("capacity", "missed")]
    assert alert_codes(root).count("W-SCHED-MISSED") == 1
    missed = next(a for a in read_alerts(root / "alerts.log") if a["code"] == "W-SCHED-MISSED")
    assert missed["params"]["next"].startswith(f"{datetime.now().year + 1}-01-01T00:00:00")
    code, data = status_json(root)
    cap = next(j for j in data["jobs"] if j["id"] == "capacity")
    assert code == 1 and cap["last_run"]["outcome"] == "missed" and not cap["overdue"]
    assert cli("scheduler", "run", "--once", "--repo", str(root))[0] == 0  # nothing runs late, nothing twice
    assert [r["outcome"] for r in runs(root, "capacity")] == ["missed"]
    assert alert_codes(root).count("W-SCHED-MISSED") == 1


def test_failing_jobs_are_recorded_alerted_and_fail_status(tmp_path):
    root = tmp_path / "repo"
    Repository.init(root, offsite=True).close()
    make_due(root, "offsite-check")
    make_due(root, "capacity")
    password = (root / "keys/restic-password").read_text()
    (root / "keys/restic-password").write_text("not the password\n")
    (root / "tiers/secondary").rename(root / "secondary-unplugged")
    code, out = cli("scheduler", "run", "--once", "--json", "--repo", str(root))
    assert code == 1
    got = {r["job_id"]: r for r in json.loads(out)["runs"]}
    assert got["offsite-check"]["outcome"] == "failed" and got["offsite-check"]["summary"]
    assert got["capacity"]["outcome"] == "findings" and "secondary" in got["capacity"]["summary"]
    codes = alert_codes(root)
    assert "E-SCHED-JOB-FAILED" in codes and "W-SCHED-JOB-FINDINGS" in codes
    code, data = status_json(root)
    assert code == 1 and not data["ok"]
    assert {j["id"]: j["last_run"]["outcome"] for j in data["jobs"] if j["last_run"]} == {
        "offsite-check": "failed", "capacity": "findings"}
    code, text = cli("scheduler", "status", "--repo", str(root))
    assert code == 1 and "failed" in text and "offsite-check" in text
    # once the causes are fixed, each job's next clean run closes its problems
    (root / "secondary-unplugged").rename(root / "tiers/secondary")
    (root / "keys/restic-password").write_text(password)
    make_due(root, "capacity")
    assert cli("scheduler", "run", "--once", "--repo", str(root))[0] == 0
    with Repository.open(root) as r:
        open_now = {(p["code"], p["where"]) for p in Alerter.for_settings(r.settings).open_problems()}
    assert ("W-SCHED-JOB-FINDINGS", "capacity") not in open_now and ("E-SCHED-JOB-FAILED", "offsite-check") in open_now
    make_due(root, "offsite-check")
    assert cli("scheduler", "run", "--once", "--repo", str(root))[0] == 0
    with Repository.open(root) as r:
        assert not {p["code"] for p in Alerter.for_settings(r.settings).open_problems()} & {
            "E-SCHED-JOB-FAILED", "W-SCHED-JOB-FINDINGS"}

    # something a job does not expect (here preserve.toml broken after the scheduler read it) reaches the
    # run log and a person through APScheduler's error event
    with Repository.open(root) as r:
        settings, plan = r.settings, load_plan(r)
    make_due(root, "replicate")
    (root / "preserve.toml").write_text("not = [valid", encoding="utf-8")
    rows = Service(settings, plan).run_once()
    assert [(r["job_id"], r["outcome"]) for r in rows] == [("replicate", "failed")]
    assert "ConfigError" in rows[0]["summary"]
    assert alert_codes(root).count("E-SCHED-JOB-FAILED") == 2


# --- PostgreSQL ---------------------------------------------------------------------------------------------
def test_job_store_and_run_log_in_a_postgresql_catalog(tmp_path, monkeypatch, pg_schema_url):
    from urllib.parse import unquote

    from sqlalchemy import create_engine, inspect

    monkeypatch.setenv("PRESERVE_CATALOG_URL", pg_schema_url)
    root = tmp_path / "repo"
    Repository.init(root, offsite=False).close()
    make_due(root, "capacity")
    code, out = cli("scheduler", "run", "--once", "--json", "--repo", str(root))
    assert code == 0, out
    code, data = status_json(root)
    assert code == 0 and next(j for j in data["jobs"] if j["id"] == "capacity")["last_run"]["outcome"] == "ok"
    schema = unquote(pg_schema_url).rsplit("search_path=", 1)[1]
    engine = create_engine(pg_schema_url)
    try:
        tables = set(inspect(engine).get_table_names(schema=schema))
    finally:
        engine.dispose()
    assert {"scheduler_jobs", "scheduler_runs"} <= tables
    assert not (root / "catalog.sqlite").exists()
