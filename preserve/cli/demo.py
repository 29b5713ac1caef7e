"""`preserve demo`: init a repository, make a sample batch, ingest it, list AIPs and events."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.markup import escape

from .common import RichProgress, emit_json, out, print_findings


def run_demo(repo_dir: Path, as_json: bool) -> int:
    from ..repository import Repository
    from ..sip.sample import make_sample, zip_sample

    repo_dir = Path(repo_dir).resolve()
    if repo_dir.exists():
        shutil.rmtree(repo_dir)  # the demo starts fresh every time
    say = (lambda *a: None) if as_json else out.print
    say(f"[bold]1. Khởi tạo kho / init[/] {repo_dir}")
    repo = Repository.init(repo_dir, "Lưu trữ lịch sử Tỉnh ủy Hải Dương (demo)")
    try:
        batches = repo_dir / "batches"
        say("[bold]2. Tạo lô quét mẫu / sample batches[/] (3 hồ sơ, one with a defect)")
        good = make_sample(batches / "lo-01", dossiers=3, docs=3, seed=7)
        zip_sample(good.root, batches / "lo-01.zip")
        bad = make_sample(batches / "lo-02", dossiers=2, docs=2, seed=8, defects=["page-count"])
        say("[bold]3. Kiểm tra / validate[/] lo-01.zip")
        v = repo.validate(batches / "lo-01.zip", progress=RichProgress(not as_json))
        v.package.close()
        say(f"   valid: {not v.refused()}  findings: {len(v.report.findings)}")
        say("[bold]4. Nộp lưu / ingest[/] lo-01.zip and lo-02 (lo-02 has one dossier with a page-count error)")
        r1 = repo.ingest(batches / "lo-01.zip", progress=RichProgress(not as_json))
        r2 = repo.ingest(bad.root, progress=RichProgress(not as_json))
        for res in (r1, r2):
            for a in res.aips:
                say(f"   [green]✓[/] {a['fileCode']} → {a['id']}")
            for x in res.refused:
                say(f"   [red]✗[/] {x['fileCode']} refused: {', '.join(sorted({f['code'] for f in x['findings']}))}")
        if not as_json:
            print_findings([f.to_dict() for f in r2.findings if f.is_error])
        aips = repo.list_aips()
        say(f"[bold]5. AIP trong kho / AIPs stored:[/] {len(aips)}")
        for a in aips:
            say(f"   {a['id']}  {a['fileCode']}  v{a['version']}  {a['documents']} docs  {a['pages']} pages  {a['bytes']:,} bytes")
        say("[bold]6. Bản sao / copies[/] (policy: " + ", ".join(repo.policy().copy_tiers) + ")")
        copies = {}
        for a in aips:
            reps = {r["tier"]: r["status"] for r in repo.show_aip(a["id"])["replicas"]}
            copies[a["id"]] = reps
            marks = "  ".join(f"{t}: {'[green]✓[/]' if reps.get(t) == 'ok' else '[red]✗[/]'}"
                              for t in repo.policy().copy_tiers)
            say(f"   {a['fileCode']}  {marks}")
        backup = repo.offsite_backup()
        snaps = ", ".join(str(s.get("snapshot"))[:8] for s in backup["eventlog"])
        say(f"   off-site backup of the event log: snapshot {snaps}")
        status = repo.tiers_status()
        for row in status:
            say(f"   tier {row['tier']:<10} {row['kind']:<7} reachable: {row['reachable']}  AIPs: {row['aips']}  "
                f"missing: {row['missing']}")
        audit = repo.audit(due=False)
        say(f"[bold]7. Kiểm tra toàn vẹn mọi bản sao / audit of every copy:[/] {len(audit.audits)} replicas, "
            f"{len(audit.damaged)} damaged, pack check: {[c['subset'] for c in audit.offsite_checks]}")
        damaged = _damage_one(repo, aips[0]["id"]) if aips else None
        after = repo.audit(due=False, tier="secondary")
        found = [f.code for a in after.damaged for f in a.findings]
        say(f"[bold]8. Làm hỏng một tệp / damage one file[/] {damaged}: audit finds {found}")
        fixed = repo.repair()
        say(f"   repair: {[(x['tier'], x['status'], x['source']) for x in fixed.repairs]}; "
            f"audit again: {'intact' if repo.audit(due=False, tier='secondary').ok else 'DAMAGED'}")
        evs = repo.events()
        say(f"[bold]9. Sự kiện / events:[/] {len(evs)} (hash-chained; `preserve events verify`)")
        for e in evs[-8:]:
            say(f"   {e['datetime']}  {e['type']:<28} {e['outcome']}")
        access = _access_demo(repo, repo_dir, aips, say)
        found_by_search = _search_demo(repo, aips, say)
        first = aips[0]["id"] if aips else None
        where = {
            "repository": str(repo_dir), "settings": str(repo_dir / "preserve.toml"),
            "catalog": repo.settings.catalog_url, "primary_tier": str(repo_dir / "tiers" / "primary"),
            "quarantine": str(repo_dir / "quarantine"), "keys": str(repo_dir / "keys"),
            "batches": str(batches), "aips": len(aips), "refused": [x["fileCode"] for x in r1.refused + r2.refused],
            "example_aip": str(repo.aip_dir(first)) if first else None, "events": len(repo.events()),
            "access_copies": str(repo_dir / "dip"),
            "tiers": {r["tier"]: {"kind": r["kind"], "location": r["location"], "aips": r["aips"]} for r in status},
            "copies": copies, "audit": {"replicas": len(audit.audits), "damaged": len(audit.damaged)},
            "damage": {"file": damaged, "found": found, "repaired": [x["status"] for x in fixed.repairs]},
            "access": access, "search": found_by_search,
            "web_users": {"quantri": "admin", "luutru": "archivist", "bandoc": "reader"},
            "web_password": DEMO_PASSWORD,
        }
        if as_json:
            emit_json(where)
        else:
            out.print("[bold]12. Ở đâu / where everything is[/]")
            for k, v_ in where.items():
                if k not in ("tiers", "copies", "audit", "damage", "access", "search", "web_users",
                             "web_password"):  # shown above, or below
                    out.print(f"   {k}: {v_}")
            out.print(f"   web: [bold]preserve serve --repo {repo_dir}[/] → http://127.0.0.1:8080/  users quantri "
                      f"(admin), luutru (archivist), bandoc (reader), password [bold]{DEMO_PASSWORD}[/]")
            out.print(f"   try: [bold]preserve --help[/], [bold]preserve aips show {first} --repo {repo_dir}[/], "
                      f"[bold]preserve tiers status --repo {repo_dir}[/], "
                      f"[bold]preserve access log --repo {repo_dir}[/], "
                      f"[bold]preserve search \"{found_by_search.get('plain') or 'hai duong'}\" --repo {repo_dir}[/]")
        return 0
    finally:
        repo.close()


DEMO_PASSWORD = "demo-mat-khau"  # the demo's users only (printed by the demo); never for a real repository


def _access_demo(repo, repo_dir: Path, aips: list[dict], say) -> dict:
    """A reader asks for a copy of a document; an archivist approves it when the rules require it; the access
    copy is made from a replica verified now. Also a refusal: the reader asks for a whole secret dossier."""
    users = repo.users()
    users.add("quantri", "admin", full_name="Phạm Văn Quản", password=DEMO_PASSWORD)
    users.add("luutru", "archivist", full_name="Lê Thị Lan", password=DEMO_PASSWORD)
    users.add("bandoc", "reader", full_name="Nguyễn Thị Hòa", password=DEMO_PASSWORD)
    reqs = repo.access_requests()
    level = {a["fileCode"]: reqs.resolve(dossier=a["fileCode"])[0].level for a in aips}
    plain = next((a for a in aips if level[a["fileCode"]] == "conditional"),  # shows the archivist's approval
                 next(a for a in aips if level[a["fileCode"]] == "open"))
    doc = repo.show_aip(plain["id"])["documents"][0]["docCode"]
    say(f"[bold]10. Khai thác / access[/]: người đọc bandoc (Nguyễn Thị Hòa) yêu cầu bản sao tài liệu {doc}")
    res = reqs.request("bandoc", "Nghiên cứu lịch sử Đảng bộ tỉnh", doc=doc)
    say(f"   {res['id']}: {res['status']} — {escape(res['reason'])}")
    if res["status"] == "pending":
        reqs.approve(res["id"], "luutru", "Đúng mục đích nghiên cứu, đã xác minh thẻ người đọc")
        say("   lưu trữ viên luutru duyệt / approved by the archivist luutru")
    dip = repo.make_access_copy(res["id"], repo_dir / "dip")
    say(f"   [green]✓[/] bản sao / access copy: [bold]{dip['zip']}[/] ({dip['pages']} trang / pages, dấu "
        f"“BẢN SAO” on every page, from AIP {dip['aip']} on tier {dip['tier']} just verified)")
    secret = next((a for a in aips if level[a["fileCode"]] == "secret"), None)
    refused = None
    if secret is not None:
        refused = reqs.request("bandoc", "Tra cứu", dossier=secret["fileCode"])
        say(f"   {refused['id']}: {refused['status']} — {escape(refused['reason'])}")
    return {"request": res["id"], "status": reqs.get(res["id"])["status"], "zip": dip["zip"], "pages": dip["pages"],
            "watermark": dip["watermark"], "refused": refused}


def _search_demo(repo, aips: list[dict], say) -> dict:
    """Find a document by a word of its OCR text, typed without diacritics and with them."""
    import re

    from ..aip.build import OCR_DIR
    from ..ocr.engine import extract_text
    from ..search.fold import fold

    if not aips:
        return {}
    info = repo.show_aip(aips[0]["id"])
    doc = info["documents"][0]
    ocr = repo.aip_dir(aips[0]["id"]) / "data" / OCR_DIR / f"{doc['docCode']}.pdf"
    metadata = fold(" ".join(str(v) for v in doc.values() if v) + " " + str(info["dossier"].get("title")))
    if ocr.is_file():
        text, source = extract_text(ocr), "OCR"
    else:  # OCR is off ([ingest] ocr = "off" or PRESERVE_OCR=off): a word of the document's subject instead
        text, source = str(doc.get("subject") or ""), "metadata"
    words = [w for w in dict.fromkeys(re.findall(r"\w{5,}", text)) if not w.isdigit() and fold(w) != w.lower()]
    fresh = [w for w in words if fold(w) not in metadata.split()] if source == "OCR" else []

    def rank(q: str) -> tuple[int | None, dict]:
        res = repo.search(q, limit=5)
        return next((n for n, r in enumerate(res["results"], 1) if r["docCode"] == doc["docCode"]), None), res

    best = None  # the rarest candidate that finds the document in the first five, typed either way
    for w in (fresh + words)[:30]:  # a word only the OCR text holds first, if there is one
        (r1, res1), (r2, _res2) = rank(fold(w)), rank(w)
        if r1 and r2 and (best is None or res1["total"] < best[1]):
            best = (w, res1["total"])
    if best is None:
        return {"source": source, "word": None, "found": False}
    word, plain = best[0], fold(best[0])
    say(f"[bold]11. Tìm kiếm / search[/] a word of the {source} text of {doc['docCode']}: "
        f"«{plain}» (không dấu / without diacritics) and «{word}»")
    out_ = {"source": source, "word": word, "plain": plain, "docCode": doc["docCode"]}
    for label, q in (("plain", plain), ("with_diacritics", word)):
        where_, res = rank(q)
        out_[label] = q
        out_[f"{label}_total"], out_[f"{label}_rank"] = res["total"], where_
        top = res["results"][0] if res["results"] else None
        say(f"   preserve search \"{escape(q)}\": {res['total']} found"
            + (f"; first: {top['docCode']} — {escape(top['snippet'][:90])}" if top else ""))
    out_["found"] = bool(out_["plain_rank"] and out_["with_diacritics_rank"])
    return out_


def _damage_one(repo, aip_id: str) -> str:
    """Flip one byte of one scan in the secondary copy, as a failing disk would."""
    info = repo.show_aip(aip_id)
    pdf = sorted((repo.root / "tiers/secondary" / info["path"] / "data/representations/original").rglob("*.pdf"))[0]
    raw = bytearray(pdf.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    pdf.write_bytes(bytes(raw))
    return str(pdf.relative_to(repo.root))
