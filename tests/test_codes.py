"""Every finding code has a case that must raise it; the docs list every code."""

import re
import shutil
from pathlib import Path

import openpyxl
import pytest

from preserve.findings import codes, codes_markdown
from preserve.repository import validate_sip
from preserve.sip.sample import DEFECTS, make_sample

REPO = Path(__file__).resolve().parents[1]


def _validate(path, **kw):
    v = validate_sip(path, **kw)
    v.package.close()
    return v


def test_clean_sample_is_valid_without_findings(batch):
    v = _validate(batch)
    assert [f.to_dict() for f in v.report.findings] == []
    assert len(v.accepted()) == 2


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_defect_raises_its_codes(tmp_path, defect):
    spec = DEFECTS[defect]
    info = make_sample(tmp_path / "b", dossiers=2, docs=2, seed=3, pages=(1, 2), defects=[defect])
    v = _validate(info.root)
    got = v.report.codes()
    assert set(spec.codes) <= got, f"{defect}: expected {spec.codes}, got {got}"
    unexpected = got - set(spec.codes) - set(getattr(spec, "also", ()) or ())
    assert not unexpected, f"{defect}: unexpected {unexpected}"
    for f in v.report.findings:
        assert f.message_vi and f.message_en and "{" not in f.message_vi + f.message_en, f.to_dict()
    if any(c.startswith("E-") for c in spec.codes):
        assert v.refused() or v.batch_refused, defect


# ---- generated cases for codes no sample defect produces -------------------------------------------------
def _edit_sheet(root: Path, sheet: str, fn):
    wb = openpyxl.load_workbook(root / "mucluc.xlsx")
    fn(wb[sheet], wb)
    wb.save(root / "mucluc.xlsx")


def _col(ws, *names):
    from preserve.sip.profile import fold

    for c in ws[1]:
        if c.value and fold(c.value) in {fold(n) for n in names}:
            return c.column
    raise KeyError(names)


def test_sheet_missing(batch):
    _edit_sheet(batch, "TaiLieu", lambda ws, wb: wb.remove(ws))
    assert "E-WB-SHEET-MISSING" in _validate(batch).report.codes()


def test_column_duplicate_and_no_rows(batch, tmp_path):
    def dup(ws, wb):
        ws.cell(1, ws.max_column + 1, "title")  # a second column for the dossier title
    _edit_sheet(batch, "HoSo", dup)
    codes_ = _validate(batch).report.codes()
    assert "E-WB-COLUMN-DUPLICATE" in codes_

    other = tmp_path / "o"
    shutil.copytree(batch, other)
    def empty(ws, wb):
        ws.delete_rows(2, ws.max_row)
    _edit_sheet(other, "TaiLieu", empty)
    assert "E-WB-NO-ROWS" in _validate(other).report.codes()


def test_empty_row_with_stray_cell_warns(batch):
    def stray(ws, wb):
        ws.cell(ws.max_row + 1, ws.max_column + 1, "ghi chú lạc")
    _edit_sheet(batch, "HoSo", stray)
    assert "W-WB-EMPTY-ROW" in _validate(batch).report.codes()


def test_document_date_outside_dossier_dates_warns(batch):
    def far(ws, wb):
        ws.cell(2, _col(ws, "issuedDate", "Ngày tháng năm văn bản"), "01/01/1900")
    _edit_sheet(batch, "TaiLieu", far)
    assert "W-FIELD-DATE-RANGE" in _validate(batch).report.codes()


def test_file_shared_by_two_documents(batch):
    def share(ws, wb):
        c = _col(ws, "file", "Tệp")
        ws.cell(3, c, ws.cell(2, c).value)
    _edit_sheet(batch, "TaiLieu", share)
    assert "E-FILE-SHARED" in _validate(batch).report.codes()


def test_checksums_syntax_missing_file_and_unlisted(batch):
    sums = batch / "checksums.sha256"
    lines = sums.read_text().splitlines()
    lines.remove(next(line for line in lines if line.endswith(".pdf")))
    lines += ["not a checksum line", "0" * 64 + "  scans/khong-co.pdf"]
    sums.write_text("\n".join(lines) + "\n")
    got = _validate(batch).report.codes()
    assert {"E-SUM-SYNTAX", "E-SUM-MISSING-FILE", "W-SUM-UNLISTED"} <= got, got


def test_unsupported_package(tmp_path):
    p = tmp_path / "note.txt"
    p.write_text("không phải lô quét")
    v = _validate(p)
    assert v.report.codes() == {"E-SIP-UNSUPPORTED"} and v.batch_refused


def test_xml_unreadable(batch):
    (batch / "broken.xml").write_text("<a><b></a>")
    assert "E-XML-UNREADABLE" in _validate(batch).report.codes()


def test_exists_in_repository(repo, batch):
    repo.ingest(batch)
    v = repo.validate(batch)
    v.package.close()
    assert v.report.codes() == {"E-ID-EXISTS"}


# ---- the registry itself ---------------------------------------------------------------------------------
def test_every_code_is_exercised_by_a_test():
    text = "".join(p.read_text(encoding="utf-8") for p in (REPO / "tests").rglob("*.py"))
    text += "".join(f"{spec.codes}" for spec in DEFECTS.values())
    missing = [c for c in codes() if c not in text]
    assert not missing, f"codes without a fixture or generated case: {missing}"


def test_codes_are_well_formed_and_bilingual():
    for code, c in codes().items():
        assert re.fullmatch(r"[CEWI](-[A-Z0-9]+)+", code), code
        assert c["vi"] and c["en"] and c["vi"] != c["en"], code


def test_docs_list_every_code():
    assert (REPO / "docs/codes.md").read_text(encoding="utf-8") == codes_markdown(), \
        "regenerate with: .venv/bin/python -m preserve.findings > docs/codes.md"


def test_title_rows_above_the_header_are_skipped_and_rows_keep_their_numbers(batch):
    def title(ws, wb):
        ws.insert_rows(1, 2)
        ws.cell(1, 1, "MỤC LỤC HỒ SƠ")
        ws.cell(2, 1, "Phông Tỉnh ủy Hải Dương")
        ws.cell(5, _col_at(ws, 3, "issuedDate", "Ngày tháng năm văn bản"), "31/02/1965")
    _edit_sheet(batch, "TaiLieu", title)
    v = _validate(batch)
    assert v.report.codes() - {"E-SUM-MISMATCH"} == {"E-FIELD-DATE"}  # the edited workbook's checksum differs
    f = next(f for f in v.report.findings if f.code == "E-FIELD-DATE")
    assert f.where.endswith("5"), f.where  # the spreadsheet row an officer sees


def _col_at(ws, row, *names):
    from preserve.sip.profile import fold

    for c in ws[row]:
        if c.value and fold(c.value) in {fold(n) for n in names}:
            return c.column
    raise KeyError(names)
