"""`preserve` — the command line. Exit codes: 0 ok, 1 findings or damage, 2 usage or system error."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from .. import __version__
from .common import (EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, JsonOpt, RepoOpt, RichProgress, emit_json, err, handled,
                     out, print_findings, repo_path)

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  help="preserve — kho lưu trữ số / digital-preservation repository.")


def _open(repo: Optional[Path]):
    from ..repository import Repository

    return Repository.open(repo_path(repo))


@app.callback(invoke_without_command=True)
def _main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        out.print(f"preserve {__version__}")
        raise typer.Exit(0)


@app.command()
def init(path: Path = typer.Argument(..., help="Folder for the new repository."),
         organisation: Optional[str] = typer.Option(None, help="Archive name, used in AIPs and the certificate."),
         offsite: bool = typer.Option(True, "--offsite/--no-offsite",
                                      help="Create the local restic off-site repository (default). --no-offsite: "
                                           "two local copies only (policy local-only) until one is set up."),
         json_: bool = JsonOpt) -> None:
    """Create a repository: settings, catalog, tiers, keys and the off-site restic repository."""
    from ..repository import Repository

    with handled():
        repo = Repository.init(path, organisation, offsite=offsite)
        info = {"path": str(repo.root), "config": str(repo.root / "preserve.toml"), "catalog": repo.settings.catalog_url,
                "key": str(repo.settings.signing_key), "certificate": str(repo.settings.signing_cert),
                "tiers": {n: t.location for n, t in repo.tiers().items()}, "policy": repo.policy().name}
        repo.close()
    if json_:
        emit_json(info)
    else:
        out.print(f"[green]Đã tạo kho / Repository created:[/] {info['path']}")
        out.print(f"  settings: {info['config']}\n  signing key: {info['key']} (mode 0600)")
        for name, where in info["tiers"].items():
            out.print(f"  tier {name}: {where}")
        out.print(f"  storage policy: {info['policy']}")
        out.print("  next: [bold]preserve validate BATCH[/] then [bold]preserve ingest BATCH[/]")


@app.command()
def validate(sip: Path = typer.Argument(..., help="Scan batch: a folder, a .zip, or a BagIt bag."),
             bag_only: bool = typer.Option(False, "--bag-only", help="Check only the BagIt layer of a bag."),
             strict: bool = typer.Option(False, "--strict", help="Refuse the whole batch on any problem."),
             repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
    """Validate a batch without storing anything. Exit 0 valid, 1 invalid, 2 usage/system error."""
    from ..errors import RepositoryNotFound
    from ..repository import validate_bag_only, validate_sip

    with handled():
        if bag_only:
            res = validate_bag_only(sip)
            data = {"valid": res.valid, "findings": [f.to_dict() for f in res.findings]}
        else:
            progress = RichProgress(not json_)
            try:
                r = _open(repo)
            except RepositoryNotFound:
                r = None  # no repository: validate without the "already stored" check
            try:
                v = r.validate(sip, strict=strict, progress=progress) if r else validate_sip(sip, strict=strict, progress=progress)
                v.package.close()
            finally:
                if r:
                    r.close()
            data = {"valid": not v.batch_refused and not v.refused(), "findings": v.report.to_dict()["findings"],
                    "dossiers": len(v.dossiers), "accepted": [d.file_code for d in v.accepted()], "refused": v.refused()}
    if json_:
        emit_json(data)
    else:
        print_findings(data["findings"])
        errors = sum(f["severity"] == "error" for f in data["findings"])
        warnings = sum(f["severity"] == "warning" for f in data["findings"])
        verdict = "[green]HỢP LỆ / VALID[/]" if data["valid"] else "[bold red]KHÔNG HỢP LỆ / INVALID[/]"
        out.print(f"{verdict}: {errors} lỗi/errors, {warnings} cảnh báo/warnings")
        if not bag_only:
            out.print(f"  hồ sơ / dossiers: {data['dossiers']}, nhận / accepted: {len(data['accepted'])}, "
                      f"từ chối / refused: {len(data['refused'])}")
    raise typer.Exit(EXIT_OK if data["valid"] else EXIT_FINDINGS)


@app.command()
def ingest(sip: Path = typer.Argument(..., help="Scan batch: a folder, a .zip, or a BagIt bag."),
           strict: Optional[bool] = typer.Option(None, "--strict/--no-strict",
                                                 help="Refuse the whole batch on any problem (default: [ingest] strict)."),
           officer: Optional[str] = typer.Option(None, help="Officer responsible (default: settings, else $USER)."),
           no_ocr: bool = typer.Option(False, "--no-ocr",
                                       help="Skip OCR for this batch (default: [ingest] ocr of preserve.toml)."),
           repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
    """Validate, then store one signed AIP per valid dossier (with a two-layer PDF/A-2 of each scan made by
    OCR, unless ocr is off) and copy it to the policy's other tiers.
    Exit 1 if anything was refused or a copy failed (the AIP stays stored; `preserve replicate` catches up)."""
    with handled():
        with _open(repo) as r:
            res = r.ingest(sip, strict=strict, officer=officer, progress=RichProgress(not json_),
                           ocr=False if no_ocr else None)
    data = res.to_dict()
    if json_:
        emit_json(data)
    else:
        print_findings([f for f in data["findings"] if f["severity"] != "info"], limit=50)
        for a in data["aips"]:
            ocr = f"  (OCR: {a['ocr']})" if a.get("ocr") else ""
            out.print(f"[green]✓[/] {a['fileCode']} → AIP {a['id']}{ocr}\n    {a['path']}")
        for x in data["refused"]:
            out.print(f"[red]✗[/] {x['fileCode']}: {', '.join(sorted({f['code'] for f in x['findings']}))}"
                      f"\n    quarantine: {x.get('quarantine')}")
        out.print(f"Đã lưu / stored: {len(data['aips'])} AIP; từ chối / refused: {len(data['refused'])}")
        if data.get("replication"):
            from .storage import print_replication

            print_replication(data["replication"])
    under = bool((data.get("replication") or {}).get("under_replicated"))
    raise typer.Exit(EXIT_FINDINGS if data["refused"] or under else EXIT_OK)


aips_app = typer.Typer(no_args_is_help=True, help="List and show AIPs.")
app.add_typer(aips_app, name="aips")


@aips_app.command("list")
def aips_list(repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
    """All AIPs: id, dossier, version, documents, pages, bytes."""
    from rich.table import Table

    with handled():
        with _open(repo) as r:
            rows = [{k: a[k] for k in ("id", "fileCode", "version", "documents", "pages", "bytes")} | {"created": a.get("created")}
                    for a in r.list_aips()]
    if json_:
        emit_json(rows)
        return
    t = Table("AIP", "Mã hồ sơ / fileCode", "v", "Tài liệu / docs", "Trang / pages", "Bytes", "Created")
    for a in rows:
        t.add_row(a["id"], a["fileCode"], str(a["version"]), str(a["documents"]), str(a["pages"]), f"{a['bytes']:,}",
                  str(a["created"]))
    out.print(t)
    out.print(f"{len(rows)} AIP")


@aips_app.command("show")
def aips_show(aip_id: str = typer.Argument(..., help="AIP id (uuid-…)"), repo: Optional[Path] = RepoOpt,
              json_: bool = JsonOpt) -> None:
    """One AIP: metadata, files with digests and formats, replicas and events."""
    with handled():
        with _open(repo) as r:
            info = r.show_aip(aip_id)
    if json_:
        emit_json(info)
        return
    from rich.table import Table

    d = info.get("dossier") or {}
    out.print(f"[bold]{info['id']}[/] v{info['version']} — {info['fileCode']}: {d.get('title', '')}")
    out.print(f"  path: {info.get('path')}  documents: {info.get('documentCount')}  pages: {info['pages']}  bytes: {info['bytes']:,}")
    t = Table("File", "Bytes", "Format", "SHA-256")
    for f in info["files"]:
        t.add_row(f["path"], f"{f['size']:,}", f.get("puid") or f.get("mime") or "", f["sha256"])
    out.print(t)
    for rep in info.get("replicas", []):
        out.print(f"  replica {rep['tier']}: {rep['status']} (last checked / kiểm tra lần cuối "
                  f"{rep.get('last_verified') or '-'})")
    for e in info.get("events", []):
        out.print(f"  {e['datetime']}  {e['type']:<28} {e['outcome']:<8} {escape(e['detail'])}")


@app.command()
def events(action: Optional[str] = typer.Argument(None, help="`verify`: only walk the hash chain and report any "
                                                            "edited, removed or reordered event."),
           aip: Optional[str] = typer.Option(None, "--aip", help="Only events of this AIP."),
           limit: Optional[int] = typer.Option(None, help="Only the last N events."),
           verify: bool = typer.Option(False, "--verify", help="Check the event log's hash chain."),
           repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
    """PREMIS events from the catalog's hash-chained log (`preserve events verify` checks the chain)."""
    if action not in (None, "verify"):
        err.print(f"[red]Unknown action {action!r}.[/] Use `preserve events` or `preserve events verify`.")
        raise typer.Exit(EXIT_ERROR)
    if action == "verify":
        with handled():
            with _open(repo) as r:
                problems = r.catalog.verify_chain()
                head = r.catalog.chain_head()
        data = {"ok": not problems, "events": head.get("seq"), "head": head,
                "problems": [{"code": p.split(":", 1)[0], "detail": p.split(":", 1)[-1].strip()} for p in problems]}
        if json_:
            emit_json(data)
        else:
            out.print(f"[green]Chuỗi sự kiện nguyên vẹn / event chain intact[/] ({data['events']} events)"
                      if not problems else "[bold red]Chuỗi sự kiện bị sửa / event chain broken:[/]\n  "
                      + "\n  ".join(problems))
        raise typer.Exit(EXIT_FINDINGS if problems else EXIT_OK)
    with handled():
        with _open(repo) as r:
            evs = r.events(aip, limit)
            problems = r.catalog.verify_chain() if verify else []
    if json_:
        emit_json({"events": evs, "chain_problems": problems} if verify else evs)
    else:
        for e in evs:
            out.print(f"{e['datetime']}  {e.get('aip') or '-':<41} {e['type']:<28} {e['outcome']:<8} {escape(e['detail'])}")
        if verify:
            out.print("[green]Chuỗi sự kiện nguyên vẹn / event chain intact[/]" if not problems else
                      "[bold red]Chuỗi sự kiện bị sửa / event chain broken:[/]\n  " + "\n  ".join(problems))
    raise typer.Exit(EXIT_FINDINGS if problems else EXIT_OK)


