"""The search index's API: documents in, ranked and filtered results out, on SQLite (FTS5) or PostgreSQL.

The catalog calls `ensure_schema` when it creates its tables, `index_documents` / `remove_dossier` inside its
own write transaction (never committing here), and `search` to answer a query. The SQL lives in sqlite_fts.py
and postgres_fts.py; folding, parsing, dates and snippets are shared, so both engines give the same answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from preserve.errors import UsageError
from preserve.search import postgres_fts, sqlite_fts
from preserve.search.query import parse
from preserve.search.rank import rank
from preserve.search.rows import day_range, notation_of
from preserve.search.snippet import snippet

LEVELS = ("open", "conditional", "secret", "closed")
MAX_LIMIT = 500
TOTAL_CAP = 1000  # matches counted one by one; beyond, the total is estimated


@dataclass
class SearchDoc:
    doc_code: str
    file_code: str
    fonds_code: str
    aip_id: str
    type_code: str | None
    issued_iso: str | None
    level: str
    dossier_title: str
    subject: str
    code_number: str | None
    code_notation: str | None
    signer: str | None
    organ_name: str | None
    keywords: str | None
    text: str | None

    @property
    def notation(self) -> str:
        return notation_of(self.code_number, self.code_notation)


@dataclass(frozen=True)
class Visibility:
    """Who is asking: levels seen at all; fonds where 'secret' is seen (None = all); fonds scope (None = all)."""

    levels: frozenset[str]
    secret_fonds: frozenset[str] | None = None
    fonds_scope: frozenset[str] | None = None


@dataclass(frozen=True)
class Filters:
    fonds: str | None = None
    type_code: str | None = None
    day_lo: int | None = None  # proleptic ordinal days, inclusive
    day_hi: int | None = None
    visible: Visibility | None = None


def _bound(iso: str | None, which: int, name: str) -> int | None:
    if iso is None or not str(iso).strip():
        return None
    r = day_range(str(iso))
    if r is None:
        raise UsageError(f"Ngày không hợp lệ cho {name}: {iso!r} / Invalid date for {name}: {iso!r}",
                         hint="Dùng yyyy, yyyy-mm hoặc yyyy-mm-dd / use yyyy, yyyy-mm or yyyy-mm-dd")
    return r[which]


def _backend(bind: Any):  # type: ignore[no-untyped-def]
    name = bind.dialect.name
    if name == "sqlite":
        return sqlite_fts
    if name == "postgresql":
        return postgres_fts
    raise UsageError(f"Tìm kiếm không hỗ trợ cơ sở dữ liệu {name} / Search does not support the {name} database",
                     hint="Dùng SQLite hoặc PostgreSQL / use SQLite or PostgreSQL")


def ensure_schema(engine: Any) -> None:
    """Create the search tables and indexes if missing (idempotent)."""
    _backend(engine).ensure_schema(engine)


def index_documents(conn: Any, docs: list[SearchDoc]) -> None:
    """Add or replace documents (by doc_code; the last of a repeated one wins) inside the caller's transaction;
    never commits."""
    if docs:
        _backend(_dialect_holder(conn)).index_documents(conn, list({d.doc_code: d for d in docs}.values()))


def remove_dossier(conn: Any, file_code: str) -> None:
    """Remove every document of a dossier (a higher AIP version replaces them), inside the caller's transaction."""
    _backend(_dialect_holder(conn)).remove_dossier(conn, file_code)


def _dialect_holder(conn: Any) -> Any:
    """A Connection has .dialect; a Session has .get_bind()."""
    if hasattr(conn, "dialect"):
        return conn
    return conn.get_bind()


def search(engine: Any, query: str, *, fonds: str | None = None, type_code: str | None = None,
           date_from: str | None = None, date_to: str | None = None,
           visible: Visibility | None = None, limit: int = 20, exact_total: bool = False) -> dict:
    """Ranked documents matching every term of `query`, filtered: {"results": [...], "total": N, "totalExact": b}.

    `total` is exact up to TOTAL_CAP matches; beyond that it is an estimate ("totalExact": false) unless
    `exact_total` is asked for (counting every match of a common word costs 100 ms and more at 1M documents).
    """
    q = parse(query)
    limit = max(0, min(int(limit), MAX_LIMIT))
    filters = Filters(fonds=fonds or None, type_code=type_code or None,
                      day_lo=_bound(date_from, 0, "--from"), day_hi=_bound(date_to, 1, "--to"), visible=visible)
    if visible is not None and not (set(visible.levels) & set(LEVELS)):
        return {"results": [], "total": 0, "totalExact": True}
    backend = _backend(engine)
    with engine.connect() as conn:
        s = backend.open_search(conn, filters)
        total, is_exact = s.count(conn, q, None if exact_total else TOTAL_CAP)
        ranked = rank(s, conn, q, filters, limit) if total else []
        rows = s.rows(conn, [i for i, _ in ranked], body=-1)
    results = []
    for i, score in ranked:
        row = rows[i]
        title = row["subject"] or row["dossier_title"]
        fields = [row["body"], row["subject"], row["dossier_title"], row["notation"], row["signer"],
                  row["organ_name"], row["keywords"]]
        results.append({
            "docCode": row["doc_code"], "fileCode": row["file_code"], "title": title,
            "snippet": snippet(fields, q), "score": round(score, 6),
            "aipId": row["aip_id"], "notation": row["notation"] or None, "issued": row["issued_iso"],
            "fonds": row["fonds_code"],
        })
    return {"results": results, "total": total, "totalExact": is_exact}
