"""Sample scan batches: deterministic bytes, consistent workbook and scans, every defect really applied.

Validation codes are not tested here (see the validator's own table test); only that each defect changes the
batch as its description says, and that the codes it names exist in the registry.
"""

import csv
import hashlib
import re
import unicodedata
import zipfile
from pathlib import Path

import bagit
import openpyxl
import pikepdf
import pytest
from PIL import Image

from preserve.errors import UsageError
from preserve.findings import codes
from preserve.sip.profile import fold, load_profile
from preserve.sip.sample import DEFECTS, bag_sample, make_sample, parse_defects, text_bank, zip_sample

SMALL = dict(dossiers=1, docs=2, pages=(1, 1))  # one page per document keeps a defect batch fast


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def sheets(root: Path) -> dict[str, list[dict]]:
    """The workbook's rows keyed by field key (headers may be keys or Vietnamese labels)."""
    prof, out = load_profile(), {}
    if (root / "mucluc.xlsx").exists():
        wb = openpyxl.load_workbook(root / "mucluc.xlsx")
        tables = {name: [list(r) for r in wb[name].iter_rows(values_only=True)] for name in ("HoSo", "TaiLieu")}
    else:
        tables = {name: list(csv.reader((root / prof.sheets[name].csv).open(encoding="utf-8")))
                  for name in ("HoSo", "TaiLieu")}
    for name, rows in tables.items():
        keys = [(f.key if (f := prof.sheets[name].match_header(h)) else h) for h in rows[0]]
        out[name] = [dict(zip(keys, r)) for r in rows[1:]]
    return out


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    return make_sample(tmp_path_factory.mktemp("b") / "lo1", dossiers=2, docs=3, seed=7)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, batch):
    again = make_sample(tmp_path / "again", dossiers=2, docs=3, seed=7)
    assert digests(again.root) == digests(batch.root)
    other = make_sample(tmp_path / "other", dossiers=2, docs=3, seed=8)
    assert digests(other.root) != digests(batch.root)


def test_counts_and_identifiers(batch):
    rows = sheets(batch.root)
    assert len(rows["HoSo"]) == 2 and len(rows["TaiLieu"]) == 6
    pattern = re.compile(load_profile().rules["identifier_pattern"])
    for h in rows["HoSo"]:
        assert h["fileCode"] == f"{h['fondsCode']}.{h['catalogNo']}.{h['fileNo']}"
        assert all(pattern.match(str(h[k])) for k in ("fondsCode", "catalogNo", "fileNo"))
        docs = [t for t in rows["TaiLieu"] if t["fileCode"] == h["fileCode"]]
        assert h["totalDoc"] == len(docs)
        assert h["numberOfPage"] == sum(t["numberOfPage"] for t in docs)
        assert load_profile().resolve_code("maintenance", h["maintenance"]) == "01"
        assert load_profile().resolve_code("mode", h["mode"]) in {"01", "02", "03"}
    for t in rows["TaiLieu"]:
        assert t["docCode"] == f"{t['fileCode']}.{t['docOrdinal']:03d}"
        assert t["file"].endswith(f"/{t['docCode']}.pdf") and (batch.root / t["file"]).is_file()
        assert load_profile().resolve_code("typeName", t["typeName"])
        assert not t["secrecy"]
    assert batch.file_codes == [h["fileCode"] for h in rows["HoSo"]]
    assert batch.doc_codes == [t["docCode"] for t in rows["TaiLieu"]]
    assert batch.expected_codes == set() and batch.defects == []


def test_workbook_cells_keep_codes_as_text_and_counts_as_numbers(batch):
    wb = openpyxl.load_workbook(batch.root / "mucluc.xlsx")
    headers = {name: [c.value for c in wb[name][1]] for name in ("HoSo", "TaiLieu")}
    prof = load_profile()
    # one sheet uses the field keys, the other the Vietnamese labels
    styles = {name: all(h == prof.sheets[name].match_header(h).key for h in hs) for name, hs in headers.items()}
    assert sorted(styles.values()) == [False, True]
    h = sheets(batch.root)["HoSo"][0]
    assert isinstance(h["catalogNo"], str) and isinstance(h["totalDoc"], int) and isinstance(h["numberOfPage"], int)
    codes_seen = [v for r in sheets(batch.root)["HoSo"] for v in (r["maintenance"], r["mode"], r["format"])]
    assert any(v in ("01", "02", "03") for v in codes_seen)


