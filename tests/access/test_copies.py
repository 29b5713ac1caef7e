"""Making access copies end to end: from a replica verified now, watermarked on every page, traceable, and
never touching the AIP."""

from __future__ import annotations

import hashlib
import re
import subprocess
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from lxml import etree

from preserve.access.requests import AccessRefused
from preserve.catalog.db import write_session
from preserve.catalog.models import AccessRequest
from preserve.errors import StorageError

METS = "{http://www.loc.gov/METS/}"


def tree_digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def approved(repo, docs, cls="conditional", user="reader", by="archivist"):
    reqs = repo.access_requests()
    res = reqs.request(user, "Biên soạn lịch sử Đảng bộ tỉnh", doc=docs[cls])
    if res["status"] == "pending":
        reqs.approve(res["id"], by, "Đúng mục đích nghiên cứu")
    assert reqs.get(res["id"])["status"] == "approved"
    return res["id"]


def pdf_pages_text(pdf: bytes, tmp: Path) -> list[str]:
    path = tmp / "x.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    return [p for p in text.split("\f") if p.strip()]


def test_a_copy_is_watermarked_on_every_page_and_traceable(world, tmp_path):
    repo, docs, _, _ = world
    aip = repo.catalog.find_dossier_aip(repo.access_requests().resolve(doc=docs["conditional"])[0].file_code)
    tiers = {t: repo.root / "tiers" / t / repo.show_aip(aip)["path"] for t in ("primary", "secondary")}
    before = {t: tree_digests(p) for t, p in tiers.items()}
    rid = approved(repo, docs)
    res = repo.make_access_copy(rid, tmp_path / "out")
    zpath = Path(res["zip"])
    assert zpath.parent == tmp_path / "out" and zpath.is_file()
    assert res["watermark"] == "normal" and res["aip"] == aip and res["tier"] == "primary"
    with zipfile.ZipFile(zpath) as z:
        names = z.namelist()
        pdfs = [n for n in names if n.endswith(".pdf")]
        assert pdfs == [f"{rid}/representations/access/data/{docs['conditional']}.pdf"]
        pages = pdf_pages_text(z.read(pdfs[0]), tmp_path)
        mets = etree.fromstring(z.read(f"{rid}/METS.xml"))
        readme = z.read(f"{rid}/README.txt").decode("utf-8")
        entries = {n: hashlib.sha256(z.read(n)).hexdigest() for n in names if not n.endswith("/")}
    assert len(pages) == res["pages"] == 2
    day = datetime.fromisoformat(repo.now()).strftime("%d/%m/%Y")
    for text in pages:  # every page names the copy, the requester, the date and the request
        for needle in ("BẢN SAO", "Nguyễn Thị Hòa", day, rid):
            assert needle in text, (needle, text)
    assert mets.get("OBJID") == res["dip_id"]
    alt = {a.get("TYPE"): a.text for a in mets.iter(f"{METS}altRecordID")}
    assert alt["AIP"] == aip and alt["AIP-VERSION"] == "1" and alt["REQUEST"] == rid
    for f in mets.iter(f"{METS}file"):
        href = f.find(f"{METS}FLocat").get("{http://www.w3.org/1999/xlink}href")
        assert entries[f"{rid}/{href}"] == f.get("CHECKSUM")
    assert "Nguyễn Thị Hòa" in readme and "BẢN SAO" in readme.upper()
    # the AIP was only read, on every tier
    assert {t: tree_digests(p) for t, p in tiers.items()} == before
    # a fixity check of the replica read, then the dissemination event with who, why and which request
    events = repo.events(aip)
    diss = [e for e in events if e["type"] == "dissemination"]
    assert len(diss) == 1
    d = diss[0]
    assert rid in d["detail"] and "Biên soạn lịch sử Đảng bộ tỉnh" in d["detail"]
    agents = {(a["id"], a["role"]) for a in d["agents"]}
    assert ("agent-user-reader", "recipient") in agents and ("agent-user-archivist", "authorizer") in agents
    checks = [e for e in events if e["type"] == "fixity check" and e["seq"] < d["seq"]]
    assert checks and "primary" in checks[-1]["detail"] and checks[-1]["outcome"] == "success"
    assert repo.access_requests().get(rid)["copies"] == 1
    log = [e["type"] for e in repo.access_log() if e["request"] == rid]
    assert log == ["access request", "access approval", "dissemination"]


def test_a_copy_is_never_written_over(world, tmp_path):
    repo, docs, _, _ = world
    rid = approved(repo, docs, cls="open")
    first = Path(repo.make_access_copy(rid, tmp_path)["zip"])
    first_bytes = first.read_bytes()
    second = Path(repo.make_access_copy(rid, tmp_path)["zip"])
    assert first != second and first.read_bytes() == first_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, second.name])