keys_app = typer.Typer(no_args_is_help=True, help="Signing keys.")
app.add_typer(keys_app, name="keys")


@keys_app.command("import")
def keys_import(key: Path = typer.Argument(..., help="Private key (PEM, unencrypted)."),
                cert: Path = typer.Argument(..., help="X.509 certificate (PEM) of that key."),
                repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
    """Replace the signing key and certificate with the organisation's own."""
    with handled():
        with _open(repo) as r:
            info = r.import_keys(key, cert)
    emit_json(info) if json_ else out.print(f"[green]Đã nhập khóa / keys imported:[/] {info['subject']}")


@keys_app.command("generate")
def keys_generate(organisation: Optional[str] = typer.Option(None, help="Name in the certificate (default: settings)."),
                  replace: bool = typer.Option(False, "--replace", help="Replace the current pair (kept beside it, dated)."),
                  repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
    """Make a new RSA-3072 signing key and self-signed certificate."""
    with handled():
        with _open(repo) as r:
            info = r.generate_keys(organisation, replace)
    emit_json(info) if json_ else out.print(f"[green]Đã tạo khóa / keys generated:[/] {info['subject']}")


@keys_app.command("show")
def keys_show(repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
    """The signing certificate in use."""
    with handled():
        with _open(repo) as r:
            info = r.key_info()
    if json_:
        emit_json(info)
    else:
        for k, v in info.items():
            out.print(f"  {k}: {v}")


@app.command("sample-sip")
def sample_sip(out_dir: Optional[Path] = typer.Argument(None, help="Folder to create."),
               dossiers: int = typer.Option(2, help="Number of dossiers (hồ sơ)."),
               docs: int = typer.Option(3, help="Documents per dossier."),
               seed: int = typer.Option(1, help="Random seed: the same seed gives the same bytes."),
               defects: str = typer.Option("", help="Comma-separated defects to inject (see --list-defects)."),
               form: str = typer.Option("xlsx", help="xlsx (mucluc.xlsx) or csv (hoso.csv + tailieu.csv)."),
               zip_: bool = typer.Option(False, "--zip", help="Also write OUT.zip."),
               list_defects: bool = typer.Option(False, "--list-defects", help="List defect names and exit."),
               json_: bool = JsonOpt) -> None:
    """Make a realistic sample scan batch (Vietnamese pages at 200 dpi, JPEG in PDF)."""
    from ..sip import sample

    if list_defects:
        if json_:
            emit_json({k: {"description": v.description, "codes": sorted(v.codes)} for k, v in sample.DEFECTS.items()})
        else:
            for k, v in sample.DEFECTS.items():
                out.print(f"  [bold]{k}[/]: {v.description} → {', '.join(sorted(v.codes))}")
        return
    if out_dir is None:
        err.print("[red]Give the folder to create.[/]  e.g. preserve sample-sip lo-mau --dossiers 2 --docs 3")
        raise typer.Exit(EXIT_ERROR)
    names = [d.strip() for d in defects.split(",") if d.strip()]
    unknown = [d for d in names if d not in sample.DEFECTS]
    if unknown:
        err.print(f"[red]Unknown defect(s): {', '.join(unknown)}[/]\n  → See `preserve sample-sip --list-defects`.")
        raise typer.Exit(EXIT_ERROR)
    if form not in ("xlsx", "csv"):
        err.print("[red]--form must be xlsx or csv[/]")
        raise typer.Exit(EXIT_ERROR)
    with handled():
        try:
            info = sample.make_sample(out_dir, dossiers=dossiers, docs=docs, seed=seed, defects=names, form=form)
        except FileExistsError as e:
            from ..errors import UsageError

            raise UsageError(str(e), hint="Choose a new folder, or remove the old one.") from e
        zip_path = None
        if zip_:
            zip_path = out_dir.with_suffix(".zip")
            sample.zip_sample(out_dir, zip_path)
    data = {"path": str(out_dir), "zip": str(zip_path) if zip_path else None, "dossiers": info.file_codes,
            "documents": len(info.doc_codes), "defects": names, "expected_codes": sorted(info.expected_codes)}
    if json_:
        emit_json(data)
    else:
        out.print(f"[green]Đã tạo lô mẫu / sample batch:[/] {out_dir} ({len(info.file_codes)} hồ sơ, {len(info.doc_codes)} tài liệu)")
        if zip_path:
            out.print(f"  zip: {zip_path}")


@app.command()
def demo(repo: Path = typer.Option(Path("demo-data"), "--repo", help="Where to put the demo repository."),
         json_: bool = JsonOpt) -> None:
    """Init a repository, make a sample batch, ingest it, list AIPs and events, say where everything is."""
    from .demo import run_demo

    with handled():
        raise typer.Exit(run_demo(repo, json_))


@app.command()
def recover(repo: Optional[Path] = RepoOpt, json_: bool = JsonOpt) -> None:
    """Undo what an interrupted ingest left behind (also done automatically before each ingest)."""
    with handled():
        with _open(repo) as r:
            done = r.recover()
    emit_json({"actions": done}) if json_ else out.print("\n".join(done) or "Nothing to recover / không có gì cần khôi phục.")


from . import access as _access  # noqa: E402
from . import alerts as _alerts  # noqa: E402
from . import fixity as _fixity  # noqa: E402
from . import recovery as _recovery  # noqa: E402
from . import scheduler as _scheduler  # noqa: E402
from . import search as _search  # noqa: E402
from . import storage as _storage  # noqa: E402
from . import users as _users  # noqa: E402
from . import web as _web  # noqa: E402

_storage.register(app)
_fixity.register(app)
_alerts.register(app)
_scheduler.register(app)
_users.register(app)
_access.register(app)
_recovery.register(app)
_search.register(app)
_web.register(app)


def main() -> None:
    try:
        app(standalone_mode=True)
    except SystemExit as e:
        # click exits 2 on usage errors already; keep 0/1/2 only
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_ERROR)
        raise SystemExit(code if code in (0, 1, 2) else EXIT_ERROR)
