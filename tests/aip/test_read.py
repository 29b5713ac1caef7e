"""read_aip: an AIP read back from a tier registers in a fresh catalog exactly the rows its ingest wrote (the
catalog is an index, not the truth). Real sample batches, real ingests, no mocks."""

from __future__ import annotations

import csv
import shutil
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import bagit
import pytest
from PIL import Image
from sqlmodel import select

from preserve.aip.build import build_aip
from preserve.aip.read import AipReadError, read_aip, read_aip_files
from preserve.catalog import Catalog
from preserve.catalog.db import read_session
from preserve.catalog.models import AgentRecord, Fonds
from preserve.keys import generate_keys, load_signer
from preserve.repository import Repository, validate_sip
from preserve.sip.fields import parse_date
from preserve.sip.profile import Sheet, load_profile
from preserve.sip.sample import bag_sample, make_sample

ABSENT = "<absent>"
PREMIS = "data/metadata/preservation/premis.xml"
HOSO = "data/metadata/descriptive/hoso.xml"


# --- comparing catalogs -----------------------------------------------------------------------------------


def differences(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Every (key path, old, new) where two JSON-like values differ, types included (1 is not "1" or 1.0)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += differences(old.get(key, ABSENT), new.get(key, ABSENT), f"{path}.{key}" if path else str(key))
        return out
    if isinstance(old, list) and isinstance(new, list):
        out = [(f"{path}[len]", len(old), len(new))] if len(old) != len(new) else []
        for i, (a, b) in enumerate(zip(old, new)):
            out += differences(a, b, f"{path}[{i}]")
        return out
    return [] if type(old) is type(new) and old == new else [(path, old, new)]


def _without_chain(info: dict[str, Any]) -> dict[str, Any]:
    """get_aip without the events' seq and hash: a new catalog's chain numbers and hashes them afresh."""
    return {**info, "events": [{k: v for k, v in e.items() if k not in ("seq", "hash")} for e in info["events"]]}


def _rows(catalog: Catalog, model: type) -> list[dict[str, Any]]:
    with read_session(catalog.engine) as s:
        return sorted((r.model_dump() for r in s.exec(select(model))), key=lambda r: str(r))


def rebuild(repo: Repository, url: str) -> Catalog:
    """A fresh catalog with every AIP of `repo` read back from its primary tier, in creation order, with the
    original rows' path, tier, tag manifest digest and verification time."""
    new = Catalog.open(url)
    tier = repo.settings.primary_tier
    for summary in repo.list_aips():
        old = repo.show_aip(summary["id"])
        replica = next(r for r in old["replicas"] if r["tier"] == tier)
        new.register_aip(read_aip(repo.aip_dir(summary["id"])), old["path"], tier, old["tagmanifest_sha256"],
                         replica["last_verified"])
    return new


def shown(diffs: list[tuple[str, Any, Any]]) -> str:
    return "\n".join(f"  {key}: {old!r} -> {new!r}" for key, old, new in diffs)


def assert_same_catalog(repo: Repository, new: Catalog) -> None:
    for summary in repo.list_aips():
        diffs = differences(_without_chain(repo.show_aip(summary["id"])), _without_chain(new.get_aip(summary["id"])))
        assert not diffs, f"AIP {summary['id']} ({summary['fileCode']}), old -> rebuilt:\n{shown(diffs)}"
    for model in (Fonds, AgentRecord):
        diffs = differences(_rows(repo.catalog, model), _rows(new, model))
        assert not diffs, f"table {model.__tablename__}, old -> rebuilt:\n{shown(diffs)}"
    assert new.verify_chain() == []


def test_differences_lists_each_key_path():
    old = {"a": 1, "b": [{"c": "x"}, 2], "d": None}
    new = {"a": "1", "b": [{"c": "y"}], "e": 0}
    assert differences(old, new) == [("a", 1, "1"), ("b[len]", 2, 1), ("b[0].c", "x", "y"), ("d", None, ABSENT),
                                     ("e", ABSENT, 0)]


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stored(tmp_path_factory, sample_cache) -> Iterator[Repository]:
    """A repository holding the two AIPs of the standard sample (xlsx workbook, checksums.sha256), read only."""
    root = tmp_path_factory.mktemp("stored")
    repo = Repository.init(root / "repo", "Lưu trữ lịch sử Tỉnh ủy (test)", offsite=False)
    res = repo.ingest(shutil.copytree(sample_cache, root / "lo-mau"), replicate=False)
    assert res.refused == [] and len(res.aips) == 2
    yield repo
    repo.close()


@pytest.fixture
def aip_copy(stored, tmp_path) -> Path:
    """A copy of one stored AIP that a test may damage."""
    return Path(shutil.copytree(stored.aip_dir(stored.list_aips()[0]["id"]), tmp_path / "v1"))


# --- round trips ------------------------------------------------------------------------------------------


def test_standard_batch_rebuilds_the_same_rows(stored, tmp_path):
    assert_same_catalog(stored, rebuild(stored, f"sqlite:///{tmp_path / 'new.sqlite'}"))


def test_reads_only_metadata_through_a_callable(stored):
    bag = stored.aip_dir(stored.list_aips()[1]["id"])
    names: list[str] = []

    def read(name: str) -> bytes:
        names.append(name)
        return (bag / name).read_bytes()

    assert read_aip_files(read, "primary:aips/…/v1") == read_aip(bag)
    assert [n for n in names if n.startswith("data/representations/")] == []
    assert {"data/METS.xml", PREMIS, HOSO, "data/submission/mucluc.xlsx", "manifest-sha512.txt"} <= set(names)


def _csv_rows(path: Path, sheet: Sheet) -> tuple[list[str], list[str], list[dict[str, str]]]:
    """(header, field keys, rows by field key) of a sample's csv sheet, whose headers are keys or labels."""
    with path.open(encoding="utf-8", newline="") as f:
        header, *body = list(csv.reader(f))
    keys = [sheet.match_header(h).key for h in header]
    return header, keys, [dict(zip(keys, r)) for r in body]


def _edit_csv(path: Path, sheet: Sheet, changes: dict[int, dict[str, str]], drop: str) -> None:
    """Change cells (row index -> {field key: text}) and remove the column of field `drop`."""
    header, keys, rows = _csv_rows(path, sheet)
    for i, values in changes.items():
        rows[i].update(values)
    keep = [i for i, k in enumerate(keys) if k != drop]
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow([header[i] for i in keep])
        out.writerows([[r[keys[i]] for i in keep] for r in rows])


def _partial(text: str, form: str) -> str:
    d = parse_date(text)
    return str(d.year) if form == "y" else f"{d.month:02d}/{d.year}"


def _tiff_instead_of_pdf(root: Path, rel: str, pages: int) -> str:
    """Replace a sample scan by an A4 200-dpi RGB TIFF of as many pages; returns its batch path."""
    frames = [Image.new("RGB", (1654, 2339), (240, 232, 214)) for _ in range(pages)]
    new_rel = rel[:-4] + ".tif"
    frames[0].save(root / new_rel, save_all=True, append_images=frames[1:], dpi=(200, 200), compression="tiff_lzw")
    (root / rel).unlink()
    return new_rel


def test_varied_fields_round_trip(repo, tmp_path):
    """csv workbook without checksums; partial dates; codes given as text; optional cells left empty; a
    column missing altogether; keywords; a Mật document (accepted with a warning); a multi-page TIFF."""
    profile = load_profile()
    info = make_sample(tmp_path / "b", dossiers=2, docs=3, seed=2, form="csv", defects=["secret"], checksums=False)
    nfd_keywords = unicodedata.normalize("NFD", "đảng viên; chi bộ; hợp tác hoá")
    _edit_csv(info.root / "hoso.csv", profile.dossier, {
        0: {"mode": "Công khai", "maintenance": "Vĩnh viễn"},
        1: {"description": "", "keyword": nfd_keywords}}, drop="boxNo")
    docs = _csv_rows(info.root / "tailieu.csv", profile.document)[2]
    tif = docs[4]
    assert info.pages[tif["docCode"]] > 1  # a multi-page TIFF
    _edit_csv(info.root / "tailieu.csv", profile.document, {
        0: {"codeNumber": "", "codeNotation": "", "signer": "", "language": "", "typeName": "Nghị quyết"},
        1: {"issuedDate": _partial(docs[1]["issuedDate"], "y"), "mode": "Công khai"},
        2: {"issuedDate": _partial(docs[2]["issuedDate"], "my")},
        4: {"file": _tiff_instead_of_pdf(info.root, tif["file"], info.pages[tif["docCode"]])}}, drop="autograph")

    res = repo.ingest(info.root, replicate=False)
    assert res.refused == [], res.to_dict()["refused"]
    assert "W-RULE-SECRET-APPROVAL" in {f.code for f in res.findings}
    new = rebuild(repo, f"sqlite:///{tmp_path / 'new.sqlite'}")
    assert_same_catalog(repo, new)

    # the rebuilt rows carry what the workbook said, normalised as at ingest
    aips = [new.get_aip(a["id"]) for a in repo.list_aips()]
    dossiers = {a["fileCode"]: a["dossier"] for a in aips}
    first, second = (dossiers[c] for c in info.file_codes)
    assert (first["mode"], first["maintenance"]) == ("01", "01")
    assert len(first["startDate_iso"]) == 7 and first["startDate"].count("/") == 1  # mm/yyyy
    assert len(second["startDate_iso"]) == 4 and len(first["endDate_iso"]) == 4  # yyyy
    assert second["keyword"] == unicodedata.normalize("NFC", nfd_keywords) and second["description"] == ""
    assert first["boxNo"] is None and first["inforSign"] == ""  # a column missing vs a column left empty
    documents = {d["docCode"]: d for a in aips for d in a["documents"]}
    emptied, year_only, month_only = (documents[c] for c in info.doc_codes[:3])
    assert (emptied["codeNumber"], emptied["signer"], emptied["language"]) == ("", "", "")
    assert emptied["autograph"] is None and emptied["typeName"] == "01" and emptied["secrecy"] == "01"
    assert len(year_only["issuedDate_iso"]) == 4 and year_only["mode"] == "01"
    assert len(month_only["issuedDate_iso"]) == 7
    tiff = next(f for a in aips for f in a["files"] if f["doc_code"] == tif["docCode"])
    assert (tiff["mime"], tiff["pages"]) == ("image/tiff", info.pages[tif["docCode"]])
    assert tiff["path"].endswith(".tif") and tiff["puid"] and tiff["puid"] != "fmt/18"


def test_read_back_equals_the_built_aip_of_a_received_bag(sample_cache, tmp_path):
    """Straight from build_aip (as ingest calls it): every field of the Aip, its received bag-info included."""
    generate_keys(tmp_path / "keys", "Lưu trữ lịch sử Tỉnh ủy (test)")
    bag = bag_sample(sample_cache, tmp_path / "bag", bag_info={"Contact-Name": ["Nguyễn Văn A", "Trần Thị B"]})
    validation = validate_sip(bag, scratch=tmp_path)
    try:
        plans = validation.accepted()
        assert len(plans) == 2
        for plan in plans:
            built = build_aip(plan, validation, tmp_path / "staging", officer="nguyenthilan",
                              organisation="Lưu trữ lịch sử Tỉnh ủy (test)", signer=load_signer(tmp_path / "keys"),
                              now="2026-11-25T11:34:12+07:00", profile_name="vn-party-archive")
            diffs = differences(asdict(built.aip), asdict(read_aip(built.bag_dir)))
            assert not diffs, f"{plan.file_code}, built -> read:\n{shown(diffs)}"
    finally:
        validation.package.close()
    received = {k: v if isinstance(v, str) else "; ".join(v) for k, v in bagit.Bag(str(bag)).info.items()}
    assert built.aip.bag_info == received and received["Contact-Name"] == "Nguyễn Văn A; Trần Thị B"


def test_text_comes_back_nfc(aip_copy):
    """Text is NFC, as ingest gave the catalog, even where a file holds another form."""
    aip = read_aip(aip_copy)
    title, organisation = aip.dossier["title"], aip.organisation
    for name, text in ((HOSO, title), (PREMIS, organisation)):
        nfd = unicodedata.normalize("NFD", text)
        assert nfd != text
        path = aip_copy / name
        path.write_bytes(path.read_bytes().replace(text.encode(), nfd.encode()))
    again = read_aip(aip_copy)
    assert again.dossier["title"] == title
    assert [a.name for a in again.agents if a.type == "organization"] == [organisation]


# --- refusals ---------------------------------------------------------------------------------------------


def _replace(bag: Path, name: str, old: str, new: str) -> None:
    path = bag / name
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _original_digest(bag: Path) -> str:
    lines = (bag / "manifest-sha256.txt").read_text(encoding="utf-8").splitlines()
    return next(line.split()[0] for line in lines if "/representations/" in line)


def _list_extra_file(bag: Path) -> None:
    for manifest in ("manifest-sha256.txt", "manifest-sha512.txt"):
        with (bag / manifest).open("a", encoding="utf-8") as f:
            f.write(f"{'ab' * 32}  data/extra.txt\n")


DAMAGE: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "METS.xml missing": (lambda b: (b / "data/METS.xml").unlink(), ("data/METS.xml is missing",)),
    "premis.xml not well-formed": (lambda b: _replace(b, PREMIS, "</premis:premis>", "</premis:prem"),
                                   (PREMIS, "not well-formed")),
    "premis.xml digest differs": (lambda b: _replace(b, PREMIS, _original_digest(b), "0" * 64),
                                  (f"SHA-256 {'0' * 64} in premis.xml, but", "data/representations/original/data/")),
    "a file only the manifests list": (_list_extra_file, ("manifest-sha256.txt lists data/extra.txt",)),
    "a size that Payload-Oxum contradicts": (lambda b: _replace(b, "bag-info.txt", "Payload-Oxum: ", "Payload-Oxum: 1"),
                                             ("bag-info.txt gives Payload-Oxum",)),
    "an AIP id that METS contradicts": (lambda b: _replace(b, HOSO, 'aip="uuid-', 'aip="uuid-0'),
                                        (HOSO, "but METS.xml is AIP")),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_aip_is_refused_naming_the_file(aip_copy, damage):
    change, expected = DAMAGE[damage]
    change(aip_copy)
    with pytest.raises(AipReadError) as exc:
        read_aip(aip_copy)
    message = str(exc.value)
    assert str(aip_copy) in message and exc.value.hint
    for part in expected:
        assert part in message


ENTITIES = {
    "external entity": '<!DOCTYPE hoSo [<!ENTITY leak SYSTEM "file://{secret}">]>',
    "internal entity": '<!DOCTYPE hoSo [<!ENTITY leak "{secret}">]>',
    "external DTD": '<!DOCTYPE hoSo SYSTEM "file://{secret}">',
}


@pytest.mark.parametrize("doctype", ENTITIES)
def test_descriptive_xml_with_a_dtd_or_entity_is_refused_not_resolved(aip_copy, tmp_path, doctype):
    secret = tmp_path / "secret.txt"
    secret.write_text("BÍ MẬT", encoding="utf-8")
    hoso = aip_copy / HOSO
    head, body = hoso.read_text(encoding="utf-8").split("\n", 1)
    title = read_aip(aip_copy).dossier["title"]
    body = body.replace(title, "&leak;") if "ENTITY" in ENTITIES[doctype] else body
    hoso.write_text(f"{head}\n{ENTITIES[doctype].format(secret=secret)}\n{body}", encoding="utf-8")
    with pytest.raises(AipReadError) as exc:
        read_aip(aip_copy)
    assert HOSO in str(exc.value) and "declares a DTD or entities" in str(exc.value)
    assert "BÍ MẬT" not in str(exc.value)


def test_folders_that_are_not_aips_are_refused(sample_cache, tmp_path):
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "nowhere", sample_cache):
        with pytest.raises(AipReadError, match="is not an AIP: it has no bagit.txt"):
            read_aip(folder)
    received = bag_sample(sample_cache, tmp_path / "sip-bag")  # a BagIt bag, but a batch, not an AIP
    with pytest.raises(AipReadError, match="data/METS.xml is missing"):
        read_aip(received)
