"""Validate a scan batch, cheap to expensive, returning every finding.

Stages: package (zip/bag/paths) → XML → workbook and columns → fields → identifiers → archival rules →
files → counts → scans (PRONOM, pages, dpi, colour) → checksums.sha256. A batch-level error refuses the
whole batch; a finding that names a dossier refuses only that dossier. Nothing here writes to storage or
the catalog.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..digest import hash_file
from ..findings import Report, bilingual
from ..progress import NullProgress, Progress
from .fields import check_row, parse_date
from .package import SYSTEM_FILES, Package
from .profile import Profile
from .workbook import Row, Workbook, read_workbook

CHECKSUMS_NAME = "checksums.sha256"


@dataclass
class DocPlan:
    doc_code: str
    record: dict[str, Any]
    row: Row
    rel: str | None = None        # path of the scan relative to the batch root (posix, NFC)
    path: Path | None = None
    scan: Any = None              # preserve.sip.scan.ScanInfo


@dataclass
class DossierPlan:
    file_code: str
    record: dict[str, Any]
    row: Row
    documents: list[DocPlan] = field(default_factory=list)


@dataclass
class Validation:
    package: Package
    report: Report
    workbook: Workbook | None = None
    dossiers: dict[str, DossierPlan] = field(default_factory=dict)
    checksums: dict[str, str] | None = None   # rel path -> sha256 listed in checksums.sha256
    strict: bool = False

    @property
    def batch_refused(self) -> bool:
        if self.report.batch_errors or self.package.root is None:
            return True
        return self.strict and any(f.severity in ("error", "warning") for f in self.report.findings)

    def accepted(self) -> list[DossierPlan]:
        if self.batch_refused:
            return []
        refused = self.report.refused_dossiers()
        return [d for d in self.dossiers.values() if d.file_code not in refused]

    def refused(self) -> list[str]:
        accepted = {d.file_code for d in self.accepted()}
        return [c for c in self.dossiers if c not in accepted] + sorted(
            c for c in self.report.refused_dossiers() if c not in self.dossiers)


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def list_files(root: Path) -> dict[str, Path]:
    """Every regular file below root: NFC posix relative path -> path."""
    out: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[_nfc(p.relative_to(root).as_posix())] = p
    return out


def validate(pkg: Package, profile: Profile, *, existing: Callable[[Iterable[str]], dict[str, str]] | None = None,
             verify_checksums: bool = True, strict: bool = False, progress: Progress | None = None) -> Validation:
    progress = progress or NullProgress()
    report = Report(list(pkg.findings))
    v = Validation(pkg, report, strict=strict)
    if pkg.root is None:
        return v
    root = pkg.root
    files = list_files(root)

    # --- XML anywhere in the batch: no DTDs, no entities ---
    from .safety import check_xml

    for rel, p in files.items():
        if rel.lower().endswith(".xml"):
            report.extend(check_xml(p, rel))

    # --- workbook ---
    wb = read_workbook(root, profile)
    v.workbook = wb
    report.extend(wb.findings)
    if not wb.readable:
        return v
    workbook_rels = {_nfc(p.relative_to(root).as_posix()) for p in wb.files}

    # --- fields, per row ---
    dsheet, tsheet = profile.dossier, profile.document
    for row in wb.sheets.get(dsheet.name, []):
        code = row.get("fileCode") or f"{dsheet.name}!{row.number}"
        rec, fs = check_row(row, dsheet, profile, code)
        report.extend(fs)
        if code in v.dossiers:
            continue  # reported as a duplicate below
        v.dossiers[code] = DossierPlan(code, rec, row)
    doc_rows: list[DocPlan] = []
    for row in wb.sheets.get(tsheet.name, []):
        # a row without its fileCode still belongs to the dossier its docCode names
        dossier = row.get("fileCode") or row.get("docCode").rpartition(".")[0] or f"{tsheet.name}!{row.number}"
        rec, fs = check_row(row, tsheet, profile, dossier)
        report.extend(fs)
        doc_rows.append(DocPlan(row.get("docCode"), rec, row))

    _check_identifiers(v, doc_rows, profile, existing)
    _check_rules(v, doc_rows, profile)
    _check_dates(v, doc_rows)
    _attach_files(v, doc_rows, files, workbook_rels, profile)
    _check_counts(v)
    _check_scans(v, profile, progress)
    _check_checksums(v, files, verify_checksums, progress)
    return v


# --------------------------------------------------------------------------------------------- identifiers
def _check_identifiers(v: Validation, docs: list[DocPlan], profile: Profile,
                       existing: Callable[[Iterable[str]], dict[str, str]] | None) -> None:
    report = v.report
    part_rx = re.compile(profile.rules["identifier_pattern"])
    digits = profile.rules["doc_ordinal_digits"]
    parts_keys = profile.rules["file_code_parts"]

    seen: dict[str, list[int]] = {}
    for d in v.dossiers.values():
        row = d.row
        fc = row.get("fileCode")
        if not fc:
            continue
        bad = [p for p in fc.split(".") if not part_rx.match(p)]
        for key in parts_keys:
            val = row.get(key)
            if val and not part_rx.match(val):
                report.add("E-ID-MALFORMED", row.where(key), fc, value=val, field=key,
                           detail=bilingual("chỉ dùng chữ, số, '-' và '_'", "letters, digits, '-' and '_' only"))
        if bad:
            report.add("E-ID-MALFORMED", row.where("fileCode"), fc, value=fc, field="fileCode",
                       detail=bilingual(f"phần không hợp lệ: {', '.join(repr(b) for b in bad)}",
                                        f"bad part: {', '.join(repr(b) for b in bad)}"))
        expected = ".".join(row.get(k) for k in parts_keys)
        if all(row.get(k) for k in parts_keys) and fc != expected:
            report.add("E-ID-FILECODE-PARTS", row.where("fileCode"), fc, value=fc, expected=expected)
    # duplicated fileCodes (rows beyond the first were not planned; report all rows)
    for row in v.workbook.sheets.get(profile.dossier.name, []):
        if row.get("fileCode"):
            seen.setdefault(row.get("fileCode"), []).append(row.number)
    for fc, rows in seen.items():
        if len(rows) > 1:
            report.add("E-ID-DUPLICATE", f"{profile.dossier.name}!{rows[1]}", fc, value=fc, field="fileCode",
                       rows=", ".join(map(str, rows)))

    doc_seen: dict[str, list[int]] = {}
    for doc in docs:
        row, fc, dc = doc.row, doc.row.get("fileCode"), doc.doc_code
        if not dc:
            continue
        doc_seen.setdefault(dc, []).append(row.number)
        dossier = fc or None
        if fc and fc not in v.dossiers:
            report.add("E-ID-DOSSIER-UNKNOWN", row.where("fileCode"), fc, value=fc, doc=dc)
        ordinal = doc.record.get("docOrdinal")
        if not all(part_rx.match(p) for p in dc.split(".")):
            report.add("E-ID-MALFORMED", row.where("docCode"), dossier, value=dc, field="docCode",
                       detail=bilingual("chỉ dùng chữ, số, '-', '_' và dấu '.' giữa các phần",
                                        "letters, digits, '-', '_', and dots between parts"))
        elif fc and isinstance(ordinal, int):
            expected = f"{fc}.{ordinal:0{digits}d}"
            if dc != expected:
                report.add("E-ID-DOCCODE-PARTS", row.where("docCode"), dossier, value=dc, expected=expected)
    for dc, rows in doc_seen.items():
        if len(rows) > 1:
            fc = next((d.row.get("fileCode") for d in docs if d.doc_code == dc), None)
            report.add("E-ID-DUPLICATE", f"{profile.document.name}!{rows[1]}", fc or None, value=dc, field="docCode",
                       rows=", ".join(map(str, rows)))
    # attach documents to their dossiers (first row of a duplicated docCode only)
    placed: set[str] = set()
    for doc in sorted(docs, key=lambda d: (d.record.get("docOrdinal") or 0, d.row.number)):
        fc = doc.row.get("fileCode")
        if fc in v.dossiers and doc.doc_code and doc.doc_code not in placed:
            v.dossiers[fc].documents.append(doc)
            placed.add(doc.doc_code)
    if existing is not None:
        found = existing([c for c in v.dossiers if not c.startswith(profile.dossier.name + "!")])
        for fc, aip in found.items():
            report.add("E-ID-EXISTS", v.dossiers[fc].row.where("fileCode"), fc, value=fc, aip=aip)


# --------------------------------------------------------------------------------------------- rules
def _check_rules(v: Validation, docs: list[DocPlan], profile: Profile) -> None:
    rules = profile.rules
    for d in v.dossiers.values():
        m = d.record.get("maintenance")
        if m and m in profile.code_lists["maintenance"] and m != rules["permanent_maintenance"]:
            v.report.add("E-RULE-NOT-PERMANENT", d.row.where("maintenance"), d.file_code,
                         value=f"{m} {profile.code_text('maintenance', m)}")
    for doc in docs:
        s = doc.record.get("secrecy")
        fc = doc.row.get("fileCode") or None
        if s in rules["refused_secrecy"]:
            v.report.add("E-RULE-TUYET-MAT", doc.row.where("secrecy"), fc, doc=doc.doc_code)
        elif s in rules["approval_secrecy"]:
            v.report.add("W-RULE-SECRET-APPROVAL", doc.row.where("secrecy"), fc, doc=doc.doc_code,
                         value=profile.code_text("secrecy", s))


def _check_dates(v: Validation, docs: list[DocPlan]) -> None:
    for d in v.dossiers.values():
        s, e = parse_date(d.row.get("startDate")), parse_date(d.row.get("endDate"))
        if s and e and e.latest < s.earliest:
            v.report.add("E-FIELD-DATE-ORDER", d.row.where("endDate"), d.file_code,
                         start=d.row.get("startDate"), end=d.row.get("endDate"))
            continue
        if not (s and e):
            continue
        for doc in d.documents:
            i = parse_date(doc.row.get("issuedDate"))
            if i and (i.latest < s.earliest or i.earliest > e.latest):
                v.report.add("W-FIELD-DATE-RANGE", doc.row.where("issuedDate"), d.file_code,
                             value=doc.row.get("issuedDate"), start=d.row.get("startDate"), end=d.row.get("endDate"))


# --------------------------------------------------------------------------------------------- files
def _attach_files(v: Validation, docs: list[DocPlan], files: dict[str, Path], workbook_rels: set[str],
                  profile: Profile) -> None:
    report = v.report
    exts = tuple(profile.rules["scan_extensions"])
    by_name: dict[str, list[str]] = {}
    for rel in files:
        by_name.setdefault(rel.rsplit("/", 1)[-1], []).append(rel)
    claimed: dict[str, list[str]] = {}
    for doc in docs:
        raw = doc.row.get("file")
        fc = doc.row.get("fileCode") or None
        if not raw:
            continue
        want = _nfc(raw.replace("\\", "/").strip())
        while want.startswith("./"):
            want = want[2:]
        rel = want if want in files else None
        if rel is None:  # the file named elsewhere in the batch than the column says: found by its name alone
            candidates = by_name.get(want.rsplit("/", 1)[-1], [])
            rel = candidates[0] if len(candidates) == 1 else None
        if rel is None:
            report.add("E-FILE-MISSING", doc.row.where("file"), fc, path=raw, doc=doc.doc_code)
            continue
        doc.rel, doc.path = rel, files[rel]
        claimed.setdefault(rel, []).append(doc.doc_code)
        name = rel.rsplit("/", 1)[-1]
        stem, dot, ext = name.rpartition(".")
        if not dot or ("." + ext.lower()) not in exts:
            report.add("E-FILE-EXTENSION", doc.row.where("file"), fc, path=rel)
        elif doc.doc_code and stem != doc.doc_code:
            report.add("E-FILE-NAME", doc.row.where("file"), fc, path=rel, expected=f"{doc.doc_code}.{ext}")
    for rel, owners in claimed.items():
        if len(owners) > 1:
            fcs = {d.row.get("fileCode") for d in docs if d.rel == rel}
            for fc in fcs:
                report.add("E-FILE-SHARED", rel, fc or None, path=rel, docs=", ".join(owners))
    # files nobody names
    ignored = workbook_rels | {CHECKSUMS_NAME}
    for rel in files:
        if rel in claimed or rel in ignored:
            continue
        name = rel.rsplit("/", 1)[-1]
        if name.lower() in SYSTEM_FILES or name.startswith("._") or rel.lower().endswith(".xml"):
            continue
        owner = next((fc for fc in v.dossiers if name.startswith(fc + ".")), None)
        if owner:
            report.add("E-FILE-UNREFERENCED", rel, owner, path=rel)
        else:
            report.add("W-FILE-STRAY", rel, None, path=rel)


# --------------------------------------------------------------------------------------------- counts
def _check_counts(v: Validation) -> None:
    docs_in_sheet: dict[str, int] = {}
    if v.workbook:
        for row in v.workbook.sheets.get("TaiLieu", []):
            fc = row.get("fileCode")
            docs_in_sheet[fc] = docs_in_sheet.get(fc, 0) + 1
    for d in v.dossiers.values():
        total = d.record.get("totalDoc")
        actual = docs_in_sheet.get(d.file_code, 0)
        if isinstance(total, int) and total != actual:
            v.report.add("E-COUNT-TOTALDOC", d.row.where("totalDoc"), d.file_code, expected=total, actual=actual)
        pages = d.record.get("numberOfPage")
        doc_pages = [doc.record.get("numberOfPage") for doc in d.documents]
        if isinstance(pages, int) and doc_pages and all(isinstance(p, int) for p in doc_pages):
            if sum(doc_pages) != pages:
                v.report.add("E-COUNT-PAGES-DOSSIER", d.row.where("numberOfPage"), d.file_code,
                             expected=pages, actual=sum(doc_pages))


# --------------------------------------------------------------------------------------------- scans
def _check_scans(v: Validation, profile: Profile, progress: Progress) -> None:
    from .scan import inspect_scan

    docs = [doc for d in v.dossiers.values() for doc in d.documents if doc.path is not None]
    exts = tuple(profile.rules["scan_extensions"])
    progress.start("Kiểm tra bản quét / checking scans", len(docs))
    for d in v.dossiers.values():
        for doc in d.documents:
            if doc.path is None or not doc.rel.lower().endswith(exts):
                continue
            doc.scan = inspect_scan(doc.path, doc.rel, d.file_code, min_dpi=profile.rules["min_dpi"])
            v.report.extend(doc.scan.findings)
            declared = doc.record.get("numberOfPage")
            if doc.scan.pages is not None and isinstance(declared, int) and doc.scan.pages != declared:
                v.report.add("E-COUNT-PAGES-DOC", doc.row.where("numberOfPage"), d.file_code,
                             doc=doc.doc_code, expected=declared, actual=doc.scan.pages)
            progress.advance()
    progress.done()


# --------------------------------------------------------------------------------------------- checksums
_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def parse_checksums(path: Path, report: Report) -> dict[str, str]:
    sums: dict[str, str] = {}
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _SUM_LINE.match(line.rstrip("\r"))
        if not m:
            report.add("E-SUM-SYNTAX", f"{CHECKSUMS_NAME}:{n}", None, line=n)
            continue
        rel = _nfc(m.group(2).replace("\\", "/"))
        rel = rel[2:] if rel.startswith("./") else rel
        sums[rel] = m.group(1).lower()
    return sums


def _check_checksums(v: Validation, files: dict[str, Path], verify: bool, progress: Progress) -> None:
    if CHECKSUMS_NAME not in files:
        return
    sums = parse_checksums(files[CHECKSUMS_NAME], v.report)
    v.checksums = sums
    owner = {doc.rel: d.file_code for d in v.dossiers.values() for doc in d.documents if doc.rel}
    for rel in sums:
        if rel not in files:
            v.report.add("E-SUM-MISSING-FILE", f"{CHECKSUMS_NAME}", owner.get(rel), path=rel)
    for rel in owner:
        if rel not in sums:
            v.report.add("W-SUM-UNLISTED", rel, owner[rel], path=rel)
    if not verify:
        return  # ingest compares while copying: each byte is read once
    todo = [rel for rel in sums if rel in files]
    progress.start("Kiểm tra checksums.sha256 / verifying checksums", len(todo))
    for rel in todo:
        actual = hash_file(files[rel], ("sha256",))["sha256"]
        check_sum(v.report, rel, sums[rel], actual, owner.get(rel))
        progress.advance()
    progress.done()


def check_sum(report: Report, rel: str, expected: str, actual: str, dossier: str | None) -> bool:
    if expected != actual:
        report.add("E-SUM-MISMATCH", rel, dossier, path=rel, expected=expected, actual=actual)
        return False
    return True
