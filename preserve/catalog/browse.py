"""Browsing the catalog: fonds with their counts, the dossiers of a fonds (filtered, paged), the documents of a
dossier, one document, with the same visibility as search (preserve.access.visibility).

A document is visible when its access class (preserve.access.rules.record_level of the dossier's mode and the
document's mode and secrecy) is one the user sees (secret ones only in fonds the user is granted, when the
visibility says so) and its fonds is in the user's scope. A dossier is listed when at least one of its documents
is visible; it then shows only those. The classes are computed in SQL (the same table as rules.py), so a page of
a fonds of 100 000 dossiers is one query, not a loop in Python.

Dates: filters take dd/mm/yyyy, mm/yyyy, yyyy or yyyy-mm-dd; a dossier matches when its span [startDate,
endDate] (normalised yyyy, yyyy-mm or yyyy-mm-dd) overlaps the asked range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, false, func, literal, or_, true
from sqlmodel import select

from preserve.access.rules import (
    CLOSED,
    CONDITIONAL,
    LEVELS,
    OPEN,
    SECRET,
    record_level,
)
from preserve.search.index import Visibility

from . import records
from .db import read_session
from .models import AipRecord, Document, Dossier, Fonds

MAX_LIMIT = 500
_RANK = {lv: i for i, lv in enumerate(LEVELS)}  # open 0, conditional 1, secret 2, closed 3


@dataclass(frozen=True)
class DossierFilters:
    type_code: str | None = None    # dossiers holding a (visible) document of this type
    date_lo: str | None = None      # yyyy-mm-dd, inclusive
    date_hi: str | None = None      # yyyy-mm-dd, inclusive
    mode: str | None = None         # the dossier's mode code


def _blank(col):
    return or_(col.is_(None), func.trim(col) == "")


def _mode_rank(col, empty: int):
    """rules._MODE: 01 open, 02 conditional, 03 secret, anything else conditional; empty -> `empty`."""
    return case((_blank(col), literal(empty)), (func.trim(col) == "01", literal(_RANK[OPEN])),
                (func.trim(col) == "03", literal(_RANK[SECRET])), else_=literal(_RANK[CONDITIONAL]))


def _secrecy_rank(col):
    """rules._SECRECY: empty none (0), 03 closed, anything else secret."""
    return case((_blank(col), literal(_RANK[OPEN])), (func.trim(col) == "03", literal(_RANK[CLOSED])),
                else_=literal(_RANK[SECRET]))


def _greatest(a, b):
    return case((a >= b, a), else_=b)


def doc_rank():
    """The access class of a document row joined to its dossier, as 0..3 (record_level in SQL)."""
    dossier = _mode_rank(Dossier.mode, _RANK[CONDITIONAL])  # a dossier's missing mode counts as conditional
    doc = _greatest(_mode_rank(Document.mode, _RANK[OPEN]), _secrecy_rank(Document.secrecy))
    return _greatest(dossier, doc)


def visible_clause(visible: Visibility | None):
    """A condition on Document joined to Dossier: the user may see it (None: everything)."""
    if visible is None:
        return true()
    rank = doc_rank()
    levels = set(visible.levels) & set(LEVELS)
    alts = [rank == _RANK[lv] for lv in sorted(levels) if lv != SECRET or visible.secret_fonds is None]
    if SECRET in levels and visible.secret_fonds:
        alts.append(and_(rank == _RANK[SECRET], Dossier.fonds_code.in_(sorted(visible.secret_fonds))))
    cond = or_(*alts) if alts else false()
    if visible.fonds_scope is not None:
        cond = and_(cond, Dossier.fonds_code.in_(sorted(visible.fonds_scope)) if visible.fonds_scope else false())
    return cond


def is_visible(visible: Visibility | None, fonds: str, dossier_mode: Any, doc_mode: Any, secrecy: Any) -> bool:
    """The same test in Python, for one document."""
    if visible is None:
        return True
    level = record_level(dossier_mode, [(doc_mode, secrecy)])
    if level not in visible.levels:
        return False
    if level == SECRET and visible.secret_fonds is not None and fonds not in visible.secret_fonds:
        return False
    return visible.fonds_scope is None or fonds in visible.fonds_scope


def fonds_list(engine, visible: Visibility | None = None) -> list[dict[str, Any]]:
    """Every fonds with something the user may see: code, name, dossiers, documents, pages (visible ones)."""
    with read_session(engine) as s:
        rows = s.exec(
            select(Dossier.fonds_code, func.count(func.distinct(Dossier.file_code)), func.count(Document.doc_code),
                   func.coalesce(func.sum(Document.number_of_page), 0))
            .join(Document, Document.file_code == Dossier.file_code)
            .where(visible_clause(visible)).group_by(Dossier.fonds_code)).all()
        names = {f.code: f.name for f in s.exec(select(Fonds))}
    out = [{"code": code, "name": names.get(code, ""), "dossiers": int(nd), "documents": int(ndoc),
            "pages": int(pages or 0)} for code, nd, ndoc, pages in rows]
    return sorted(out, key=lambda r: r["code"])


def get_fonds(engine, code: str) -> dict[str, Any] | None:
    with read_session(engine) as s:
        row = s.get(Fonds, code)
        return {"code": row.code, "name": row.name} if row else None


def dossiers(engine, fonds: str, filters: DossierFilters = DossierFilters(), visible: Visibility | None = None,
             limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """A page of the dossiers of `fonds` the user may see, filtered: {"fonds", "dossiers": [...], "total",
    "limit", "offset"}; each dossier by profile key, with "documents" (visible ones) and "aipId"."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    offset = max(0, int(offset))
    doc_cond = and_(Document.file_code == Dossier.file_code, visible_clause(visible))
    if filters.type_code:
        doc_cond = and_(doc_cond, Document.type_name == filters.type_code)
    inner = select(Document.doc_code).where(doc_cond)
    cond = and_(Dossier.fonds_code == fonds, inner.exists())
    if filters.mode:
        cond = and_(cond, func.trim(Dossier.mode) == filters.mode)
    if filters.date_hi:  # starts on or before the range's end ("2019-05" <= "2019-05-31")
        cond = and_(cond, func.coalesce(Dossier.start_iso, Dossier.end_iso) <= filters.date_hi)
    if filters.date_lo:  # ends on or after its start; "2019-05~" >= "2019-05-10" ('~' sorts after digits, '-')
        cond = and_(cond, func.coalesce(Dossier.end_iso, Dossier.start_iso).concat("~") >= filters.date_lo)
    count_docs = (select(func.count(Document.doc_code)).where(and_(Document.file_code == Dossier.file_code,
                                                                   visible_clause(visible)))
                  .correlate(Dossier).scalar_subquery())
    with read_session(engine) as s:
        total = int(s.exec(select(func.count()).select_from(Dossier).where(cond)).one() or 0)
        rows = s.exec(select(Dossier, count_docs).where(cond)
                      .order_by(Dossier.catalog_no, Dossier.file_code).limit(limit).offset(offset)).all()
        out = []
        for row, n in rows:
            d = records.dossier_dict(row, None)
            d.pop("fondsName", None)
            d["documents"] = int(n or 0)
            d["aipId"] = row.aip_id
            out.append(d)
    return {"fonds": fonds, "dossiers": out, "total": total, "limit": limit, "offset": offset}


