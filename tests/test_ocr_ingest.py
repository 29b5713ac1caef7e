"""OCR at ingest (issue 7): each scan gets a two-layer PDF/A-2 derivative in representations/ocr/, described in
PREMIS and METS, its text indexed for search; the scan itself stays byte-identical; `--no-ocr` and
`ocr = "off"` skip it. Real ocrmypdf and Tesseract (vie): one small batch, OCRed once for the module."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pikepdf
import pytest
from lxml import etree

from preserve.aip.read import read_aip
from preserve.aip.xmlschemas import validate
from preserve.catalog import Catalog
from preserve.ocr.engine import pdfa_problems
from preserve.repository import Repository
from preserve.search.fold import fold
from preserve.sip.sample import make_sample

PRESERVE = str(Path(sys.executable).parent / "preserve")
P = {"p": "http://www.loc.gov/premis/v3", "m": "http://www.loc.gov/METS/", "x": "http://www.w3.org/1999/xlink"}

pytestmark = pytest.mark.skipif(shutil.which("ocrmypdf") is None, reason="ocrmypdf is not installed (make setup)")


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ocred(tmp_path_factory):
    """A repository with one dossier of two one-page documents, ingested with OCR on (the default policy)."""
    base = tmp_path_factory.mktemp("ocr")
    batch = make_sample(base / "lo", dossiers=1, docs=2, seed=21, pages=(1, 1)).root
    received = {p.relative_to(batch).as_posix(): sha(p) for p in batch.rglob("*.pdf")}
    mp = pytest.MonkeyPatch()
    mp.setenv("PRESERVE_OCR", "at-ingest")
    repo = Repository.init(base / "repo", "Lưu trữ lịch sử Tỉnh ủy (test)", offsite=False)
    try:
        result = repo.ingest(batch)
        assert len(result.aips) == 1, result.to_dict()
        aip_id = result.aips[0]["id"]
        yield {"repo": repo, "aip": aip_id, "bag": repo.aip_dir(aip_id), "received": received, "batch": batch,
               "result": result}
    finally:
        repo.close()
        mp.undo()


def test_each_scan_gets_a_pdfa2_two_layer_derivative(ocred):
    bag = ocred["bag"]
    originals = sorted((bag / "data/representations/original/data").glob("*.pdf"))
    derived = sorted((bag / "data/representations/ocr/data").glob("*.pdf"))
    assert len(originals) == 2 and [p.name for p in derived] == [p.name for p in originals]
    assert ocred["result"].aips[0]["ocr"] == 2
    for pdf in derived:
        with pikepdf.open(pdf) as doc:
            meta = doc.open_metadata()
            assert meta.get("pdfaid:part") == "2", dict(meta)
            assert meta.get("pdfaid:conformance") in ("B", "U")
            assert len(doc.pages) == 1
        assert pdfa_problems(pdf) == []
        text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True).stdout
        # the Party header every sample page carries, read back from the text layer
        assert "ĐẢNG" in text.upper() and "VIỆT NAM" in text.upper(), text[:300]


def test_the_scans_are_stored_byte_identical(ocred):
    bag = ocred["bag"]
    stored = {p.name: sha(p) for p in (bag / "data/representations/original/data").glob("*.pdf")}
    assert sorted(stored.values()) == sorted(ocred["received"].values())
    # the batch itself was not touched by OCR either
    assert {p.relative_to(ocred["batch"]).as_posix(): sha(p) for p in ocred["batch"].rglob("*.pdf")} == ocred["received"]


def test_the_bag_is_complete_and_the_derivatives_are_in_its_manifests(ocred):
    bag = ocred["bag"]
    manifest = (bag / "manifest-sha256.txt").read_text(encoding="utf-8")
    for pdf in (bag / "data/representations/ocr/data").glob("*.pdf"):
        assert f"{sha(pdf)}  data/representations/ocr/data/{pdf.name}" in manifest
    audit = ocred["repo"].audit(due=False)
    assert audit.ok and not audit.damaged


def test_premis_describes_the_derivation_the_engine_and_the_format(ocred, shared_dir):
    raw = (ocred["bag"] / "data/metadata/preservation/premis.xml").read_bytes()
    assert validate(raw, "premis") == []
    root = etree.fromstring(raw)
    for pdf in sorted((ocred["bag"] / "data/representations/ocr/data").glob("*.pdf")):
        path = f"representations/ocr/data/{pdf.name}"
        obj = root.xpath(f"p:object[p:objectIdentifier/p:objectIdentifierValue='{path}']", namespaces=P)
        assert len(obj) == 1
        src = obj[0].xpath("p:relationship[p:relationshipType='derivation' and p:relationshipSubType='has source']"
                           "/p:relatedObjectIdentifier/p:relatedObjectIdentifierValue/text()", namespaces=P)
        assert src == [f"representations/original/data/{pdf.name}"]
        fixity = obj[0].xpath("p:objectCharacteristics/p:fixity[p:messageDigestAlgorithm='SHA-256']"
                              "/p:messageDigest/text()", namespaces=P)
        assert fixity == [sha(pdf)]
        key = obj[0].xpath("p:objectCharacteristics/p:format/p:formatRegistry/p:formatRegistryKey/text()",
                           namespaces=P)
        assert key and key[0].startswith("fmt/"), "the derivative's format is identified (PRONOM)"
    creation = [e for e in root.xpath("p:event", namespaces=P)
                if e.findtext("p:eventType", namespaces=P) == "creation"
                and "ocr" in "".join(e.xpath(".//p:linkingAgentIdentifierValue/text()", namespaces=P))]
    assert len(creation) == 1
    detail = creation[0].findtext("p:eventDetailInformation/p:eventDetail", namespaces=P)
    assert "ocrmypdf" in detail.lower() and "tesseract" in detail.lower() and "vie" in detail
    agent = root.xpath("p:agent[p:agentIdentifier/p:agentIdentifierValue='agent-software-ocrmypdf']", namespaces=P)
    assert agent and any(ch.isdigit() for ch in agent[0].findtext("p:agentVersion", namespaces=P))


def test_mets_lists_the_ocr_representation_and_validates(ocred, shared_dir):
    raw = (ocred["bag"] / "data/METS.xml").read_bytes()
    assert validate(raw, "mets") == []
    root = etree.fromstring(raw)
    hrefs = root.xpath("m:fileSec/m:fileGrp[@USE='Representations/ocr']/m:file/m:FLocat/@x:href", namespaces=P)
    assert len(hrefs) == 2 and all(h.startswith("representations/ocr/data/") for h in hrefs)
    div = root.xpath("m:structMap//m:div[@LABEL='Representations/ocr']/m:div[@TYPE='document']", namespaces=P)
    assert len(div) == 2


def test_the_ocr_text_is_searchable_with_and_without_diacritics(ocred):
    repo = ocred["repo"]
    with_marks = repo.search("Đảng Cộng sản Việt Nam")
    without = repo.search("dang cong san viet nam")
    assert with_marks["total"] == 2 and without["total"] == 2
    assert {r["fileCode"] for r in without["results"]} == {ocred["result"].aips[0]["fileCode"]}


def test_read_back_and_a_rebuilt_catalog_keep_the_derivatives_and_their_text(ocred, tmp_path):
    aip = read_aip(ocred["bag"])
    derived = aip.derivatives()
    assert len(derived) == 2 and all(f.derived_from and f.derived_from.startswith("representations/original/")
                                     for f in derived)
    assert set(aip.texts) == {f.doc_code for f in derived}
    assert all("VIỆT NAM" in t.upper() for t in aip.texts.values())
    info = ocred["repo"].show_aip(ocred["aip"])
    tm = info["tagmanifest_sha256"]
    with Catalog.open(f"sqlite:///{tmp_path / 'other.sqlite'}") as other:
        other.register_aip(aip, info["path"], "primary", tm, None)
        assert other.search("viet nam")["total"] == 2
        rows = {f["path"]: f for f in other.get_aip(ocred["aip"])["files"]}
        assert all(rows[f.path]["derived_from"] == f.derived_from for f in derived)


def test_no_ocr_for_one_batch_and_ocr_off_in_settings(ocred, tmp_path):
    env = {**os.environ, "PRESERVE_OCR": ""}  # the settings decide
    repo_dir = tmp_path / "repo"
    subprocess.run([PRESERVE, "init", str(repo_dir), "--no-offsite"], check=True, capture_output=True,
                   env=env)
    batch = make_sample(tmp_path / "a", dossiers=1, docs=1, seed=31, pages=(1, 1)).root
    p = subprocess.run([PRESERVE, "ingest", str(batch), "--no-ocr", "--repo", str(repo_dir), "--json"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    aip = json.loads(p.stdout)["aips"][0]
    assert aip["ocr"] == 0 and not list(Path(aip["path"]).glob("data/representations/ocr/**/*.pdf"))
    # ocr = "off" in preserve.toml does the same; an unknown value is a usage error that says what to write
    toml = repo_dir / "preserve.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('ocr = "at-ingest"', 'ocr = "never"'), encoding="utf-8")
    batch2 = make_sample(tmp_path / "b", dossiers=1, docs=1, seed=32, pages=(1, 1)).root
    p = subprocess.run([PRESERVE, "ingest", str(batch2), "--repo", str(repo_dir)], capture_output=True, text=True,
                       env=env)
    assert p.returncode == 2 and 'ocr = "off"' in p.stderr and "never" in p.stderr
    toml.write_text(toml.read_text(encoding="utf-8").replace('ocr = "never"', 'ocr = "off"'), encoding="utf-8")
    p = subprocess.run([PRESERVE, "ingest", str(batch2), "--repo", str(repo_dir), "--json"], capture_output=True,
                       text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["aips"][0]["ocr"] == 0


def test_search_cli_json_shape_and_exit_codes(ocred):
    repo_dir = str(ocred["repo"].root)
    word = fold("Việt Nam")
    p = subprocess.run([PRESERVE, "search", word, "--repo", repo_dir, "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["total"] == 2 and len(data["results"]) == 2
    assert {"docCode", "fileCode", "title", "snippet", "score"} <= set(data["results"][0])
    p = subprocess.run([PRESERVE, "search", "xyzzyquux", "--repo", repo_dir, "--json"], capture_output=True,
                       text=True)
    none = json.loads(p.stdout)
    assert p.returncode == 1 and none["results"] == [] and none["total"] == 0
    p = subprocess.run([PRESERVE, "search", "viet", "--type", "Không có loại này", "--repo", repo_dir],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "Nghị quyết" in p.stderr
    p = subprocess.run([PRESERVE, "search", "viet", "--from", "32/13/2020", "--repo", repo_dir],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "dd/mm/yyyy" in p.stderr


def test_an_access_copy_is_made_from_the_ocr_derivative_and_keeps_its_text(ocred, tmp_path):
    import zipfile

    repo = ocred["repo"]
    users = repo.users()
    users.add("docgia", "reader", full_name="Trần Văn Đọc")
    users.add("thuthu", "archivist", full_name="Lê Thị Lưu")
    doc = repo.show_aip(ocred["aip"])["documents"][0]["docCode"]
    reqs = repo.access_requests()
    res = reqs.request("docgia", "Nghiên cứu", doc=doc)
    if res["status"] == "pending":
        reqs.approve(res["id"], "thuthu", "Đúng mục đích")
    dip = repo.make_access_copy(res["id"], tmp_path / "dip")
    with zipfile.ZipFile(dip["zip"]) as z:
        pdfs = [n for n in z.namelist() if n.lower().endswith(".pdf")]
        assert len(pdfs) == 1
        (tmp_path / "copy.pdf").write_bytes(z.read(pdfs[0]))
        mets = z.read(next(n for n in z.namelist() if n.endswith("METS.xml"))).decode()
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(tmp_path / "copy.pdf"), "-"], capture_output=True,
                          text=True).stdout
    assert "BẢN SAO" in text and "VIỆT NAM" in text.upper()  # the watermark, and the OCR text layer under it
    assert f"representations/ocr/data/{doc}.pdf" in mets


def test_a_rebuilt_catalog_finds_the_ocr_text_again(ocred, tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(ocred["repo"].root, copy, symlinks=True)
    (copy / "catalog.sqlite").unlink()
    for extra in copy.glob("catalog.sqlite-*"):
        extra.unlink()
    repo = Repository.open(copy)
    try:
        assert repo.search("viet nam")["total"] == 0
        result = repo.rebuild_catalog("primary")
        assert [a["status"] for a in result.aips] == ["registered"]
        found = repo.search("dang cong san viet nam")
        assert found["total"] == 2 and all("«" in r["snippet"] for r in found["results"])
        files = {f["path"]: f for f in repo.show_aip(ocred["aip"])["files"]}
        assert sum(1 for f in files.values() if f["role"] == "derivative") == 2
    finally:
        repo.close()


def test_ocr_that_fails_leaves_the_dossier_stored_with_its_scans_and_a_warning(tmp_path, monkeypatch):
    """A document whose OCR cannot finish in time ([ingest] ocr_page_seconds) is stopped: the dossier is stored
    with its scans, W-OCR-FAILED says so, and a creation event with outcome failure keeps the gap on record."""
    monkeypatch.setenv("PRESERVE_OCR", "at-ingest")
    root = tmp_path / "repo"
    Repository.init(root, "Lưu trữ (test)", offsite=False).close()
    toml = root / "preserve.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('ocr = "at-ingest"',
                                                             'ocr = "at-ingest"\nocr_page_seconds = 0.1'),
                    encoding="utf-8")
    batch = make_sample(tmp_path / "lo", dossiers=1, docs=1, seed=41, pages=(1, 1)).root
    with Repository.open(root) as repo:
        result = repo.ingest(batch)
        assert len(result.aips) == 1 and result.aips[0]["ocr"] == 0
        warned = [f for f in result.findings if f.code == "W-OCR-FAILED"]
        assert len(warned) == 1 and "timed out" in warned[0].message_en and warned[0].message_vi
        bag = repo.aip_dir(result.aips[0]["id"])
        assert len(list((bag / "data/representations/original/data").glob("*.pdf"))) == 1
        assert not (bag / "data/representations/ocr").exists()
        events = repo.events(result.aips[0]["id"])
        failed = [e for e in events if e["type"] == "creation" and e["outcome"] == "failure"]
        assert len(failed) == 1 and "OCR" in failed[0]["detail"]
        assert repo.audit(due=False).ok
    toml.write_text(toml.read_text(encoding="utf-8").replace("ocr_page_seconds = 0.1", 'ocr_page_seconds = "x"'),
                    encoding="utf-8")
    p = subprocess.run([PRESERVE, "ingest", str(batch), "--repo", str(root)], capture_output=True, text=True,
                       env={**os.environ, "PRESERVE_OCR": "at-ingest"})
    assert p.returncode == 2 and "ocr_page_seconds" in p.stderr
