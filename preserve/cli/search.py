"""`preserve search QUERY`: full-text search of the documents, diacritics-insensitive (docs/search.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from .common import EXIT_FINDINGS, JsonOpt, RepoOpt, emit_json, handled, open_repo, out


def print_results(data: dict, query: str) -> None:
    total, shown = data["total"], len(data["results"])
    about = "" if data.get("totalExact", True) else "≈ "  # a very common word: counted up to 1,000, then estimated
    out.print(f"[bold]Tìm thấy / found:[/] {about}{total:,} tài liệu / documents for «{escape(query)}»"
              + (f" (hiển thị / showing {shown})" if shown < total else ""))
    for n, r in enumerate(data["results"], start=1):
        notation = f"  {escape(r['notation'])}" if r.get("notation") else ""
        issued = f"  {escape(str(r['issued']))}" if r.get("issued") else ""
        out.print(f"{n:>3}. [bold]{escape(r['docCode'])}[/]{notation}{issued}  (hồ sơ / dossier {escape(r['fileCode'])})")
        out.print(f"     {escape(r['title'])}")
        if r.get("snippet"):
            out.print(f"     [dim]{escape(r['snippet'])}[/]")


def register(app: typer.Typer) -> None:
    @app.command()
    def search(query: str = typer.Argument(..., help='Words, "a phrase", or a notation such as 25-NQ/TU; '
                                                     'diacritics may be left out (hai duong = Hải Dương).'),
               fonds: Optional[str] = typer.Option(None, "--fonds", help="Only this fonds (mã phông)."),
               type_name: Optional[str] = typer.Option(None, "--type", help="Document type: name or code, "
                                                       "e.g. 'Nghị quyết' or 01."),
               date_from: Optional[str] = typer.Option(None, "--from", help="Issued on or after: dd/mm/yyyy, "
                                                       "mm/yyyy or yyyy."),
               date_to: Optional[str] = typer.Option(None, "--to", help="Issued on or before."),
               user: Optional[str] = typer.Option(None, "--user", help="Leave out what this user may not see "
                                                  "under the access rules."),
               limit: int = typer.Option(20, "--limit", help="At most this many results."),
               repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Search dossier titles, document subjects, notations, signers, issuing bodies, keywords and the OCR
        text (Tìm kiếm). Exit 0 when something is found, 1 when nothing is."""
        with handled():
            with open_repo(repo) as r:
                data = r.search(query, fonds=fonds, type_name=type_name, date_from=date_from, date_to=date_to,
                                user=user, limit=limit)
        if json_:
            emit_json(data)
        else:
            print_results(data, query)
        if not data["total"]:
            raise typer.Exit(EXIT_FINDINGS)
