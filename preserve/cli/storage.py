"""Storage commands: replicate, tiers status, offsite backup|check, policy check."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..policy import format_bytes
from .common import EXIT_FINDINGS, EXIT_OK, JsonOpt, RepoOpt, RichProgress, emit_json, handled, out, print_findings


def _open(repo: Optional[Path]):
    from ..repository import Repository
    from .common import repo_path

    return Repository.open(repo_path(repo))


def print_replication(data: dict) -> None:
    for c in data["copies"]:
        mark = "[red]✗[/]" if c["status"] == "failed" else "[green]✓[/]"
        out.print(f"{mark} {c['fileCode']} → {c['tier']}: {c['status']}  [dim]{escape(c['detail'])}[/]")
    for a in data["alerts"]:
        out.print(f"[bold red]CẢNH BÁO / ALERT {a['code']}[/] {escape(a['message_vi'])}\n    [dim]{escape(a['message_en'])}[/]")
    under = data["under_replicated"]
    out.print(f"Sao chép / copied: {data['copied']}, nhận lại / adopted: {data['adopted']}, "
              f"lỗi / failed: {data['failed']}; AIP thiếu bản sao / under-replicated: {len(under)}")
    if under:
        out.print("  → Khi tầng lưu trữ hoạt động trở lại, chạy [bold]preserve replicate[/] / "
                  "when the tier is back, run [bold]preserve replicate[/].")


def register(app: typer.Typer) -> None:
    @app.command()
    def replicate(aip: Optional[list[str]] = typer.Option(None, "--aip", help="Only this AIP (repeatable)."),
                  tier: Optional[str] = typer.Option(None, "--tier", help="Only this tier."),
                  repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Catch up every under-replicated AIP: copy, read back, record. Safe to run again (idempotent).
        Exit 0 when every copy is in place, 1 when some copy failed."""
        with handled():
            with _open(repo) as r:
                res = r.replicate(aip or None, tier, progress=RichProgress(not json_))
        data = res.to_dict()
        emit_json(data) if json_ else print_replication(data)
        raise typer.Exit(EXIT_OK if res.ok and not data["under_replicated"] else EXIT_FINDINGS)

    tiers_app = typer.Typer(no_args_is_help=True, help="Storage tiers.")
    app.add_typer(tiers_app, name="tiers")

    @tiers_app.command("status")
    def tiers_status(repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Each tier: kind, reachable, AIPs held, bytes, free space, AIPs missing per policy.
        Exit 1 when a copy tier is unreachable, short of space or missing AIPs."""
        from rich.table import Table

        with handled():
            with _open(repo) as r:
                rows = r.tiers_status()
        bad = any(x["copy_tier"] and (not x["reachable"] or x["missing"] or x["low_space"]) for x in rows)
        if json_:
            emit_json(rows)
            raise typer.Exit(EXIT_FINDINGS if bad else EXIT_OK)
        t = Table("Tầng / tier", "Loại / kind", "Kết nối / reachable", "AIP", "Bytes", "Còn trống / free",
                  "Thiếu / missing")
        for x in rows:
            reach = "[green]có / yes[/]" if x["reachable"] else f"[bold red]KHÔNG / NO[/] {escape(x['reason'])}"
            free = format_bytes(x["free"]) + (" [bold red](thấp / low)[/]" if x["low_space"] else "")
            missing = "-" if x["missing"] is None else (f"[red]{x['missing']}[/]" if x["missing"] else "0")
            t.add_row(x["tier"] + ("" if x["copy_tier"] else " (ngoài chính sách / not in policy)"), x["kind"],
                      reach, "?" if x["aips"] is None else str(x["aips"]), format_bytes(x["bytes"]), free, missing)
        out.print(t)
        if bad:
            out.print("  → Gắn lại / kiểm tra tầng lỗi rồi chạy [bold]preserve replicate[/] / "
                      "fix the tier, then run [bold]preserve replicate[/].")
        raise typer.Exit(EXIT_FINDINGS if bad else EXIT_OK)

    @tiers_app.command("init")
    def tiers_init(name: str = typer.Argument(..., help="A tier declared in preserve.toml."),
                   repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Set up a new, empty tier: create its folder (local: under a mounted disk) and its marker, or the
        restic repository. Then `preserve replicate` fills it."""
        with handled():
            with _open(repo) as r:
                data = r.init_tier(name)
        if json_:
            emit_json(data)
            return
        out.print(f"[green]Đã khởi tạo tầng / tier ready:[/] {name} ({data['location']})")
        if data["missing"]:
            out.print(f"  {data['missing']} bản sao không còn trên tầng này, đánh dấu thiếu / copies the catalog had "
                      "there are not on it: marked missing")
        out.print("  next: [bold]preserve replicate[/]")

    offsite_app = typer.Typer(no_args_is_help=True, help="The encrypted off-site copy (restic).")
    app.add_typer(offsite_app, name="offsite")

    @offsite_app.command("backup")
    def offsite_backup(repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Back up what the off-site tier lacks (incremental), and the event log. Exit 1 if a copy failed."""
        with handled():
            with _open(repo) as r:
                data = r.offsite_backup(progress=RichProgress(not json_))
        if json_:
            emit_json(data)
        else:
            print_replication(data["replication"])
            for s in data["eventlog"]:
                out.print(f"  nhật ký sự kiện / event log → {s['tier']}: snapshot {s.get('snapshot')} "
                          f"({s.get('events')} events)")
        raise typer.Exit(EXIT_OK if data["ok"] else EXIT_FINDINGS)

    @offsite_app.command("check")
    def offsite_check(subset: Optional[str] = typer.Option(None, "--read-data-subset",
                                                           help="n/t: read part n of t (default: the next part "
                                                                "of the policy's rotation)."),
                      repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """`restic check` with a rotating data subset: over the policy's cycle every pack is read.
        Exit 1 when restic reports damage."""
        with handled():
            with _open(repo) as r:
                data = r.offsite_check(subset)
        if json_:
            emit_json(data)
        else:
            for c in data["checks"]:
                verdict = "[green]nguyên vẹn / intact[/]" if c["ok"] else "[bold red]LỖI / DAMAGED[/]"
                days = c["check_every_seconds"] / 86400
                out.print(f"{c['tier']}: read-data-subset {c['subset']}: {verdict}  "
                          f"(cycle: {c['parts_done']}/{c['parts']} parts read; next {c['next']}, due within "
                          f"{days:.0f} days / phần kế tiếp trong vòng {days:.0f} ngày)")
                if c.get("cycle_late"):
                    out.print("    [bold red]CẢNH BÁO / ALERT[/] the cycle is late: run checks more often / "
                              "vòng kiểm tra bị trễ: cần kiểm tra thường xuyên hơn")
                for e in c.get("errors", [])[:20]:
                    out.print(f"    {e}")
        raise typer.Exit(EXIT_OK if data["ok"] else EXIT_FINDINGS)

    policy_app = typer.Typer(no_args_is_help=True, help="Storage policies.")
    app.add_typer(policy_app, name="policy")

    @policy_app.command("check")
    def policy_check(name: Optional[str] = typer.Argument(None, help="Policy name or YAML file "
                                                                     "(default: the one in preserve.toml)."),
                     repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Load and validate a storage policy against the tiers of preserve.toml. Exit 1 on errors."""
        from ..policy import load_policy, shipped_policies_dir

        with handled():
            with _open(repo) as r:
                pname = name or (r.settings.data.get("policy") or {}).get("name") or "default"
                policy, findings = load_policy(pname, r.settings.tiers,
                                               [r.root / "storage_policies", shipped_policies_dir()])
        data = {"policy": pname, "valid": policy is not None and not any(f.is_error for f in findings),
                "findings": [f.to_dict() for f in findings], "summary": policy.to_dict() if policy else None}
        if json_:
            emit_json(data)
        else:
            print_findings(data["findings"])
            if policy is not None:
                out.print(f"[bold]{policy.name}[/]: copies on {', '.join(policy.copy_tiers)}; required "
                          f"{policy.copies_required}, alert below {policy.copies_minimum}; verify after write: "
                          f"{policy.verify_after_write}; automatic repair: {policy.auto_repair}")
            out.print("[green]HỢP LỆ / VALID[/]" if data["valid"] else "[bold red]KHÔNG HỢP LỆ / INVALID[/]")
        raise typer.Exit(EXIT_OK if data["valid"] else EXIT_FINDINGS)
