"""Ingest end to end: real sample batches in, AIPs checked with bagit.py, the XSDs, openssl and the catalog."""

import json
import subprocess
import sys
from pathlib import Path

import bagit
from lxml import etree

from preserve.aip.build import SIGNATURE_NAME
from preserve.sip.sample import bag_sample, make_sample, zip_sample

VENV_BIN = Path(sys.executable).parent


def _aip_dirs(repo):
    return [repo.aip_dir(a["id"]) for a in repo.list_aips()]


def test_ingest_clean_batch_makes_one_valid_signed_aip_per_dossier(repo, batch, shared_dir):
    res = repo.ingest(batch)
    assert res.refused == [] and len(res.aips) == 2
    assert {a["fileCode"] for a in res.aips} == {a["fileCode"] for a in repo.list_aips()}
    for d in _aip_dirs(repo):
        assert d.name == "v1" and d.parent.parent.name == d.parent.name[2:4] and d.parent.parent.parent.name == d.parent.name[:2]
        # the Library of Congress validator accepts it
        proc = subprocess.run([str(VENV_BIN / "bagit.py"), "--validate", str(d)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        bag = bagit.Bag(str(d))
        assert set(bag.algorithms) == {"sha256", "sha512"}
        assert "Payload-Oxum" in bag.info
        # METS and PREMIS against the shared XSDs
        for xml, xsd in (("data/METS.xml", "mets1_12.xsd"), ("data/metadata/preservation/premis.xml", "premis-v3.xsd")):
            schema = etree.XMLSchema(etree.parse(str(shared_dir / "schemas" / xsd)))
            doc = etree.parse(str(d / xml))
            assert schema.validate(doc), schema.error_log
        mets = etree.parse(str(d / "data/METS.xml")).getroot()
        assert mets.get("OBJID").startswith("uuid-")
        # openssl accepts the signature, and refuses it after a change to the tag manifest
        cmd = ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-noverify", "-in", SIGNATURE_NAME,
               "-content", "tagmanifest-sha256.txt", "-out", "/dev/null"]
        assert subprocess.run(cmd, cwd=d, capture_output=True).returncode == 0
        tm = d / "tagmanifest-sha256.txt"
        tm.write_bytes(tm.read_bytes().replace(b"bagit.txt", b"bagit.tx "))
        assert subprocess.run(cmd, cwd=d, capture_output=True).returncode != 0


def test_aip_holds_submission_premis_events_and_original_scans(repo, batch):
    repo.ingest(batch)
    a = repo.list_aips()[0]
    info = repo.show_aip(a["id"])
    d = repo.aip_dir(a["id"])
    assert (d / "data/submission/mucluc.xlsx").is_file()
    report = json.loads((d / "data/submission/validation-report.json").read_text(encoding="utf-8"))
    assert report["fileCode"] == a["fileCode"] and report["valid"] is True
    originals = [f for f in info["files"] if f["role"] == "original"]
    assert len(originals) == a["documents"] == 3
    for f in originals:
        assert f["puid"] and f["puid"].startswith("fmt/")
        assert (d / "data" / f["path"]).stat().st_size == f["size"]
        assert Path(f["path"]).stem.startswith(a["fileCode"] + ".")
    premis = etree.parse(str(d / "data/metadata/preservation/premis.xml"))
    types = {e.text for e in premis.iter("{http://www.loc.gov/premis/v3}eventType")}
    assert {"ingestion", "validation", "format identification", "message digest calculation", "creation"} <= types
    assert {e["type"] for e in info["events"]} >= {"ingestion", "validation", "creation"}
    assert info["replicas"][0]["tier"] == "primary" and info["replicas"][0]["status"] == "ok"
    assert repo.catalog.verify_chain() == []


def test_reingest_is_refused_with_finding_and_changes_nothing(repo, batch):
    repo.ingest(batch)
    before = repo.list_aips()
    res = repo.ingest(batch)
    assert res.aips == []
    assert {f["code"] for r in res.refused for f in r["findings"]} == {"E-ID-EXISTS"}
    assert repo.list_aips() == before


def test_dossier_level_problem_refuses_only_that_dossier(repo, tmp_path):
    info = make_sample(tmp_path / "b", dossiers=3, docs=2, seed=5, defects=["page-count"])
    res = repo.ingest(info.root)
    assert len(res.refused) == 1 and len(res.aips) == 2
    bad = res.refused[0]["fileCode"]
    assert bad not in {a["fileCode"] for a in repo.list_aips()}
    q = Path(res.refused[0]["quarantine"])
    assert (q / "report.json").is_file() and any((q / "files").rglob("*.pdf"))
    assert any(e["outcome"] == "failure" and bad in e["detail"] for e in repo.events())


def test_batch_level_problem_refuses_everything(repo, tmp_path):
    info = make_sample(tmp_path / "b", dossiers=2, docs=2, seed=6, defects=["bad-workbook"])
    res = repo.ingest(info.root)
    assert res.aips == [] and repo.list_aips() == []
    assert res.refused and Path(res.refused[0]["quarantine"]).is_dir()


def test_strict_refuses_the_batch_on_a_warning(repo, tmp_path):
    info = make_sample(tmp_path / "b", dossiers=2, docs=2, seed=6, defects=["grayscale"])
    assert repo.validate(info.root).accepted()  # a warning alone is accepted
    res = repo.ingest(info.root, strict=True)
    assert res.aips == [] and res.refused


def test_zip_and_csv_and_bag_inputs(repo, tmp_path):
    z = make_sample(tmp_path / "z", dossiers=1, docs=2, seed=21)
    zip_sample(z.root, tmp_path / "z.zip")
    c = make_sample(tmp_path / "c", dossiers=1, docs=2, seed=22, form="csv")
    b = make_sample(tmp_path / "b", dossiers=1, docs=2, seed=23)
    bag_sample(b.root, tmp_path / "bag")
    for src in (tmp_path / "z.zip", c.root, tmp_path / "bag"):
        res = repo.ingest(src)
        assert res.refused == [] and len(res.aips) == 1, (src, res.to_dict())
    # the received bag's bag-info is kept in the AIP
    bag_aip = [a for a in repo.list_aips() if a["fileCode"] in b.file_codes][0]
    assert (repo.aip_dir(bag_aip["id"]) / "data/submission/bag-info.txt").is_file()
    assert not any((repo.root / "staging").glob("sip-*")), "extracted zips are cleaned up"


def test_checksum_mismatch_found_while_copying(repo, tmp_path):
    info = make_sample(tmp_path / "b", dossiers=2, docs=2, seed=31, defects=["checksum"])
    res = repo.ingest(info.root)
    codes = {f["code"] for r in res.refused for f in r["findings"]}
    assert "E-SUM-MISMATCH" in codes and len(res.aips) == 1
    assert not any(p for p in (repo.root / "staging").iterdir() if p.is_dir())


def test_catalog_lists_every_payload_file_with_the_bag_digests(repo, batch):
    repo.ingest(batch)
    for a in repo.list_aips():
        d = repo.aip_dir(a["id"])
        bag = bagit.Bag(str(d))
        octets, count = map(int, bag.info["Payload-Oxum"].split("."))
        info = repo.show_aip(a["id"])
        assert a["bytes"] == octets and len(info["files"]) == count
        manifest = dict(line.split("  ", 1)[::-1] for line in (d / "manifest-sha256.txt").read_text().splitlines())
        assert {f"data/{f['path']}": f["sha256"] for f in info["files"]} == manifest


def _retarget_checksum(root: Path, rel: str, new_rel: str) -> None:
    import hashlib

    lines = []
    for line in (root / "checksums.sha256").read_text().splitlines():
        digest, name = line.split("  ", 1)
        if name == rel:
            name = new_rel
            digest = hashlib.sha256((root / new_rel).read_bytes()).hexdigest()
        lines.append(f"{digest}  {name}")
    (root / "checksums.sha256").write_text("\n".join(lines) + "\n")


def test_tiff_master_and_excel_typed_cells_are_ingested(repo, tmp_path):
    """A 300-dpi multi-page TIFF instead of a PDF, and cells Excel stores as dates and numbers."""
    import datetime as dt

    import openpyxl
    from PIL import Image

    from preserve.sip.profile import fold

    info = make_sample(tmp_path / "b", dossiers=1, docs=2, seed=71)
    wb = openpyxl.load_workbook(info.root / "mucluc.xlsx")
    ws = wb["TaiLieu"]
    cols = {fold(c.value): c.column for c in ws[1] if c.value}
    col = lambda *names: next(cols[fold(n)] for n in names if fold(n) in cols)  # noqa: E731
    file_col = col("file", "Tệp")
    rel = ws.cell(2, file_col).value
    pages = info.pages[ws.cell(2, col("docCode", "Mã định danh tài liệu")).value]
    frames = [Image.new("RGB", (2480, 3508), (235, 225, 200)) for _ in range(pages)]  # A4 at 300 dpi
    new_rel = rel[:-4] + ".tif"
    frames[0].save(info.root / new_rel, save_all=True, append_images=frames[1:], dpi=(300, 300), compression="jpeg")
    (info.root / rel).unlink()
    ws.cell(2, file_col, new_rel)
    issued = col("issuedDate", "Ngày tháng năm văn bản")
    ws.cell(3, issued).value = dt.datetime(1966, 4, 12)
    ws.cell(3, col("numberOfPage", "Số lượng trang")).value = float(ws.cell(3, col("numberOfPage", "Số lượng trang")).value)
    wb.save(info.root / "mucluc.xlsx")
    _retarget_checksum(info.root, rel, new_rel)
    _retarget_checksum(info.root, "mucluc.xlsx", "mucluc.xlsx")
    res = repo.ingest(info.root)
    assert res.refused == [], res.to_dict()
    aip = repo.show_aip(res.aips[0]["id"])
    tif = [f for f in aip["files"] if f["path"].endswith(".tif")]
    assert len(tif) == 1 and tif[0]["mime"] == "image/tiff" and tif[0]["puid"]
    issued_iso = {d["docCode"]: d.get("issuedDate") for d in aip["documents"]}
    assert "1966-04-12" in issued_iso.values()
