"""Alert commands: alerts test (is mail / webhook delivery working?) and alerts list (the alert log, open problems)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from .common import EXIT_FINDINGS, EXIT_OK, JsonOpt, RepoOpt, SEVERITY_STYLE, emit_json, handled, out


def _open(repo: Optional[Path]):
    from ..repository import Repository
    from .common import repo_path

    return Repository.open(repo_path(repo))


def print_test(results: list[dict[str, Any]]) -> None:
    for r in results:
        if r["ok"]:
            out.print(f"[green]✓ đã gửi / delivered[/] {r['channel']}  [dim]{r['target']}[/]")
        else:
            out.print(f"[bold red]✗ lỗi / failed[/] {r['channel']}  [dim]{r['target']}[/]\n    {escape(r['error'])}\n"
                      f"    → Kiểm tra {r['check_vi']}\n    [dim]→ Check {r['check_en']}[/]")
    if not any(r["channel"] in ("mail", "webhook") for r in results):
        out.print("  Chưa cấu hình thư hay webhook: chỉ ghi nhật ký cảnh báo / no mail or webhook configured: only "
                  "the alert log.\n  → Thêm [bold][alerts.mail][/] hoặc [bold][alerts.webhook][/] vào preserve.toml "
                  "/ add one to preserve.toml.")


def print_log(rows: list[dict[str, Any]]) -> None:
    for a in rows:
        style = SEVERITY_STYLE.get(a.get("severity", ""), "bold red")
        place = " ".join(x for x in (a.get("tier"), a.get("aip")) if x)
        out.print(f"[dim]{a.get('at', '')}[/] [{style}]{a.get('code', '?')}[/] {a.get('kind', 'alert')}  "
                  f"[bold]{place or a.get('where', '')}[/]")
        out.print(f"    {escape(a.get('message_vi', ''))}\n    [dim]{escape(a.get('message_en', ''))}[/]")
        if a.get("kind") == "delivery-failed" and a.get("hint_vi"):
            out.print(f"    → {escape(a['hint_vi'])}\n    [dim]→ {escape(a.get('hint_en', ''))}[/]")
    if not rows:
        out.print("Chưa có cảnh báo / no alerts.")


def print_open(rows: list[dict[str, Any]]) -> None:
    for p in rows:
        style = SEVERITY_STYLE.get(p["severity"], "bold red")
        place = " ".join(x for x in (p.get("tier"), p.get("aip")) if x)
        sent = ", ".join(sorted(p.get("sent", {}))) or "-"
        failed = ", ".join(sorted(p.get("failed", {})))
        out.print(f"[{style}]{p['code']}[/]  [bold]{place or p['where']}[/]  từ / since {p['first_seen']}, "
                  f"{p['count']} lần / times, gần nhất / last {p['last_seen']}")
        out.print(f"    {escape(p['message_vi'])}\n    [dim]{escape(p['message_en'])}[/]")
        out.print(f"    [dim]đã gửi / sent: {sent}[/]" + (f"  [red]lỗi gửi / failed: {failed}[/]" if failed else ""))
    if not rows:
        out.print("[green]Không có sự cố đang mở / no open problems.[/]")


def register(app: typer.Typer) -> None:
    alerts_app = typer.Typer(no_args_is_help=True, help="Cảnh báo / alerts: mail, webhook and the alert log.")
    app.add_typer(alerts_app, name="alerts")

    @alerts_app.command("test")
    def alerts_test(repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Send a test message (I-ALERT-TEST) on every configured channel, whatever its minimum severity.
        Exit 0 when every channel delivered, 1 when one failed (the error says what to check)."""
        with handled():
            with _open(repo) as r:
                results = r.alerter().test()
        emit_json({"ok": all(x["ok"] for x in results), "channels": results}) if json_ else print_test(results)
        raise typer.Exit(EXIT_OK if all(x["ok"] for x in results) else EXIT_FINDINGS)

    @alerts_app.command("list")
    def alerts_list(open_: bool = typer.Option(False, "--open", help="Only the problems still open."),
                    repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """The alert log, newest last (alerts, repeats, reminders, resolutions, delivery failures, tests), or
        with --open the problems raised and not resolved yet."""
        from ..alerts import read_alerts

        with handled():
            with _open(repo) as r:
                alerter = r.alerter()
                rows = alerter.open_problems() if open_ else read_alerts(alerter.log_path)
        if json_:
            emit_json(rows)
        else:
            print_open(rows) if open_ else print_log(rows)
