"""Shared CLI pieces: the --repo and --json options, output, progress bars and exit codes."""

from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn, TransferSpeedColumn)

from ..errors import PreserveError

# The CLI prints the alerts a command raised itself (and they are in the alert log); without this the
# `preserve.alerts` logger would print each one a second time on stderr.
logging.getLogger("preserve.alerts").addHandler(logging.NullHandler())

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

RepoOpt = typer.Option(None, "--repo", help="Repository folder (default: $PRESERVE_HOME, else ./preserve-data).",
                       envvar="PRESERVE_HOME", show_envvar=False)
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def fail(e: PreserveError) -> None:
    err.print(f"[bold red]Lỗi / Error:[/] {escape(str(e))}")  # messages name [tiers.x], [alerts]…: not markup
    raise typer.Exit(e.exit_code)


@contextmanager
def handled() -> Iterator[None]:
    """Turn PreserveErrors into a message with what to do next, and exit code 2."""
    try:
        yield
    except PreserveError as e:
        fail(e)
    except KeyboardInterrupt:
        err.print("[red]Interrupted / Đã dừng.[/] Nothing half-written is visible; run the command again.")
        raise typer.Exit(EXIT_ERROR)
    except OSError as e:
        err.print(f"[bold red]Lỗi hệ thống / System error:[/] {escape(str(e))}\n  → Check the path, free space and "
                  "permissions.")
        raise typer.Exit(EXIT_ERROR)


class RichProgress:
    """preserve.progress.Progress on stderr, so --json output on stdout stays clean."""

    def __init__(self, enabled: bool = True, unit: str = "items"):
        self.unit = unit  # "bytes": bars count bytes and show the transfer speed
        self._p: Progress | None = None
        self._task = None
        self.enabled = enabled and err.is_terminal

    def start(self, label: str, total: int | None, unit: str | None = None) -> None:
        if not self.enabled:
            return
        self.done()
        counts = ((DownloadColumn(binary_units=True), TransferSpeedColumn()) if (unit or self.unit) == "bytes"
                  else (MofNCompleteColumn(),))
        self._p = Progress(TextColumn("{task.description}"), BarColumn(), *counts, TimeElapsedColumn(),
                           TimeRemainingColumn(), console=err, transient=False)
        self._p.start()
        self._task = self._p.add_task(label, total=total)

    def advance(self, n: int = 1) -> None:
        if self._p is not None:
            self._p.advance(self._task, n)

    def done(self) -> None:
        if self._p is not None:
            self._p.stop()
            self._p = None


def repo_path(repo: Optional[Path]) -> Path:
    from ..config import default_repo_path

    return Path(repo) if repo else default_repo_path()


SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def print_findings(findings: list[dict], limit: int | None = None) -> None:
    """Findings as a list that reads well in a narrow terminal: code and place, then Vietnamese, then English."""
    mark = {"error": "✗", "warning": "!", "info": "·"}
    for f in findings[:limit]:
        style = SEVERITY_STYLE.get(f["severity"], "")
        out.print(f"[{style}]{mark.get(f['severity'], '-')} {f['code']}[/]  [bold]{escape(f['where'])}[/]")
        out.print(f"    {escape(f['message_vi'])}")
        out.print(f"    [dim]{escape(f['message_en'])}[/]")
    if limit is not None and len(findings) > limit:
        out.print(f"… {len(findings) - limit} more / còn nữa; use --json for all.")


def open_repo(repo: Optional[Path]):
    """The repository at --repo (or $PRESERVE_HOME, else ./preserve-data), opened for one command."""
    from ..repository import Repository

    return Repository.open(repo_path(repo))
