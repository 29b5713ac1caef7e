"""Recovery commands: `preserve restore`, `preserve catalog rebuild|compare`, `preserve drill`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from ..errors import UsageError
from ..findings import Finding
from .common import EXIT_FINDINGS, JsonOpt, RepoOpt, RichProgress, emit_json, handled, open_repo, out

MARK = {"restored": "[green]✓ khôi phục / restored[/]", "present": "[green]✓ đã có / present[/]",
        "failed": "[bold red]✗ LỖI / FAILED[/]"}


def print_restore(d: dict[str, Any]) -> None:
    for a in d["aips"]:
        out.print(f"{MARK[a['status']]}  {a['aip']}  [dim]{a['path']}[/]\n    {escape(a['detail'])}")
        for f in a["findings"][:10]:
            out.print(f"    [red]{f['code']}[/] {escape(f['message_vi'])}\n      [dim]{escape(f['message_en'])}[/]")
        if a.get("problem"):
            hint = Finding.from_dict(a["problem"])
            out.print(f"    [bold red]{a['problem']['code']}[/] → {escape(hint.hint('vi') or '')}\n"
                      f"      [dim]→ {escape(hint.hint('en') or '')}[/]")
    out.print(f"Khôi phục / restored: {d['restored']}, đã có / present: {d['present']}, lỗi / failed: {d['failed']} "
              f"({d['bytes']:,} bytes) từ / from {d['from']} → {d['into']}")
    if d["failed"]:
        out.print("  → Khôi phục các AIP lỗi từ một tầng khác / restore the failed ones from another tier: "
                  "preserve restore --from OTHER --aip ID ...")
    elif d["ok"] and not all(a["catalog"] for a in d["aips"]):
        out.print("  → Tiếp theo / next: [bold]preserve catalog rebuild --from TIER[/] (these AIPs are not in the "
                  "catalog), then [bold]preserve replicate[/] and [bold]preserve audit --all[/]")


def print_rebuild(d: dict[str, Any]) -> None:
    ev = d["events"]
    log = d["eventlog"] or {}
    where = log.get("snapshot") and f"snapshot {log['snapshot'][:8]} of {log['tier']}" or log.get("folder") or "-"
    out.print(f"Danh mục dựng lại / catalog rebuilt from {d['from']}: {d['registered']} AIP")
    out.print(f"    sự kiện / events: {ev.get('imported', 0)} from the event log backup ({where}), "
              f"{ev.get('from_aips', 0)} more from inside the AIPs, {ev.get('recovery', 0)} from restores")
    out.print("    bản sao tìm thấy / replicas found: " + ", ".join(f"{t}: {n}" for t, n in d["replicas"].items()))
    if d["access"]:
        out.print("    khai thác / access tables: " + ", ".join(f"{t}: {n}" for t, n in d["access"].items()))
    if d["tiers_set_up"]:
        out.print(f"    tầng được tạo lại (trống) / tiers set up again, empty: {', '.join(d['tiers_set_up'])}")
    for f in d["problems"]:
        style = "yellow" if f["severity"] == "warning" else "bold red"
        out.print(f"[{style}]{f['code']}[/] {escape(f['message_vi'])}\n    [dim]{escape(f['message_en'])}[/]")
        finding = Finding.from_dict(f)
        for lang in ("vi", "en"):
            if finding.hint(lang):
                out.print(f"    → {escape(finding.hint(lang))}")
    out.print("  → Tiếp theo / next: [bold]preserve replicate[/] then [bold]preserve audit --all[/] (the scans are "
              "verified there)")


def register(app: typer.Typer) -> None:
    @app.command()
    def restore(source: str = typer.Option(..., "--from", help="The tier to restore from (any kind, restic too)."),
                aip: Optional[list[str]] = typer.Option(None, "--aip", help="An AIP id (repeatable)."),
                all_: bool = typer.Option(False, "--all", help="Every AIP the tier holds."),
                into: Optional[str] = typer.Option(None, "--into", help="A tier to rebuild (created if its folder "
                                                   "inside the repository is gone)."),
                to: Optional[Path] = typer.Option(None, "--to", help="A plain folder instead."),
                repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Restore AIPs from a tier, every byte verified (manifests, signature, and the catalog's digests when
        there is a catalog). Works without a catalog. Exit 0 only when every AIP verified."""
        with handled():
            if bool(aip) == all_:
                raise UsageError("Nêu --aip ID hoặc --all / Name --aip ID (repeatable) or --all.",
                                 hint="preserve restore --from offsite --all --into primary")
            with open_repo(repo) as r:
                res = r.restore(source, aip or None, into=into, to=to, progress=RichProgress(not json_))
        d = res.to_dict()
        emit_json(d) if json_ else print_restore(d)
        if not res.ok:
            raise typer.Exit(EXIT_FINDINGS)

    catalog_app = typer.Typer(help="The catalog: rebuild it from a tier, compare two (Danh mục).",
                              no_args_is_help=True)
    app.add_typer(catalog_app, name="catalog")

    @catalog_app.command("rebuild")
    def rebuild(source: str = typer.Option(..., "--from", help="The tier whose AIPs rebuild it."),
                eventlog: Optional[Path] = typer.Option(None, "--eventlog", help="A folder with an exported event "
                                                        "log (events.jsonl), instead of the newest off-site one."),
                repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Rebuild the (empty) catalog from the AIPs on one tier, the event log backup and the replicas found on
        the other tiers. Exit 1 when an AIP could not be registered or the log backup is broken."""
        with handled(), open_repo(repo) as r:
            res = r.rebuild_catalog(source, eventlog, progress=RichProgress(not json_))
        d = res.to_dict()
        emit_json(d) if json_ else print_rebuild(d)
        if not res.ok:
            raise typer.Exit(EXIT_FINDINGS)

    @catalog_app.command("compare")
    def compare(other: str = typer.Option(..., "--with", help="The other catalog: a URL (sqlite:///…, "
                                          "postgresql+psycopg://…) or a SQLite file."),
                repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """List every difference between another catalog (the reference) and this one. Exit 1 when they differ."""
        url = other if "://" in other else f"sqlite:///{Path(other).resolve()}"
        with handled():
            if "://" not in other and not Path(other).is_file():
                raise UsageError(f"{other} is not a file or a catalog URL.",
                                 hint="Give the SQLite file of the other catalog, or its URL.")
            with open_repo(repo) as r:
                d = r.compare_catalog(url)
        if json_:
            emit_json(d)
        else:
            for x in d["differences"]:
                out.print(f"[red]≠[/] {escape(x['where'])}\n    --with: {escape(repr(x['a']))}\n"
                          f"    this:   {escape(repr(x['b']))}")
            added = ", ".join(f"{t}: {n}" for t, n in sorted(d["added_events"].items())) or "-"
            out.print(("[green]Giống nhau / equal[/]" if d["equal"] else f"[bold red]{d['total']} khác biệt / "
                       "differences[/]") + f"; sự kiện mới hơn / later events: {added}")
        if not d["equal"]:
            raise typer.Exit(EXIT_FINDINGS)

    @app.command()
    def drill(source: Optional[str] = typer.Option(None, "--from", help="The tier (default: the off-site one)."),
              sample: Optional[int] = typer.Option(None, "--sample", help="How many AIPs (default 5)."),
              repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """A restore drill: restore a random sample into scratch space, verify every byte, record it, clean up.
        Exit 1 (and an alert) when it fails."""
        with handled(), open_repo(repo) as r:
            d = r.drill(source, sample, progress=RichProgress(not json_))
        if json_:
            emit_json(d)
        else:
            for a in d["aips"]:
                out.print(f"{MARK.get(a['status'], a['status'])}  {a['aip']}  {a['bytes']:,} bytes\n"
                          f"    {escape(a['detail'])}")
            verdict = "[green]ĐẠT / PASSED[/]" if d["ok"] else "[bold red]KHÔNG ĐẠT / FAILED[/]"
            out.print(f"Diễn tập khôi phục / restore drill from {d['tier']}: {verdict}, {d['sample']} of {d['held']} "
                      f"AIP(s), {d['seconds']} s; scratch space removed: {d['cleaned'] if 'cleaned' in d else '-'}")
            if d.get("problem"):
                p = d["problem"]
                out.print(f"    [red]{p['code']}[/] {escape(p['message_vi'])}\n    [dim]{escape(p['message_en'])}[/]")
        if not d["ok"]:
            raise typer.Exit(EXIT_FINDINGS)