def dossier(engine, file_code: str, visible: Visibility | None = None) -> dict[str, Any] | None:
    """One dossier by profile key with "documents" (the visible ones, by ordinal), "aipId", "fondsName";
    None when unknown or when the user may see none of it."""
    with read_session(engine) as s:
        row = s.get(Dossier, file_code)
        if row is None:
            return None
        fonds = s.get(Fonds, row.fonds_code)
        docs = s.exec(select(Document).where(Document.file_code == file_code).order_by(Document.doc_ordinal)).all()
        shown = [d for d in docs if is_visible(visible, row.fonds_code, row.mode, d.mode, d.secrecy)]
        if not shown and (docs or visible is not None):
            return None
        out = records.dossier_dict(row, fonds.name if fonds else None)
        out["aipId"] = row.aip_id
        out["level"] = record_level(row.mode, [(d.mode, d.secrecy) for d in docs])
        out["documents"] = [{**records.document_dict(d), "aipId": d.aip_id,
                             "level": record_level(row.mode, [(d.mode, d.secrecy)])} for d in shown]
        out["hiddenDocuments"] = len(docs) - len(shown)
        return out


def document(engine, doc_code: str, visible: Visibility | None = None) -> dict[str, Any] | None:
    """One document by profile key with "aipId", "level", "fondsCode", "fondsName", "dossierTitle", "aipVersion";
    None when unknown or not visible to the user."""
    with read_session(engine) as s:
        row = s.get(Document, doc_code)
        if row is None:
            return None
        dos = s.get(Dossier, row.file_code)
        if dos is None or not is_visible(visible, dos.fonds_code, dos.mode, row.mode, row.secrecy):
            return None
        fonds = s.get(Fonds, dos.fonds_code)
        aip = s.get(AipRecord, row.aip_id)
        out = records.document_dict(row)
        out.update(aipId=row.aip_id, aipVersion=aip.version if aip else None,
                   level=record_level(dos.mode, [(row.mode, row.secrecy)]), fondsCode=dos.fonds_code,
                   fondsName=fonds.name if fonds else "", dossierTitle=dos.title)
        return out


def aip_visible(engine, aip_id: str, visible: Visibility | None = None) -> bool:
    """Whether the user may see at least one document of the dossier this AIP holds (None: everything)."""
    if visible is None:
        return True
    with read_session(engine) as s:
        aip = s.get(AipRecord, aip_id)
        if aip is None:
            return False
        q = (select(Document.doc_code).join(Dossier, Dossier.file_code == Document.file_code)
             .where(Document.file_code == aip.file_code, visible_clause(visible)).limit(1))
        return s.exec(q).first() is not None
