"""The SQLite side: a plain table `search_doc` (codes, filters, the NFC originals for snippets) and a contentless
FTS5 table `search_fts` (same rowid) holding only the index of five columns:

  meta_f  folded metadata (dossier title, subject, notation, signer, issuing body, keywords)
  text_f  folded OCR text
  meta_x, text_x  the same, NFC lower case with diacritics kept (for exact-diacritics-first ranking)
  tags    filter tokens: fonds, type, access level, year (so filters are FTS doclist merges, not row lookups)

and a second contentless FTS5 table `search_meta` (meta_f, meta_x, tags) for the "every term in the metadata"
tiers: asked of search_fts with a column filter, FTS5 reads the words' whole doclists (OCR text included) and
drops the other columns late, 6–18 ms at 1M documents to find that no metadata holds "kinh mon"; search_meta's
doclists hold metadata words only (the metadata is a small part of the text, so it costs little space).

Contentless tables cannot delete by rowid alone on SQLite 3.40 (no contentless_delete): a delete re-derives the
indexed values from search_doc's originals (fold() is deterministic) and issues FTS5's 'delete' command.
Ranking is rank.py's (tiers read newest first, never all matches: bm25 would read every match of every term,
about 80 ms for a word in 900,000 of a million documents, even to rank 2,000 of them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text

from preserve.search.fold import exact, fold
from preserve.search.query import Query, fts5_expr
from preserve.search.rows import COLUMNS as _COLS
from preserve.search.rows import estimate, fetch_rows, meta_text, row_of

FOLDED, EXACT = "meta_f text_f", "meta_x text_x"

_DDL = [
    """CREATE TABLE IF NOT EXISTS search_doc (
        id INTEGER PRIMARY KEY,
        doc_code TEXT NOT NULL UNIQUE,
        file_code TEXT NOT NULL,
        fonds_code TEXT NOT NULL,
        aip_id TEXT NOT NULL,
        type_code TEXT,
        issued_iso TEXT,
        day_lo INTEGER,
        day_hi INTEGER,
        level TEXT NOT NULL,
        dossier_title TEXT NOT NULL,
        subject TEXT NOT NULL,
        notation TEXT,
        signer TEXT,
        organ_name TEXT,
        keywords TEXT,
        body TEXT)""",
    "CREATE INDEX IF NOT EXISTS search_doc_file ON search_doc(file_code)",
    "CREATE INDEX IF NOT EXISTS search_doc_day ON search_doc(day_lo)",
    """CREATE VIRTUAL TABLE IF NOT EXISTS search_meta USING fts5(
        meta_f, meta_x, tags, content='', tokenize='unicode61 remove_diacritics 0')""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(
        meta_f, text_f, meta_x, text_x, tags, content='', tokenize='unicode61 remove_diacritics 0')""",
]

def ensure_schema(engine: Any) -> None:
    with engine.begin() as conn:
        for ddl in _DDL:
            conn.execute(text(ddl))


def tag(kind: str, value: str) -> str:
    """One filter token: a prefix and the value in hex (any code becomes one alphanumeric token)."""
    return "x" + kind + value.encode("utf-8").hex()


def _years(lo: int | None, hi: int | None) -> list[int]:
    if lo is None or hi is None:
        return []
    return list(range(dt.date.fromordinal(lo).year, dt.date.fromordinal(hi).year + 1))


def _fts_values(row: dict[str, Any]) -> dict[str, Any]:
    meta, body = meta_text(row), row["body"] or ""
    tags = [tag("f", row["fonds_code"]), tag("t", row["type_code"] or ""), tag("l", row["level"])]
    tags += [f"xy{y}" for y in _years(row["day_lo"], row["day_hi"])]
    return {"id": row["id"], "meta_f": fold(meta), "text_f": fold(body), "meta_x": exact(meta),
            "text_x": exact(body), "tags": " ".join(tags)}


def _delete_ids(conn: Any, where: str, params: dict[str, Any]) -> None:
    rows = [dict(r._mapping) for r in conn.execute(text(f"SELECT id, {_COLS} FROM search_doc WHERE {where}"),
                                                   params)]
    if not rows:
        return
    values = [_fts_values(r) for r in rows]
    conn.execute(text("INSERT INTO search_fts(search_fts, rowid, meta_f, text_f, meta_x, text_x, tags) "
                      "VALUES('delete', :id, :meta_f, :text_f, :meta_x, :text_x, :tags)"), values)
    conn.execute(text("INSERT INTO search_meta(search_meta, rowid, meta_f, meta_x, tags) "
                      "VALUES('delete', :id, :meta_f, :meta_x, :tags)"), values)
    conn.execute(text(f"DELETE FROM search_doc WHERE {where}"), params)


def index_documents(conn: Any, docs: list[Any]) -> None:
    rows = [row_of(d) for d in docs]
    codes = [r["doc_code"] for r in rows]
    for i in range(0, len(codes), 500):
        chunk = codes[i:i + 500]
        marks = ", ".join(f":c{j}" for j in range(len(chunk)))
        params = {f"c{j}": c for j, c in enumerate(chunk)}
        if conn.execute(text(f"SELECT 1 FROM search_doc WHERE doc_code IN ({marks}) LIMIT 1"), params).first():
            _delete_ids(conn, f"doc_code IN ({marks})", params)
    next_id = conn.execute(text("SELECT coalesce(max(id), 0) + 1 FROM search_doc")).scalar_one()
    for n, r in enumerate(rows):
        r["id"] = next_id + n
    conn.execute(text(f"INSERT INTO search_doc(id, {_COLS}) VALUES (:id, "
                      + ", ".join(":" + c.strip() for c in _COLS.split(",")) + ")"), rows)
    values = [_fts_values(r) for r in rows]
    conn.execute(text("INSERT INTO search_fts(rowid, meta_f, text_f, meta_x, text_x, tags) "
                      "VALUES(:id, :meta_f, :text_f, :meta_x, :text_x, :tags)"), values)
    conn.execute(text("INSERT INTO search_meta(rowid, meta_f, meta_x, tags) VALUES(:id, :meta_f, :meta_x, :tags)"),
                 values)


def remove_dossier(conn: Any, file_code: str) -> None:
    _delete_ids(conn, "file_code = :fc", {"fc": file_code})


# ---- queries --------------------------------------------------------------------------------------------------

def _any(tokens: list[str]) -> str:
    return "(" + " OR ".join(f'{{tags}} : "{t}"' for t in tokens) + ")"


def _filter_expr(conn: Any, f: Any) -> tuple[list[str], str, dict[str, Any]]:
    """FTS5 conjuncts for the filters, plus an SQL condition on search_doc d for what tokens cannot say."""
    parts: list[str] = []
    sql, params = "", {}
    if f.fonds:
        parts.append(f'{{tags}} : "{tag("f", f.fonds)}"')
    if f.type_code:
        parts.append(f'{{tags}} : "{tag("t", f.type_code)}"')
    v = f.visible
    if v is not None:
        alts = [f'{{tags}} : "{tag("l", lv)}"' for lv in sorted(v.levels) if lv != "secret" or v.secret_fonds is None]
        if "secret" in v.levels and v.secret_fonds:
            in_fonds = _any([tag("f", c) for c in sorted(v.secret_fonds)])
            alts.append(f'({{tags}} : "{tag("l", "secret")}" AND {in_fonds})')
        parts.append("(" + " OR ".join(alts) + ")" if alts else '{tags} : "xnone"')
        if v.fonds_scope is not None:
            parts.append(_any([tag("f", c) for c in sorted(v.fonds_scope)]) if v.fonds_scope else '{tags} : "xnone"')
    if f.day_lo is not None or f.day_hi is not None:
        lo, hi = f.day_lo, f.day_hi
        if lo is None or hi is None:
            first, last = conn.execute(text("SELECT min(day_lo), max(day_lo) FROM search_doc")).one()
            if first is None:
                return ['{tags} : "xnone"'], "", {}
            lo = lo if lo is not None else first
            hi = hi if hi is not None else max(last, lo)
        years = _years(lo, hi) if lo <= hi else []
        if not years:
            return ['{tags} : "xnone"'], "", {}
        if len(years) <= 400:
            parts.append(_any([f"xy{y}" for y in years]))
        whole = (dt.date.fromordinal(lo).timetuple().tm_yday == 1
                 and dt.date.fromordinal(hi + 1).timetuple().tm_yday == 1)
        if not whole or len(years) > 400:
            sql, params = " AND d.day_hi >= :lo AND d.day_lo <= :hi", {"lo": lo, "hi": hi}
    return parts, sql, params


def _from(sql: str, table: str = "search_fts") -> str:
    join = f" CROSS JOIN search_doc d ON d.id = {table}.rowid" if sql else ""
    return f"FROM {table}{join} WHERE {table} MATCH :e{sql}"


_TIER_COLS = {(False, False): (FOLDED, None), (False, True): ("meta_f", None),
              (True, False): (FOLDED, EXACT), (True, True): ("meta_f", "meta_x")}


class _Search:
    """One query's filters, resolved once; the backend protocol of rank.py."""

    def __init__(self, conn: Any, f: Any) -> None:
        self.parts, self.sql, self.params = _filter_expr(conn, f)
        self.newest: list[int] | None = None
        self.complete = False

    def expr(self, q: Query, exact_: bool, meta_only: bool) -> str:
        folded_cols, exact_cols = _TIER_COLS[(exact_, meta_only)]
        return " AND ".join([f"({fts5_expr(q.terms, folded_cols, exact_cols)})"] + self.parts)

    def candidates(self, conn: Any, q: Query, tier: Any, f: Any, n: int) -> list[int]:
        if not tier.exact and not tier.meta_only and not tier.phrase and self.newest is not None \
                and (n <= len(self.newest) or self.complete):
            return self.newest[:n]  # what count() read already
        t = "search_meta" if tier.meta_only else "search_fts"  # metadata words only: small doclists
        sql = f"SELECT {t}.rowid {_from(self.sql, t)} ORDER BY {t}.rowid DESC LIMIT :n"
        return [r[0] for r in conn.execute(text(sql), {"e": self.expr(q, tier.exact, tier.meta_only), "n": n,
                                                       **self.params})]

    def rows(self, conn: Any, ids: list[int], body: int) -> dict[int, dict[str, Any]]:
        return fetch_rows(conn, ids, body)

    def count(self, conn: Any, q: Query, cap: int | None) -> tuple[int, bool]:
        """Exact up to `cap` matches; beyond it an estimate from how far back the cap-th newest match lies.
        The newest matches read on the way are kept: they are the candidates of the last tier."""
        e = {"e": self.expr(q, False, False), **self.params}
        if cap is None:
            return conn.execute(text(f"SELECT count(*) {_from(self.sql)}"), e).scalar_one(), True
        self.newest = [r[0] for r in conn.execute(text(
            f"SELECT search_fts.rowid {_from(self.sql)} ORDER BY search_fts.rowid DESC LIMIT {cap + 1}"), e)]
        n = len(self.newest)
        self.complete = n <= cap
        if self.complete:
            return n, True
        newest = conn.execute(text("SELECT max(id) FROM search_doc")).scalar_one()
        return estimate(n, self.newest[-1], newest), False


def open_search(conn: Any, f: Any) -> _Search:
    return _Search(conn, f)
