"""Scheduler commands: `preserve scheduler run [--once]` and `preserve scheduler status [--json]`."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Optional

import typer

from .common import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, JsonOpt, RepoOpt, emit_json, err, handled, out

OUTCOME_STYLE = {"ok": "green", "findings": "yellow", "failed": "bold red", "missed": "bold red",
                 "interrupted": "yellow", "running": "cyan"}


def _load(repo: Optional[Path]) -> tuple[Any, Any]:
    """(settings, plan), validated; the Repository is closed again (jobs open their own)."""
    from ..repository import Repository
    from ..schedule import load_plan
    from .common import repo_path

    with Repository.open(repo_path(repo)) as r:
        return r.settings, load_plan(r)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record is emitted (not the one at creation)."""

    _preserve_scheduler = True

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _log_to_stderr() -> None:
    """The scheduler's own log (job start/end, alerts) on stderr: journald keeps it under systemd. Once per
    process (a test may run the command many times)."""
    preserve_log = logging.getLogger("preserve")
    if any(getattr(h, "_preserve_scheduler", False) for h in preserve_log.handlers):
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    preserve_log.addHandler(handler)
    preserve_log.setLevel(logging.INFO)
    aps = logging.getLogger("apscheduler")
    aps.addHandler(handler)
    aps.setLevel(logging.WARNING)


def _foreground(service: Any) -> None:
    """Run until SIGINT/SIGTERM; then let running jobs finish. A second signal exits at once."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            err.print("[red]Dừng ngay / stopping now[/]: the cut-off run is run again at the next start.")
            os._exit(EXIT_ERROR)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        service.start()
        err.print(f"Bộ lập lịch đang chạy / scheduler running (PID {os.getpid()}); Ctrl-C or SIGTERM to stop.")
        while not stop.wait(0.2):
            pass
        err.print("Đang dừng / stopping: waiting for running jobs to finish (signal again to stop now) …")
        service.stop(wait=True)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _print_status(data: dict[str, Any]) -> None:
    """One block per job (reads well in a narrow terminal): id and trigger, then last run, then next run."""
    from rich.markup import escape

    sch = data["scheduler"]
    state = (f"[green]đang chạy / running[/] (PID {sch['pid']})" if sch["running"]
             else "[bold red]không chạy / not running[/]")
    out.print(f"Bộ lập lịch / scheduler: {state}")
    for j in data["jobs"]:
        mark = "[green]✓[/]" if j["ok"] else "[bold red]✗[/]"
        out.print(f"{mark} [bold]{escape(j['id'])}[/]  {escape(j['trigger'])}")
        last = j["last_run"]
        if last:
            out.print(f"    lần chạy cuối / last run: {last['started_at']} → {last['finished_at'] or '…'}  "
                      f"{_styled(last['outcome'])}")
            if last["summary"]:
                out.print(f"    [dim]{escape(last['summary'])}[/]")
        else:
            out.print("    lần chạy cuối / last run: -")
        if j["interrupted"]:
            out.print(f"    {_styled('interrupted')}: lần chạy từ {j['running']['started_at']} bị dừng giữa chừng, sẽ "
                      "chạy lại khi khởi động / the run started then was cut off; it runs again at the next start")
        elif j["running"]:
            out.print(f"    {_styled('running')}: đang chạy từ / since {j['running']['started_at']}")
        nxt = escape(j["next_run"]) if j["next_run"] else "[bold red]chưa lên lịch / not scheduled[/]"
        late = "  [bold red]TRỄ / OVERDUE[/]" if j["overdue"] else ""
        out.print(f"    lần tới / next run: {nxt}{late}")
    if data["stale_jobs"]:
        out.print(f"Việc cũ, bị xóa khi khởi động lại / stale jobs, removed at the next start: "
                  f"{escape(', '.join(data['stale_jobs']))}")
    if not data["ok"]:
        out.print("  → Xem cảnh báo (alerts.log); khởi động bộ lập lịch nếu nó không chạy / see the alert log; "
                  "start the scheduler ([bold]preserve scheduler run[/]) if it is not running.")


def _styled(outcome: str) -> str:
    style = OUTCOME_STYLE.get(outcome)
    return f"[{style}]{outcome}[/]" if style else outcome


def register(app: typer.Typer) -> None:
    sched_app = typer.Typer(no_args_is_help=True, help="Bộ lập lịch / the scheduler: audits, replication, backups.")
    app.add_typer(sched_app, name="scheduler")

    @sched_app.command("run")
    def run(once: bool = typer.Option(False, "--once", help="Run what is due now (and runs cut off by a crash), "
                                                             "wait for them, then exit: for cron or a test."),
            repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Run the scheduler in the foreground until SIGINT/SIGTERM (one per repository: a second exits 2).
        With --once: exit 0 when every run was ok, 1 otherwise."""
        from rich.markup import escape

        from ..schedule import Service, scheduler_lock

        _log_to_stderr()
        with handled():
            settings, plan = _load(repo)
            for f in plan.findings:  # warnings only (errors stopped _load); on stderr: --json stays clean
                logging.getLogger("preserve.scheduler").warning("%s %s: %s / %s", f.code, f.where, f.message_vi,
                                                                f.message_en)
            with scheduler_lock(settings.root):
                service = Service(settings, plan)
                if not once:
                    _foreground(service)
                    raise typer.Exit(EXIT_OK)
                rows = service.run_once()
        if json_:
            emit_json({"runs": rows})
        else:
            for r in rows:
                out.print(f"{r['job_id']}: {_styled(r['outcome'])}  {escape(r['summary'])}")
            if not rows:
                out.print("Không có việc đến hạn / nothing is due.")
        raise typer.Exit(EXIT_OK if all(r["outcome"] == "ok" for r in rows) else EXIT_FINDINGS)

    @sched_app.command("status")
    def status_cmd(repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Each job: trigger, last run (start, end, outcome, summary), next run, overdue. Exit 1 when a last run
        failed, found problems or was missed, or a job is overdue or not scheduled."""
        from ..schedule import status

        with handled():
            settings, plan = _load(repo)
            data = status(settings, plan)
        emit_json(data) if json_ else _print_status(data)
        raise typer.Exit(EXIT_OK if data["ok"] else EXIT_FINDINGS)