def test_dates_in_every_accepted_form(tmp_path):
    forms = {r"^\d{2}/\d{2}/\d{4}$": "dmy", r"^\d{4}-\d{2}-\d{2}$": "iso", r"^\d{2}/\d{4}$": "my", r"^\d{4}$": "y"}
    info = make_sample(tmp_path / "d", dossiers=4, docs=1, pages=(1, 1))
    seen = set()
    for r in sheets(info.root)["HoSo"] + sheets(info.root)["TaiLieu"]:
        for k in ("startDate", "endDate", "issuedDate"):
            if k in r:
                seen |= {f for pat, f in forms.items() if re.match(pat, r[k])}
    assert seen == {"dmy", "iso", "my", "y"}


def test_scans_are_a4_jpeg_pdfs_at_200_dpi(batch):
    rows = sheets(batch.root)["TaiLieu"]
    for t in rows:
        with pikepdf.open(batch.root / t["file"]) as pdf:
            assert len(pdf.pages) == t["numberOfPage"] == batch.pages[t["docCode"]]
            for page in pdf.pages:
                (_, image), = page.get_images().items()
                assert image.Filter == pikepdf.Name.DCTDecode and image.ColorSpace == pikepdf.Name.DeviceRGB
                box = [float(v) for v in page.mediabox]
                assert (image.Width, image.Height) == (1654, 2339)
                assert round((box[2] - box[0]) / 72 * 200) == image.Width
                assert round((box[3] - box[1]) / 72 * 200) == image.Height


def test_vietnamese_text_is_nfc(batch):
    def strings(x):
        if isinstance(x, str):
            yield x
        elif isinstance(x, dict):
            for v in x.values():
                yield from strings(v)
        elif isinstance(x, list):
            for v in x:
                yield from strings(v)
    assert all(unicodedata.is_normalized("NFC", s) for s in strings(text_bank()))
    for rows in sheets(batch.root).values():
        for r in rows:
            assert all(unicodedata.is_normalized("NFC", v) for v in r.values() if isinstance(v, str))
    assert any("Tỉnh ủy" in (r["title"] or "") or "Đảng" in (r["title"] or "") for r in sheets(batch.root)["HoSo"])


def test_checksums_file(batch):
    lines = (batch.root / "checksums.sha256").read_text(encoding="utf-8").splitlines()
    listed = dict(reversed(line.split("  ", 1)) for line in lines)
    assert listed == {k: v for k, v in digests(batch.root).items() if k != "checksums.sha256"}


def test_csv_form_and_no_checksums(tmp_path):
    info = make_sample(tmp_path / "c", form="csv", checksums=False, seed=3, **SMALL)
    assert {p.name for p in info.root.iterdir()} == {"hoso.csv", "tailieu.csv", "scans"}
    rows = sheets(info.root)
    assert [r["fileCode"] for r in rows["HoSo"]] == info.file_codes
    assert [r["docCode"] for r in rows["TaiLieu"]] == info.doc_codes
    assert (info.root / "hoso.csv").read_bytes().decode("utf-8")


def test_zip_sample(tmp_path, batch):
    z = zip_sample(batch.root, tmp_path / "lo1.zip")
    with zipfile.ZipFile(z) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert {n.split("/")[0] for n in names} == {batch.root.name}
        files = {n.split("/", 1)[1]: hashlib.sha256(zf.read(n)).hexdigest() for n in names if not n.endswith("/")}
    assert files == digests(batch.root)
    assert zip_sample(batch.root, tmp_path / "again.zip").read_bytes() == z.read_bytes()


def test_bag_sample(tmp_path, batch):
    bag_dir = bag_sample(batch.root, tmp_path / "bag")
    bag = bagit.Bag(str(bag_dir))
    bag.validate()
    assert set(bag.algorithms) == {"sha256", "sha512"}
    assert {k.removeprefix("data/"): v["sha256"] for k, v in bag.entries.items() if k.startswith("data/")} \
        == digests(batch.root)


def test_bag_sample_keeps_a_symlink_unlisted(tmp_path):
    info = make_sample(tmp_path / "lo", defects=["symlink"], **SMALL)
    bag_dir = bag_sample(info.root, tmp_path / "bag")
    assert (bag_dir / "data/lienket.txt").is_symlink()
    assert "lienket.txt" not in (bag_dir / "manifest-sha256.txt").read_text()


