"""The scheduler: audits, replication catch-up, off-site backups and checks, and capacity checks, run on time
without an officer (`preserve scheduler run`), and a report of what ran (`preserve scheduler status`).

Jobs (stable ids; derived at every start from the storage policy and preserve.toml [scheduler]):

    audit:<tier>    for each copy tier: repo.audit(tier, due=True, time_limit=audit_window); when the policy
                    has auto_repair and the audit found damage: repo.repair(tier=…)
    replicate       repo.replicate(): catch up under-replicated AIPs (waits for a replication already running)
    offsite-backup  repo.offsite_backup()          only when the policy has a restic tier
    offsite-check   repo.offsite_check()           only when the policy has a restic tier
    capacity        repo.tiers_status(): reachable, free space, missing AIPs (it alerts itself)
    restore-drill   repo.drill(sample=restore_drill_sample): a random sample restored from the off-site tier
                    into scratch space and verified; a failed drill alerts (E-DRILL-FAILED)

preserve.toml (every key optional; the defaults shown):

    [scheduler]
    audit = "cron: 0 1 * * *"          # every copy tier's due audit, nightly at 01:00
    audit_window = "5h"                # the audit starts no new replica after 5 h; the next night resumes
    replicate = "interval: 1h"
    offsite_backup = "cron: 0 23 * * *"
    offsite_check = "auto"             # interval = the restic tier's audit_interval / check_parts (180d/12 = 15d)
    capacity = "interval: 6h"
    restore_drill = "cron: 0 3 1 * *"  # monthly, 03:00 on the 1st
    restore_drill_sample = 5
    misfire_grace = "1h"               # a run that cannot start within this of its time is missed (alert)
    timezone = ""                      # empty: [repository] timezone (+07:00); or "Asia/Ho_Chi_Minh"

    [scheduler.tiers.offsite]          # per copy tier: audit and audit_window override the two above
    audit = "cron: 0 3 * * 0"          # Sundays at 03:00

A trigger is "cron: MIN HOUR DAY MONTH WEEKDAY" (standard crontab: weekday 0 or 7 = Sunday, names sun…sat;
when both day and weekday are restricted, both must match — APScheduler's rule, not crontab's "either"),
"interval: 1h" (durations 45s, 90m, 12h, 30d, 2w, 1d12h) or "off". Bad values are coded findings
(E-SCHED-TRIGGER, E-SCHED-VALUE; warnings W-SCHED-KEY-UNKNOWN, W-SCHED-AUDIT-OFF, W-SCHED-OFFSITE-CHECK-SLOW)
and the scheduler refuses to start (ConfigError, exit 2) on an error. Changes apply at the next start.

Storage: the APScheduler job store is the table `scheduler_jobs` in the catalog database (SQLite or
PostgreSQL: the catalog URL). The run log is the table `scheduler_runs` in the same database (see runlog.py):
one row per run with start, end, outcome (running, ok, findings, failed, interrupted, missed) and a short
bilingual summary.

Behaviour:
- Runs are coalesced (a job late by several periods runs once) and one instance per job runs at a time. A run
  that cannot start within misfire_grace of its time is not run late: it is recorded `missed` and raises
  W-SCHED-MISSED; the job then runs at its next time (a due audit catches up everything that is due).
- Restart: job ids are stable; at start the stored jobs are re-synced with the plan (replace_existing): a job
  whose trigger is unchanged keeps its next run time, a changed one is rescheduled, one no longer planned (a
  tier left the policy) is removed. A run the log shows `running` on this machine died with the process: it is
  marked `interrupted`, W-SCHED-INTERRUPTED is raised and the job runs once at once (unless its scheduled run
  is due now anyway). The audit resumes by itself: replicas verified before the kill are not due again.
- A job that fails (PreserveError, OSError, or anything unexpected, reported by APScheduler) is `failed` and
  raises E-SCHED-JOB-FAILED; one that returns not-ok is `findings` and raises W-SCHED-JOB-FINDINGS.
- Lock: one scheduler per repository, by flock on <repository>/state/scheduler.lock held for the scheduler's
  life; a second `preserve scheduler run` exits 2 ("another scheduler is running (PID …)"). The lock is per
  machine: do not run schedulers for one repository (one PostgreSQL catalog) on two machines.
- SIGINT/SIGTERM: no new runs start; running ones finish (an audit within its window), then the lock is
  released and the command exits 0. A second signal exits at once; the cut-off run resumes at the next start.

systemd unit (/etc/systemd/system/preserve-scheduler.service):

    [Unit]
    Description=preserve scheduler (audits, replication, off-site backups)
    After=network-online.target postgresql.service
    Wants=network-online.target

    [Service]
    Type=simple
    User=preserve
    Group=preserve
    Environment=PRESERVE_HOME=/srv/preserve
    ExecStart=/opt/preserve/.venv/bin/preserve scheduler run
    Restart=on-failure
    RestartSec=30s
    # SIGTERM lets running jobs finish; an audit stops within its window. After this, SIGKILL: the cut-off
    # run is run again at the next start.
    TimeoutStopSec=15min
    KillMode=mixed

    [Install]
    WantedBy=multi-user.target

    systemctl enable --now preserve-scheduler;  preserve scheduler status   (exit 1: look at it)
"""

from __future__ import annotations

from .jobs import run_job
from .plan import DEFAULTS, JobSpec, Plan, load_plan, make_plan, parse_trigger
from .runlog import RunLog
from .service import Service, scheduler_lock, set_next_run_time, status

__all__ = ["DEFAULTS", "JobSpec", "Plan", "RunLog", "Service", "load_plan", "make_plan", "parse_trigger", "run_job",
           "scheduler_lock", "set_next_run_time", "status"]
