"""User commands: `preserve users add|list|show|passwd|disable|enable|grant`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import UsageError
from .common import JsonOpt, RepoOpt, emit_json, handled, open_repo, out

ROLE_TEXT = {"admin": "quản trị / admin", "archivist": "lưu trữ viên / archivist", "auditor": "kiểm tra / auditor",
             "reader": "người đọc / reader"}
PasswordFileOpt = typer.Option(None, "--password-file", help="Read the password from the first line of this file "
                                                              "('-' = standard input).")


def read_password(path: Optional[Path], confirm: bool = True) -> Optional[str]:
    """The password from --password-file, else asked for at a terminal; None when neither is possible."""
    if path is not None:
        try:
            text = sys.stdin.read() if str(path) == "-" else Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"Không đọc được tệp mật khẩu / Cannot read the password file {path}: {e}",
                             hint="Give a readable UTF-8 file whose first line is the password.") from None
        lines = text.splitlines()
        return lines[0] if lines else ""
    if sys.stdin.isatty():
        return typer.prompt("Mật khẩu / Password", hide_input=True, confirmation_prompt=confirm)
    return None


def print_user(u: dict[str, Any]) -> None:
    state = "[red]khóa / disabled[/]" if u["disabled"] else "[green]hoạt động / active[/]"
    fonds = ", ".join(u["fonds"]) or "tất cả phông (trừ tài liệu mật) / all fonds (no secret records)"
    sign = "" if u["can_sign_in"] else "  [dim](chưa có mật khẩu / no password yet)[/]"
    out.print(f"[bold]{u['name']}[/]  {u['full_name']}  {ROLE_TEXT.get(u['role'], u['role'])}  {state}{sign}")
    out.print(f"    phông / fonds: {fonds}")


def register(app: typer.Typer) -> None:
    users_app = typer.Typer(help="User accounts, roles and fonds grants (Người dùng).", no_args_is_help=True)
    app.add_typer(users_app, name="users")

    @users_app.command("add")
    def add(name: str = typer.Argument(..., help="Sign-in name, e.g. nguyenvana."),
            role: str = typer.Option(..., "--role", help="admin | archivist | auditor | reader."),
            fonds: Optional[list[str]] = typer.Option(None, "--fonds", help="A fonds this user may use "
                                                      "(repeatable); limits the user to these fonds."),
            full_name: str = typer.Option("", "--full-name", help="Name as written, e.g. 'Nguyễn Văn A'."),
            password_file: Optional[Path] = PasswordFileOpt,
            repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Add a user. Without --password-file (and not at a terminal) the account cannot sign in until
        `preserve users passwd`."""
        with handled(), open_repo(repo) as r:
            u = r.users().add(name, role, full_name=full_name, fonds=fonds or (), password=read_password(password_file))
        emit_json(u) if json_ else (out.print("[green]Đã thêm / added[/]"), print_user(u))

    @users_app.command("list")
    def list_(repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Every user, with role, state and fonds."""
        with handled(), open_repo(repo) as r:
            rows = r.users().list()
        if json_:
            emit_json({"users": rows})
            return
        for u in rows:
            print_user(u)
        if not rows:
            out.print("Chưa có người dùng / no users yet: preserve users add NAME --role reader")

    @users_app.command("show")
    def show(name: str, repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """One user."""
        with handled(), open_repo(repo) as r:
            u = r.users().show(name)
        emit_json(u) if json_ else print_user(u)

    @users_app.command("passwd")
    def passwd(name: str, password_file: Optional[Path] = PasswordFileOpt, repo: Optional[Path] = RepoOpt,
               json_: bool = JsonOpt) -> None:
        """Set a user's password (argon2id hash; the password itself is never stored)."""
        with handled(), open_repo(repo) as r:
            users = r.users()
            users.require(name)
            password = read_password(password_file)
            if password is None:
                raise UsageError("Chưa có mật khẩu / No password given.",
                                 hint="Run it at a terminal, or pass --password-file FILE (or - for stdin).")
            users.set_password(name, password)
        if json_:
            emit_json({"name": name, "password": "set"})
        else:
            out.print(f"[green]Đã đặt mật khẩu / password set[/] {name}")

    def _state(name: str, disabled: bool, repo: Optional[Path], json_: bool) -> None:
        with handled(), open_repo(repo) as r:
            u = r.users().set_disabled(name, disabled)
        emit_json(u) if json_ else print_user(u)

    @users_app.command("disable")
    def disable(name: str, repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Disable an account: it can no longer sign in, request, approve or receive copies (kept for the log)."""
        _state(name, True, repo, json_)

    @users_app.command("enable")
    def enable(name: str, repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Enable a disabled account again."""
        _state(name, False, repo, json_)

    @users_app.command("token")
    def token(name: str = typer.Argument(..., help="The user the token acts as."),
              label: str = typer.Option("", "--label", help="What the token is for, e.g. 'báo cáo hằng tuần'."),
              revoke: bool = typer.Option(False, "--revoke", help="Revoke every token of this user instead."),
              repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Make a token for the web application's JSON API (Authorization: Bearer TOKEN), shown once; or revoke
        them all."""
        with handled(), open_repo(repo) as r:
            if revoke:
                n = r.users().revoke_tokens(name)
                emit_json({"user": name, "revoked": n}) if json_ else out.print(f"Đã thu hồi / revoked: {n}")
                return
            tok = r.users().create_token(name, label)
        if json_:
            emit_json({"user": name, "token": tok})
        else:
            out.print(f"[bold]{tok}[/]\n[dim]Chỉ hiện một lần; giữ như mật khẩu. / Shown once; keep it like a password.[/]")

    @users_app.command("grant")
    def grant(name: str, fonds: list[str] = typer.Option(..., "--fonds", help="Fonds code (repeatable)."),
              revoke: bool = typer.Option(False, "--revoke", help="Take these fonds away instead."),
              repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
        """Grant fonds to a user (or --revoke them). A user with grants may use only those fonds; a reader needs a
        grant for a fonds to ask for its secret records."""
        with handled(), open_repo(repo) as r:
            u = r.users().grant(name, fonds, revoke=revoke)
        emit_json(u) if json_ else print_user(u)
