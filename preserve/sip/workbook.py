"""Read the finding aid (mục lục) of a scan batch: mucluc.xlsx (sheets HoSo, TaiLieu) or hoso.csv + tailieu.csv.

Headers may be the field key or its Vietnamese label, matched without case or diacritics. Cell values come
back as stripped NFC strings; Excel numbers and dates are turned into the text an officer typed.
"""

from __future__ import annotations

import csv
import io
import datetime as dt
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from openpyxl.utils import get_column_letter

from ..findings import Finding, bilingual
from .profile import Profile, Sheet, fold

WORKBOOK_NAME = "mucluc.xlsx"
HEADER_SEARCH_ROWS = 10


@dataclass
class Row:
    sheet: str
    number: int                      # spreadsheet row number (header is row 1)
    values: dict[str, str]           # field key -> text ("" when empty)
    columns: dict[str, str]          # field key -> column label for `where` (A, B, … or the csv header)
    source: str                      # file name the row came from

    def where(self, key: str | None = None) -> str:
        if key is None:
            return f"{self.sheet}!{self.number}" if self.source.endswith(".xlsx") else f"{self.source}:{self.number}"
        col = self.columns.get(key, key)
        if self.source.endswith(".xlsx"):
            return f"{self.sheet}!{col}{self.number}"
        return f"{self.source}:{self.number}:{col}"

    def get(self, key: str) -> str:
        return self.values.get(key, "")


@dataclass
class Workbook:
    files: list[Path] = field(default_factory=list)   # the received workbook file(s)
    sheets: dict[str, list[Row]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    readable: bool = False


def find_workbook(root: Path) -> tuple[str, list[Path]] | None:
    """('xlsx', [path]) or ('csv', [hoso, tailieu]) at the batch root, names matched without case."""
    names = {p.name.lower(): p for p in root.iterdir() if p.is_file()}
    if WORKBOOK_NAME in names:
        return "xlsx", [names[WORKBOOK_NAME]]
    if "hoso.csv" in names and "tailieu.csv" in names:
        return "csv", [names["hoso.csv"], names["tailieu.csv"]]
    return None


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    return unicodedata.normalize("NFC", str(value)).strip()


def _map_headers(sheet: Sheet, headers: list[str], labels: list[str], source: str) -> tuple[dict[int, str], dict[str, str], list[Finding]]:
    """Column index -> field key; field key -> column label; header findings."""
    findings: list[Finding] = []
    index: dict[int, str] = {}
    col_of: dict[str, str] = {}
    seen: dict[str, list[str]] = {}
    for i, h in enumerate(headers):
        if not h:
            continue
        f = sheet.match_header(h)
        if f is None:
            findings.append(Finding("W-WB-COLUMN-UNKNOWN", f"{source}:{sheet.name}!{labels[i]}1", {"sheet": sheet.name, "column": h}))
            continue
        seen.setdefault(f.key, []).append(h)
        if f.key in col_of:
            continue
        index[i] = f.key
        col_of[f.key] = labels[i]
    for key, cols in seen.items():
        if len(cols) > 1:
            findings.append(Finding("E-WB-COLUMN-DUPLICATE", f"{source}:{sheet.name}", {"sheet": sheet.name, "field": key, "columns": ", ".join(cols)}))
    for f in sheet.fields:
        if f.required and f.key not in col_of:
            findings.append(Finding("E-WB-COLUMN-MISSING", f"{source}:{sheet.name}", {"sheet": sheet.name, "field": f.key, "label": f.label}))
    return index, col_of, findings


def _rows(sheet: Sheet, source: str, raw_rows, xlsx: bool) -> tuple[list[Row], list[Finding]]:
    it = iter(raw_rows)
    findings: list[Finding] = []
    # Officers often put a title ("MỤC LỤC HỒ SƠ") above the header: the header is the first of the first
    # rows in which at least 3 cells name fields of this sheet.
    skipped: list = []
    header = None
    start = 1
    for _ in range(HEADER_SEARCH_ROWS):
        try:
            candidate = next(it)
        except StopIteration:
            break
        if sum(1 for c in candidate if sheet.match_header(_text(c))) >= 3:
            header = candidate
            start += len(skipped)
            break
        skipped.append(candidate)
    if header is None:
        if not skipped:
            return [], [Finding("E-WB-NO-ROWS", f"{source}:{sheet.name}", {"sheet": sheet.name})]
        header, start = skipped[0], 1  # report its columns as unknown/missing
        it = iter(skipped[1:] + list(it))
    headers = [_text(h) for h in header]
    labels = [get_column_letter(i + 1) if xlsx else (h or str(i + 1)) for i, h in enumerate(headers)]
    index, col_of, hf = _map_headers(sheet, headers, labels, source)
    findings.extend(hf)
    rows: list[Row] = []
    for n, raw in enumerate(it, start=start + 1):
        values = {key: "" for key in col_of}
        for i, key in index.items():
            if i < len(raw):
                values[key] = _text(raw[i])
        extra = any(_text(v) for i, v in enumerate(raw) if i not in index)
        if not any(values.values()):
            if extra:
                findings.append(Finding("W-WB-EMPTY-ROW", f"{source}:{sheet.name}!{n}", {"sheet": sheet.name, "row": n}))
            continue
        rows.append(Row(sheet.name, n, values, col_of, source))
    if not rows:
        findings.append(Finding("E-WB-NO-ROWS", f"{source}:{sheet.name}", {"sheet": sheet.name}))
    return rows, findings


def read_workbook(root: Path, profile: Profile) -> Workbook:
    wb = Workbook()
    found = find_workbook(root)
    if found is None:
        near = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in (".xls", ".xlsx", ".ods", ".csv"))
        detail = (bilingual(f"có: {', '.join(near[:5])}", f"found: {', '.join(near[:5])}") if near else
                  bilingual("không có bảng tính nào", "no spreadsheet there"))
        wb.findings.append(Finding("E-WB-MISSING", str(root.name), {"detail": detail}))
        return wb
    kind, files = found
    wb.files = files
    if kind == "xlsx":
        _read_xlsx(files[0], profile, wb)
    else:
        _read_csv(files, profile, wb)
    return wb