def test_refuses_non_empty_folder_and_unknown_names(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("x")
    with pytest.raises(UsageError):
        make_sample(tmp_path / "x")
    with pytest.raises(UsageError):
        parse_defects("missing-file,no-such-defect")
    assert parse_defects(" missing-file , checksum ") == ["missing-file", "checksum"]


def test_defect_table_names_known_codes():
    registry = codes()
    for name, spec in DEFECTS.items():
        assert spec.codes and spec.codes <= registry.keys() and spec.also <= registry.keys(), name
        assert not spec.codes & spec.also, name


# --- each defect is applied ---------------------------------------------------------------------------------


def _doc(info, name):
    return next(r for r in sheets(info.root)["TaiLieu"] if r["file"] == info.targets[name])


def _check(name: str, info) -> None:  # noqa: C901 - one branch per defect
    root, target = info.root, info.targets[name]
    rows = sheets(root) if (root / "mucluc.xlsx").exists() and name != "bad-workbook" else None
    if name == "missing-file":
        assert not (root / target).exists() and _doc(info, name)
    elif name == "extra-file":
        assert (root / target).is_file() and target not in {r["file"] for r in rows["TaiLieu"]}
        assert target.endswith(f"{info.file_codes[0]}.099.pdf")
    elif name in ("stray-file", "xml-entity"):
        assert (root / target).is_file()
        if name == "xml-entity":
            assert b"<!ENTITY" in (root / target).read_bytes()
    elif name == "bad-filename":
        d = _doc(info, name)
        assert (root / d["file"]).is_file() and Path(d["file"]).stem != d["docCode"]
    elif name == "bad-extension":
        d = _doc(info, name)
        assert d["file"].endswith(".jpg") and Image.open(root / d["file"]).format == "JPEG"
    elif name == "required-empty":
        assert next(r for r in rows["HoSo"] if r["fileCode"] == target)["title"] in (None, "")
    elif name == "bad-code":
        assert next(r for r in rows["HoSo"] if r["fileCode"] == target)["mode"] == "99"
    elif name == "bad-date":
        assert re.match(r"^(31/02/\d{4}|\d{4}-13-01)$", _doc(info, name)["issuedDate"])
    elif name == "date-order":
        h = next(r for r in rows["HoSo"] if r["fileCode"] == target)
        assert int(h["endDate"][-4:]) < int(h["startDate"][-4:])
    elif name == "bad-number":
        assert _doc(info, name)["numberOfPage"] == "mười"
    elif name == "not-permanent":
        h = next(r for r in rows["HoSo"] if r["fileCode"] == target)
        assert load_profile().resolve_code("maintenance", h["maintenance"]) == "02"
    elif name in ("tuyet-mat", "secret"):
        assert fold(_doc(info, name)["secrecy"]) == {"tuyet-mat": "tuyetmat", "secret": "mat"}[name]
    elif name == "bad-filecode":
        h = next(r for r in rows["HoSo"] if r["fileCode"] == target)
        assert h["fileCode"] != f"{h['fondsCode']}.{h['catalogNo']}.{h['fileNo']}"
        assert all((root / t["file"]).is_file() for t in rows["TaiLieu"] if t["fileCode"] == target)
    elif name == "bad-doccode":
        d = _doc(info, name)
        assert d["docCode"] != f"{d['fileCode']}.{d['docOrdinal']:03d}" and Path(d["file"]).stem == d["docCode"]
    elif name == "malformed-id":
        h = next(r for r in rows["HoSo"] if r["fileCode"] == target)
        assert " " in h["fondsCode"] and h["fileCode"] == f"{h['fondsCode']}.{h['catalogNo']}.{h['fileNo']}"
    elif name == "duplicate-doc":
        codes_ = [r["docCode"] for r in rows["TaiLieu"]]
        assert len(codes_) == len(set(codes_)) + 1 and (root / target).is_file()
        h = rows["HoSo"][0]
        assert h["totalDoc"] == len(codes_) and h["numberOfPage"] == sum(r["numberOfPage"] for r in rows["TaiLieu"])
    elif name == "unknown-dossier":
        d = _doc(info, name)
        assert d["fileCode"] not in {r["fileCode"] for r in rows["HoSo"]} and (root / d["file"]).is_file()
    elif name == "totaldoc":
        h = next(r for r in rows["HoSo"] if r["fileCode"] == target)
        assert h["totalDoc"] == 1 + sum(1 for t in rows["TaiLieu"] if t["fileCode"] == target)
    elif name in ("page-count", "dossier-pages"):
        h = rows["HoSo"][0]
        docs = [t for t in rows["TaiLieu"] if t["fileCode"] == h["fileCode"]]
        actual = sum(len(pikepdf.open(root / t["file"]).pages) for t in docs)
        stated = sum(t["numberOfPage"] for t in docs)
        want = (actual + 1, actual + 1) if name == "page-count" else (actual, actual + 2)
        assert (stated, h["numberOfPage"]) == want
    elif name in ("low-dpi", "grayscale"):
        with pikepdf.open(root / target) as pdf:
            page = pdf.pages[0]
            (_, image), = page.get_images().items()
            if name == "low-dpi":
                assert (image.Width, image.Height) == (1240, 1754)
                assert round(float(page.mediabox[2]) / 72 * 150) == 1240
            else:
                assert image.ColorSpace == pikepdf.Name.DeviceGray
    elif name == "encrypted":
        with pytest.raises(pikepdf.PasswordError):
            pikepdf.open(root / target)
        assert len(pikepdf.open(root / target, password="matkhau").pages) == 1
    elif name == "damaged":
        assert (root / target).read_bytes().startswith(b"%PDF")
        with pytest.raises(pikepdf.PdfError):
            with pikepdf.open(root / target) as pdf:
                for page in pdf.pages:
                    for _, im in page.get_images().items():
                        im.read_raw_bytes()
    elif name == "not-pdf":
        assert target.endswith(".pdf") and (root / target).read_bytes().startswith(b"\x89PNG")
    elif name == "checksum":
        listed = dict(reversed(x.split("  ", 1)) for x in (root / "checksums.sha256").read_text().splitlines())
        assert listed[target] != digests(root)[target]
        assert all(v == digests(root)[k] for k, v in listed.items() if k != target)
    elif name == "unknown-column":
        assert "Cột lạ" in rows["HoSo"][0]
    elif name == "missing-column":
        assert "title" not in rows["HoSo"][0] and "fileCode" in rows["HoSo"][0]
    elif name == "no-workbook":
        assert not any((root / n).exists() for n in ("mucluc.xlsx", "hoso.csv", "tailieu.csv"))
    elif name == "bad-workbook":
        with pytest.raises(zipfile.BadZipFile):
            zipfile.ZipFile(root / "mucluc.xlsx")
    elif name == "unicode-collision":
        names = [p.name for p in (root / "notes").iterdir()]
        assert len(names) == 2 and len({unicodedata.normalize("NFC", n) for n in names}) == 1
    elif name == "symlink":
        assert (root / target).is_symlink() and str((root / target).readlink()) == "/etc/passwd"
        assert target not in (root / "checksums.sha256").read_text()
    else:
        raise AssertionError(f"no check for defect {name}")


@pytest.mark.parametrize("name", list(DEFECTS))
def test_defect_is_applied(tmp_path, name):
    info = make_sample(tmp_path / "lo", defects=[name], **SMALL)
    assert info.defects == [name] and info.expected_codes == set(DEFECTS[name].codes)
    _check(name, info)


def test_defects_combine_on_distinct_documents(tmp_path):
    doc_level = ["missing-file", "bad-filename", "low-dpi", "grayscale", "encrypted", "checksum"]
    info = make_sample(tmp_path / "lo", dossiers=2, docs=3, pages=(1, 1), defects=doc_level + ["totaldoc", "bad-code"])
    touched = [info.targets[n] for n in doc_level]
    assert len(set(touched)) == len(touched)
    assert info.expected_codes == set().union(*(DEFECTS[n].codes for n in info.defects))
    for n in info.defects:
        _check(n, info)


def test_csv_form_defects(tmp_path):
    info = make_sample(tmp_path / "c", form="csv", defects=["missing-column", "unknown-column"], **SMALL)
    hoso = (info.root / "hoso.csv").read_text(encoding="utf-8")
    assert "Cột lạ" in hoso.splitlines()[0]
    bad = make_sample(tmp_path / "b", form="csv", defects=["bad-workbook"], **SMALL)
    with pytest.raises(UnicodeDecodeError):
        (bad.root / "hoso.csv").read_bytes().decode("utf-8")
