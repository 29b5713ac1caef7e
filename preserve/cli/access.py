"""Access commands: `preserve access request|approve|deny|make|show|list|log`."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.markup import escape

from .common import EXIT_FINDINGS, JsonOpt, RepoOpt, RichProgress, emit_json, err, handled, open_repo, out

STATUS_TEXT = {"approved": "[green]đã duyệt / approved[/]", "pending": "[yellow]chờ duyệt / pending[/]",
               "refused": "[bold red]bị từ chối / refused[/]", "denied": "[bold red]không duyệt / denied[/]",
               "expired": "[dim]hết hạn / expired[/]"}


@contextmanager
def refusals(json_: bool) -> Iterator[None]:
    """An action the access rules refuse: the reason (already in the access log) and exit 1."""
    from ..access.requests import AccessRefused

    try:
        yield
    except AccessRefused as e:
        f = e.finding
        if json_:
            req = e.request or {}
            emit_json({"id": req.get("id"), "status": "refused", "reason": f"{f.code}: {escape(f.message_vi)} / "
                       f"{escape(f.message_en)}", "code": f.code, "request": req or None})
        else:
            err.print(f"[bold red]Bị từ chối / Refused:[/] {f.code}\n    {escape(f.message_vi)}\n"
                      f"    [dim]{escape(f.message_en)}[/]")
            for lang in ("vi", "en"):
                if f.hint(lang):
                    err.print(f"    → {escape(f.hint(lang))}")
        raise typer.Exit(EXIT_FINDINGS)


def print_request(q: dict[str, Any]) -> None:
    out.print(f"[bold]{q['id']}[/]  {STATUS_TEXT.get(q['status'], q['status'])}  {q['user']} → "
              f"{q['target']['kind']} {q['target']['code']}  ({q['level']})")
    out.print(f"    mục đích / purpose: {q['purpose']}")
    out.print(f"    {escape(q['reason'])}")
    if q.get("decidedBy") and q["decidedBy"] != "rules":
        out.print(f"    quyết định / decided by {q['decidedBy']} {q['decidedAt']}")
    out.print(f"    hạn / valid until: {q['expires']}; bản sao đã cấp / copies made: {q['copies']}")


def register(app: typer.Typer) -> None:
    access_app = typer.Typer(help="Requests for access copies, approvals, DIPs and the access log (Khai thác).",
                             no_args_is_help=True)
    app.add_typer(access_app, name="access")

    @access_app.command("request")
    def request(doc: Optional[str] = typer.Option(None, "--doc", help="Document code (mã tài liệu)."),
                dossier: Optional[str] = typer.Option(None, "--dossier", help="Dossier code (mã hồ sơ): all of it."),
                user: str = typer.Option(..., "--user", help="Who asks (a user name)."),
                purpose: str = typer.Option(..., "--purpose", help="What the copy is for (mục đích khai thác)."),
                days: Optional[int] = typer.Option(None, "--days", help="Valid for N days (default: preserve.toml "
                                                   "[access] request_days)."),
                repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Ask for a copy. Open records are approved at once; others wait for an archivist; refusals say why.
        Exit 1 when refused."""
        with handled(), open_repo(repo) as r:
            res = r.access_requests().request(user, purpose, doc=doc, dossier=dossier, days=days)
        if json_:
            emit_json(res)
        else:
            out.print(f"[bold]{res['id']}[/]  {STATUS_TEXT[res['status']]}\n    {escape(res['reason'])}")
            if res["status"] == "approved":
                out.print(f"    → preserve access make {res['id']} --out DIR")
            elif res["status"] == "pending":
                out.print(f"    → preserve access approve {res['id']} --by ARCHIVIST --reason TEXT")
        if res["status"] == "refused":
            raise typer.Exit(EXIT_FINDINGS)

    def _decide(request_id: str, by: str, reason: Optional[str], approve: bool, repo, json_: bool) -> None:
        with handled(), refusals(json_), open_repo(repo) as r:
            reqs = r.access_requests()
            res = reqs.approve(request_id, by, reason) if approve else reqs.deny(request_id, by, reason)
        emit_json(res) if json_ else print_request(res)

    @access_app.command("approve")
    def approve(request_id: str, by: str = typer.Option(..., "--by", help="The archivist deciding."),
                reason: Optional[str] = typer.Option(None, "--reason", help="Why (kept with the decision; "
                                                     "required for a record of conditional use)."),
                repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Approve a pending request (archivists and admins; not one's own). Exit 1 when refused."""
        _decide(request_id, by, reason, True, repo, json_)

    @access_app.command("deny")
    def deny(request_id: str, by: str = typer.Option(..., "--by", help="The archivist deciding."),
             reason: Optional[str] = typer.Option(None, "--reason", help="Why (shown to the reader)."),
             repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Deny a pending request, with the reason. Exit 1 when refused."""
        _decide(request_id, by, reason, False, repo, json_)

    @access_app.command("make")
    def make(request_id: str, out_dir: Path = typer.Option(..., "--out", help="Folder for the DIP zip."),
             images: Optional[int] = typer.Option(None, "--images", help="Also page images at this DPI (50–600)."),
             by: Optional[str] = typer.Option(None, "--by", help="The archivist making it (default: the officer "
                                              "at this terminal)."),
             repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Make the access copy (DIP) of an approved request from a copy of the AIP verified now: one .zip of
        watermarked PDFs, METS.xml and README.txt. Exit 1 when refused."""
        with handled(), refusals(json_), open_repo(repo) as r:
            res = r.make_access_copy(request_id, out_dir, by=by, images_dpi=images, progress=RichProgress(not json_))
        if json_:
            emit_json(res)
            return
        out.print(f"[green]Đã tạo bản sao / access copy made:[/] [bold]{res['zip']}[/]")
        out.print(f"    {res['pages']} trang / pages, {len(res['files'])} tệp / files; dấu bản sao / watermark: "
                  f"{res['watermark']}; từ / from AIP {res['aip']} v{res['aipVersion']} ({res['tier']}, vừa kiểm "
                  "tra / just verified)")

    @access_app.command("show")
    def show(request_id: str, repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """One request."""
        with handled(), open_repo(repo) as r:
            res = r.access_requests().get(request_id)
        emit_json(res) if json_ else print_request(res)

    @access_app.command("list")
    def list_(user: Optional[str] = typer.Option(None, "--user"),
              status: Optional[str] = typer.Option(None, "--status", help="pending | approved | refused | denied "
                                                   "| expired"),
              repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Requests, oldest first (archivists: `--status pending` is the queue to decide)."""
        with handled(), open_repo(repo) as r:
            rows = r.access_requests().list(user, status)
        if json_:
            emit_json({"requests": rows})
            return
        for q in rows:
            print_request(q)
        if not rows:
            out.print("Không có yêu cầu / no requests.")

    @access_app.command("log")
    def log(user: Optional[str] = typer.Option(None, "--user", help="Only events naming this user."),
            since: Optional[str] = typer.Option(None, "--since", help="From this date (2026-12-01 or 01/12/2026)."),
            limit: Optional[int] = typer.Option(None, "--limit", help="Only the last N."),
            repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """The access log: every request, refusal, approval, denial, copy made and user change."""
        with handled(), open_repo(repo) as r:
            rows = r.access_log(user, since, limit)
        if json_:
            emit_json({"events": rows})
            return
        style = {"failure": "bold red", "pending": "yellow", "success": "green"}
        for e in rows:
            out.print(f"[dim]{e['datetime']}[/] [{style.get(e['outcome'], '')}]{e['type']}[/] "
                      f"{e['request'] or ''} {', '.join(e['users'])}\n    {escape(e['detail'])}")
        if not rows:
            out.print("Nhật ký khai thác trống / the access log is empty.")