def _read_xlsx(path: Path, profile: Profile, wb: Workbook) -> None:
    from .safety import check_xml_bytes

    name = path.name
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.filename.lower().endswith((".xml", ".rels", ".vml")) and info.file_size < 256 * 2**20:
                    wb.findings.extend(check_xml_bytes(z.read(info), f"{name}:{info.filename}"))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        wb.findings.append(Finding("E-WB-UNREADABLE", name, {"path": name, "detail": str(e) or type(e).__name__}))
        return
    if any(f.is_error for f in wb.findings):
        return
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many types on malformed files; all mean "unreadable"
        wb.findings.append(Finding("E-WB-UNREADABLE", name, {"path": name, "detail": f"{type(e).__name__}: {e}"}))
        return
    try:
        by_fold = {fold(s): s for s in book.sheetnames}
        for sheet_name, sheet in profile.sheets.items():
            actual = by_fold.get(fold(sheet_name))
            if actual is None:
                wb.findings.append(Finding("E-WB-SHEET-MISSING", name, {"sheet": sheet_name}))
                continue
            rows, findings = _rows(sheet, name, book[actual].iter_rows(values_only=True), xlsx=True)
            wb.sheets[sheet_name] = rows
            wb.findings.extend(findings)
    except Exception as e:  # a corrupt sheet part surfaces only while iterating
        wb.findings.append(Finding("E-WB-UNREADABLE", name, {"path": name, "detail": f"{type(e).__name__}: {e}"}))
        return
    finally:
        book.close()
    wb.readable = True


def _read_csv(files: list[Path], profile: Profile, wb: Workbook) -> None:
    by_name = {p.name.lower(): p for p in files}
    for sheet_name, sheet in profile.sheets.items():
        path = by_name[sheet.csv]
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except (UnicodeDecodeError, OSError) as e:
            at = getattr(e, "start", "?")
            wb.findings.append(Finding("E-WB-UNREADABLE", path.name, {"path": path.name, "detail": bilingual(
                f"không phải văn bản UTF-8 (byte {at}); hãy lưu lại tệp dạng 'CSV UTF-8'",
                f"not UTF-8 text (byte {at}); save the file again as 'CSV UTF-8'")}))
            continue
        try:
            dialect = csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        rows, findings = _rows(sheet, path.name, csv.reader(io.StringIO(text, newline=""), dialect), xlsx=False)
        wb.sheets[sheet_name] = rows
        wb.findings.extend(findings)
    wb.readable = not any(f.code == "E-WB-UNREADABLE" for f in wb.findings)
