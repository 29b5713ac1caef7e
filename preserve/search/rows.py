"""What both engines store for a document: one row of codes, filters and NFC originals; shared helpers."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import Any

from sqlalchemy import text

from preserve.search.fold import nfc

COLUMNS = ("doc_code, file_code, fonds_code, aip_id, type_code, issued_iso, day_lo, day_hi, level, dossier_title, "
           "subject, notation, signer, organ_name, keywords, body")
_ISO_RE = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?$")


def notation_of(number: str | None, notation: str | None) -> str:
    """'25', 'NQ/TU' → '25-NQ/TU' (either part alone if the other is missing)."""
    parts = [p.strip() for p in (number, notation) if p and p.strip()]
    return "-".join(parts)


def day_range(iso: str | None) -> tuple[int, int] | None:
    """'2020' → (1 Jan 2020, 31 Dec 2020) as ordinal days; 'yyyy-mm' → the month; None if absent or unreadable."""
    m = _ISO_RE.match((iso or "").strip())
    if not m:
        return None
    y, mo, d = int(m.group(1)), m.group(2), m.group(3)
    try:
        if mo is None:
            return dt.date(y, 1, 1).toordinal(), dt.date(y, 12, 31).toordinal()
        mo_i = int(mo)
        if d is None:
            return dt.date(y, mo_i, 1).toordinal(), dt.date(y, mo_i, calendar.monthrange(y, mo_i)[1]).toordinal()
        day = dt.date(y, mo_i, int(d)).toordinal()
        return day, day
    except ValueError:
        return None


def _s(v: str | None) -> str | None:
    return nfc(v) if v else v


def row_of(doc: Any) -> dict[str, Any]:
    """The stored row of a SearchDoc (NFC text; dates as inclusive ordinal day bounds)."""
    days = day_range(doc.issued_iso)
    return {"doc_code": doc.doc_code, "file_code": doc.file_code, "fonds_code": doc.fonds_code,
            "aip_id": doc.aip_id, "type_code": doc.type_code or None, "issued_iso": doc.issued_iso or None,
            "day_lo": days[0] if days else None, "day_hi": days[1] if days else None, "level": doc.level,
            "dossier_title": _s(doc.dossier_title) or "", "subject": _s(doc.subject) or "",
            "notation": notation_of(doc.code_number, doc.code_notation) or None, "signer": _s(doc.signer),
            "organ_name": _s(doc.organ_name), "keywords": _s(doc.keywords), "body": _s(doc.text)}


def meta_text(row: dict[str, Any]) -> str:
    """The metadata fields of a row as one text, one field a line (what is indexed with the higher weight)."""
    return "\n".join(v for v in (row["dossier_title"], row["subject"], row["notation"], row["signer"],
                                 row["organ_name"], row["keywords"]) if v)


def fetch_rows(conn: Any, ids: list[int], body: int) -> dict[int, dict[str, Any]]:
    """search_doc rows by id (same SQL on both engines); `body`: characters of OCR text to read (0 none, -1 all)."""
    if not ids:
        return {}
    cols = COLUMNS if body < 0 else COLUMNS.replace(", body", f", substr(body, 1, {int(body)}) AS body" if body else "")
    marks = ", ".join(str(int(i)) for i in ids)
    rows = conn.execute(text(f"SELECT id, {cols} FROM search_doc WHERE id IN ({marks})"))
    return {r.id: dict(r._mapping) for r in rows}


def estimate(counted: int, oldest_id: int, newest_id: int) -> int:
    """All matches, from the newest `counted` ones reaching back to `oldest_id`: assumes matches spread evenly
    over the ids (rounded to 2 significant figures, never below what was counted)."""
    span = max(1, newest_id - oldest_id + 1)
    guess = counted * newest_id / span
    digits = max(0, len(str(int(guess))) - 2)
    return max(counted, int(round(guess, -digits)))
