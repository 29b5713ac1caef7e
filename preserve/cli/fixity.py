"""Audit and repair commands: `preserve audit`, `preserve repair`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from .common import EXIT_FINDINGS, EXIT_OK, EXIT_ERROR, JsonOpt, RepoOpt, RichProgress, emit_json, handled, out


def _open(repo: Optional[Path]):
    from ..repository import Repository
    from .common import repo_path

    return Repository.open(repo_path(repo))


def _seconds(text: Optional[str]) -> Optional[float]:
    if text is None:
        return None
    from ..errors import UsageError
    from ..policy import parse_duration

    try:
        return parse_duration(text).total_seconds()
    except ValueError:
        raise UsageError(f"--time-limit {text!r} is not a duration.", hint="Write it like 45s, 90m, 6h or 1d12h.") \
            from None


def print_audit(data: dict) -> None:
    for tier, t in data["tiers"].items():
        verdict = "[green]nguyên vẹn / intact[/]" if t["damaged"] + t["missing"] == 0 else "[bold red]HƯ HỎNG / DAMAGED[/]"
        out.print(f"{tier}: {t['replicas']} bản sao / replicas, {t['intact']} intact, {t['damaged']} damaged, "
                  f"{t['missing']} missing; {t['files']} files, {t['bytes']:,} bytes — {verdict}")
    for a in data["problems"]:
        out.print(f"[bold red]✗[/] {a['fileCode']} ({a['aip']}) on {a['tier']}: {a['outcome']}")
        for f in a["findings"][:20]:
            out.print(f"    [red]{f['code']}[/] {escape(f['message_vi'])}\n      [dim]{escape(f['message_en'])}[/]")
        out.print(f"    → [bold]preserve repair --aip {a['aip']} --tier {a['tier']}[/]")
    for u in data["unreachable"]:
        out.print(f"[bold red]KHÔNG KẾT NỐI ĐƯỢC / UNREACHABLE[/] {u['tier']}: {escape(u['reason'])}")
    for c in data["offsite_checks"]:
        out.print(f"{c['tier']}: restic check --read-data-subset {c['subset']}: "
                  + ("[green]ok[/]" if c["ok"] else "[bold red]ERRORS[/]"))
    speed = f", {data['throughput_mib_s']} MiB/s" if data.get("throughput_mib_s") else ""
    out.print(f"Đã kiểm tra / audited: {data['replicas']} bản sao / replicas in {data['seconds']} s{speed}; "
              f"hư hỏng / damaged: {data['damaged']}")
    if data["stopped_early"]:
        out.print(f"  Dừng do hết thời gian / time limit reached: {data['remaining']} left for the next run "
                  "(it resumes where this one stopped).")


def register(app: typer.Typer) -> None:
    @app.command()
    def audit(tier: Optional[str] = typer.Option(None, "--tier", help="Only this tier."),
              aip: Optional[list[str]] = typer.Option(None, "--aip", help="Only this AIP (repeatable)."),
              due: bool = typer.Option(False, "--due", help="Only replicas due under their tier's audit interval "
                                                            "(the default)."),
              all_: bool = typer.Option(False, "--all", help="Every replica, due or not."),
              time_limit: Optional[str] = typer.Option(None, "--time-limit", help="Stop cleanly after this long "
                                                                                  "(e.g. 6h); the next run resumes."),
              report: Optional[Path] = typer.Option(None, "--report", help="Also write an HTML report here."),
              repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Re-read every byte of the replicas and verify manifests, catalog digests and signatures.
        Exit 0 all intact, 1 damage found, 2 the audit could not run (e.g. a tier unreachable)."""
        if due and all_:
            out.print("[red]--due and --all exclude each other.[/]")
            raise typer.Exit(EXIT_ERROR)
        with handled():
            limit = _seconds(time_limit)
            with _open(repo) as r:
                res = r.audit(tier, aip or None, due=not all_, time_limit=limit, progress=RichProgress(not json_))
                data = res.to_dict()
                if report is not None:
                    from ..fixity.report import write_report

                    write_report(report, data, r.settings.organisation, r.root)
        emit_json(data) if json_ else print_audit(data)
        if report is not None and not json_:
            out.print(f"  báo cáo / report: {report}")
        raise typer.Exit(EXIT_ERROR if data["unreachable"] else EXIT_OK if data["ok"] else EXIT_FINDINGS)

    @app.command()
    def repair(aip: Optional[list[str]] = typer.Option(None, "--aip", help="Only this AIP (repeatable)."),
               tier: Optional[str] = typer.Option(None, "--tier", help="Only this tier."),
               repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Replace damaged or missing replicas from a copy verified in the same run, then verify them.
        Exit 0 when every repair succeeded, 1 when one failed or no good copy exists."""
        with handled():
            with _open(repo) as r:
                res = r.repair(aip or None, tier)
        data = res.to_dict()
        if json_:
            emit_json(data)
        else:
            for x in data["repairs"]:
                mark = "[green]✓[/]" if x["status"] == "repaired" else "[bold red]✗[/]"
                out.print(f"{mark} {x['fileCode']} ({x['aip']}) on {x['tier']}: {x['status']}  [dim]{escape(x['detail'])}[/]")
            out.print(f"Đã sửa / repaired: {data['repaired']}, lỗi / failed: {data['failed']}, "
                      f"không có bản tốt / no good copy: {data['no-source']}"
                      + ("" if data["repairs"] else " — nothing to repair / không có gì cần sửa"))
        raise typer.Exit(EXIT_OK if res.ok else EXIT_FINDINGS)