def test_a_secret_record_gets_the_strong_watermark(world, tmp_path):
    repo, docs, _, _ = world
    rid = approved(repo, docs, cls="secret-toimat", user="granted")
    normal = approved(repo, docs, cls="open", user="granted")
    res = repo.make_access_copy(rid, tmp_path / "s")
    plain = repo.make_access_copy(normal, tmp_path / "n")
    assert res["watermark"] == "strong" and plain["watermark"] == "normal"

    def marks(r):
        with zipfile.ZipFile(r["zip"]) as z:
            pdf = next(n for n in z.namelist() if n.endswith(".pdf"))
            pages = pdf_pages_text(z.read(pdf), tmp_path)
        return min(p.count("BẢN SAO") for p in pages)

    assert marks(res) > marks(plain) >= 1


def test_page_images_on_request(world, tmp_path):
    repo, docs, _, _ = world
    rid = approved(repo, docs, cls="open")
    res = repo.make_access_copy(rid, tmp_path, images_dpi=60)
    with zipfile.ZipFile(res["zip"]) as z:
        images = [n for n in z.namelist() if "/images/" in n]
    assert len(images) == res["pages"] and all(re.search(r"-p\d{4}\.jpg$", n) for n in images)


def test_no_copy_for_a_pending_request_and_the_refusal_is_logged(world, tmp_path):
    repo, docs, _, _ = world
    rid = repo.access_requests().request("reader", "Tra cứu", doc=docs["conditional"])["id"]
    with pytest.raises(AccessRefused) as e:
        repo.make_access_copy(rid, tmp_path)
    assert e.value.finding.code == "E-ACC-NOT-APPROVED" and e.value.exit_code == 1
    assert list(tmp_path.iterdir()) == []
    assert [x["type"] for x in repo.access_log() if x["request"] == rid] == ["access request", "access refusal"]


def test_no_copy_after_expiry_or_once_the_account_is_disabled(world, tmp_path):
    repo, docs, _, _ = world
    rid = approved(repo, docs)
    with write_session(repo.catalog.engine) as s:  # the approval's validity ran out
        row = s.get(AccessRequest, rid)
        row.expires = "2000-01-01T00:00:00+07:00"
        s.add(row)
    with pytest.raises(AccessRefused) as e:
        repo.make_access_copy(rid, tmp_path)
    assert e.value.finding.code == "E-ACC-EXPIRED"
    rid = approved(repo, docs, user="granted")
    repo.users().set_disabled("granted", True)
    try:
        with pytest.raises(AccessRefused) as e:
            repo.make_access_copy(rid, tmp_path)
        assert e.value.finding.code == "E-ACC-USER-DISABLED"
    finally:
        repo.users().set_disabled("granted", False)
    assert list(tmp_path.iterdir()) == []


def test_only_an_archivist_or_the_requester_makes_the_copy(world, tmp_path):
    repo, docs, _, _ = world
    rid = approved(repo, docs)
    with pytest.raises(AccessRefused) as e:
        repo.make_access_copy(rid, tmp_path, by="auditor")
    assert e.value.finding.code == "E-ACC-ROLE"
    res = repo.make_access_copy(rid, tmp_path, by="archivist2")
    diss = [x for x in repo.events(res["aip"]) if x["type"] == "dissemination"][-1]
    assert {"id": "agent-user-archivist2", "role": "implementer"} in diss["agents"]


def test_a_damaged_primary_is_passed_over_for_a_copy_that_verifies(repo, batch, tmp_path):
    repo.ingest(batch)
    aip = repo.list_aips()[0]
    info = repo.show_aip(aip["id"])
    doc = info["documents"][0]["docCode"]
    repo.users().add("doc", "reader")
    repo.users().add("lt", "archivist")
    reqs = repo.access_requests()
    rid = reqs.request("doc", "Tra cứu", doc=doc)["id"]
    if reqs.get(rid)["status"] == "pending":
        reqs.approve(rid, "lt", "ok")
    scan = repo.root / "tiers/primary" / info["path"] / "data" / info["documents"][0]["file"]
    raw = bytearray(scan.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    scan.write_bytes(bytes(raw))
    res = repo.make_access_copy(rid, tmp_path / "out")
    assert res["tier"] == "secondary"
    assert {r["tier"]: r["status"] for r in repo.show_aip(aip["id"])["replicas"]}["primary"] == "damaged"
    sec = repo.root / "tiers/secondary" / info["path"]
    (sec / "data" / info["documents"][0]["file"]).write_bytes(b"gone")
    with pytest.raises(StorageError, match="No copy of AIP .* verified intact") as e:
        repo.make_access_copy(rid, tmp_path / "out2")
    assert e.value.exit_code == 2 and "preserve repair" in str(e.value)
    assert not (tmp_path / "out2").exists() or list((tmp_path / "out2").iterdir()) == []
    assert list((repo.settings.staging).glob("dip-*")) == []  # scratch space cleaned
