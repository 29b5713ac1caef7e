"""Field checks for workbook rows: required values, code lists, dates and numbers → normalised records."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from typing import Any

from ..findings import Finding
from .profile import Field, Profile, Sheet
from .workbook import Row

_DATE_FORMS = (
    (re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$"), ("d", "m", "y")),   # dd/mm/yyyy
    (re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$"), ("y", "m", "d")),           # yyyy-mm-dd
    (re.compile(r"^(\d{1,2})[/.-](\d{4})$"), ("m", "y")),                     # mm/yyyy
    (re.compile(r"^(\d{4})$"), ("y",)),                                        # yyyy
)


@dataclass(frozen=True)
class PartialDate:
    year: int
    month: int | None = None
    day: int | None = None

    @property
    def iso(self) -> str:
        if self.day:
            return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"
        if self.month:
            return f"{self.year:04d}-{self.month:02d}"
        return f"{self.year:04d}"

    @property
    def earliest(self) -> tuple[int, int, int]:
        return (self.year, self.month or 1, self.day or 1)

    @property
    def latest(self) -> tuple[int, int, int]:
        m = self.month or 12
        return (self.year, m, self.day or calendar.monthrange(self.year, m)[1])


def parse_date(text: str) -> PartialDate | None:
    """dd/mm/yyyy, yyyy-mm-dd, mm/yyyy or yyyy (historical records often carry only a year); None if invalid."""
    t = text.strip()
    if re.match(r"^\d{4}-\d{2}-\d{2}[ T]00:00(:00)?$", t):  # a date cell exported with a midnight time
        t = t[:10]
    for rx, parts in _DATE_FORMS:
        m = rx.match(t)
        if not m:
            continue
        v = dict(zip(parts, map(int, m.groups())))
        y, mo, d = v["y"], v.get("m"), v.get("d")
        if not 1000 <= y <= 2999:
            return None
        if mo is not None and not 1 <= mo <= 12:
            return None
        if d is not None and not 1 <= d <= calendar.monthrange(y, mo)[1]:
            return None
        return PartialDate(y, mo, d)
    return None


def parse_int(text: str) -> int | None:
    t = text.strip().replace(" ", "")
    return int(t) if re.fullmatch(r"\d+", t) else None


def check_row(row: Row, sheet: Sheet, profile: Profile, dossier: str | None) -> tuple[dict[str, Any], list[Finding]]:
    """Normalise one row by the profile; return the record (see aip.model.Aip.dossier) and its findings."""
    findings: list[Finding] = []
    rec: dict[str, Any] = {}
    for f in sheet.fields:
        if f.key not in row.columns:
            continue
        raw = row.get(f.key)
        where = row.where(f.key)
        if not raw:
            if f.required:
                findings.append(Finding("E-FIELD-REQUIRED", where, {"field": f.key, "label": f.label}, dossier))
            rec[f.key] = None if f.kind in ("int",) or f.codes else ""
            continue
        rec[f.key] = _value(f, raw, where, profile, dossier, findings)
        if f.kind == "date":
            d = parse_date(raw)
            rec[f.key + "_iso"] = d.iso if d else None
    return rec, findings


def _value(f: Field, raw: str, where: str, profile: Profile, dossier: str | None, findings: list[Finding]) -> Any:
    if f.codes:
        code = profile.resolve_code(f.codes, raw)
        if code is None:
            findings.append(Finding("E-FIELD-CODE", where, {"field": f.key, "label": f.label, "value": raw,
                                                            "allowed": profile.allowed(f.codes)}, dossier))
            return raw
        return code
    if f.kind == "int":
        n = parse_int(raw)
        if n is None:
            findings.append(Finding("E-FIELD-NUMBER", where, {"field": f.key, "label": f.label, "value": raw}, dossier))
        return n
    if f.kind == "date":
        if parse_date(raw) is None:
            findings.append(Finding("E-FIELD-DATE", where, {"field": f.key, "label": f.label, "value": raw}, dossier))
        return raw
    return raw
