"""The PostgreSQL side: one table `search_doc` with the NFC originals and two maintained tsvector columns,
built from text folded in Python (the same fold() as SQLite, so no unaccent extension is needed):

  vec_f  folded words: metadata with weight A, OCR text with weight D      (GIN index)
  vec_x  the same, NFC lower case with diacritics kept (exact-first ranking) (GIN index)
  vec_m, vec_mx  the metadata's words alone, folded and exact (the "in the metadata" tiers) (GIN indexes)

The words are split in Python (fold.tokens) and handed to to_tsvector('simple', …) separated by spaces, so
PostgreSQL's parser (which would keep 25-NQ/TU or a.b as one 'file' or 'host' token) sees plain words, exactly
as FTS5 does. Phrases are <-> chains; 'in the metadata' asks vec_m / vec_mx. Filters are plain columns (B-tree
indexes). Ranking is rank.py's, as on SQLite.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from preserve.search.fold import exact, fold, tokens
from preserve.search.query import Query, tsquery
from preserve.search.rows import COLUMNS as _COLS
from preserve.search.rows import estimate, fetch_rows, meta_text, row_of

_DDL = [
    """CREATE TABLE IF NOT EXISTS search_doc (
        id BIGSERIAL PRIMARY KEY,
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
        body TEXT,
        vec_f TSVECTOR NOT NULL,
        vec_x TSVECTOR NOT NULL,
        vec_m TSVECTOR NOT NULL,
        vec_mx TSVECTOR NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS search_doc_file ON search_doc (file_code)",
    "CREATE INDEX IF NOT EXISTS search_doc_fonds_day ON search_doc (fonds_code, day_lo)",
    "CREATE INDEX IF NOT EXISTS search_doc_vec_f ON search_doc USING gin (vec_f)",
    "CREATE INDEX IF NOT EXISTS search_doc_vec_x ON search_doc USING gin (vec_x)",
    "CREATE INDEX IF NOT EXISTS search_doc_vec_m ON search_doc USING gin (vec_m)",
    "CREATE INDEX IF NOT EXISTS search_doc_vec_mx ON search_doc USING gin (vec_mx)",
]

_VEC = ("setweight(to_tsvector('simple', :{p}_meta), 'A') || setweight(to_tsvector('simple', :{p}_text), 'D')")


def ensure_schema(engine: Any) -> None:
    with engine.begin() as conn:
        for ddl in _DDL:
            conn.execute(text(ddl))


def _words(s: str) -> str:
    return " ".join(tokens(s))


def index_documents(conn: Any, docs: list[Any]) -> None:
    rows = []
    for d in docs:
        r = row_of(d)
        meta, body = meta_text(r), r["body"] or ""
        r.update(f_meta=_words(fold(meta)), f_text=_words(fold(body)),
                 x_meta=_words(exact(meta)), x_text=_words(exact(body)))
        rows.append(r)
    codes = [r["doc_code"] for r in rows]
    for i in range(0, len(codes), 500):
        chunk = codes[i:i + 500]
        marks = ", ".join(f":c{j}" for j in range(len(chunk)))
        conn.execute(text(f"DELETE FROM search_doc WHERE doc_code IN ({marks})"),
                     {f"c{j}": c for j, c in enumerate(chunk)})
    values = ", ".join(":" + c.strip() for c in _COLS.split(","))
    conn.execute(text(f"INSERT INTO search_doc ({_COLS}, vec_f, vec_x, vec_m, vec_mx) VALUES ({values}, "
                      f"{_VEC.format(p='f')}, {_VEC.format(p='x')}, "
                      "to_tsvector('simple', :f_meta), to_tsvector('simple', :x_meta))"), rows)


def remove_dossier(conn: Any, file_code: str) -> None:
    conn.execute(text("DELETE FROM search_doc WHERE file_code = :fc"), {"fc": file_code})


def _in(name: str, values: Any, params: dict[str, Any], col: str) -> str:
    values = sorted(values)
    if not values:
        return "FALSE"
    for j, v in enumerate(values):
        params[f"{name}{j}"] = v
    return f"{col} IN (" + ", ".join(f":{name}{j}" for j in range(len(values))) + ")"


def _filters(f: Any) -> tuple[str, dict[str, Any]]:
    conds, params = [], {}
    if f.fonds:
        conds.append("fonds_code = :fonds")
        params["fonds"] = f.fonds
    if f.type_code:
        conds.append("type_code = :type_code")
        params["type_code"] = f.type_code
    if f.day_lo is not None:
        conds.append("day_hi >= :day_lo")
        params["day_lo"] = f.day_lo
    if f.day_hi is not None:
        conds.append("day_lo <= :day_hi")
        params["day_hi"] = f.day_hi
    v = f.visible
    if v is not None:
        plain = [lv for lv in v.levels if lv != "secret" or v.secret_fonds is None]
        alt = [_in("lv", plain, params, "level")]
        if "secret" in v.levels and v.secret_fonds:
            alt.append("(level = 'secret' AND " + _in("sf", v.secret_fonds, params, "fonds_code") + ")")
        conds.append("(" + " OR ".join(alt) + ")")
        if v.fonds_scope is not None:
            conds.append(_in("fs", v.fonds_scope, params, "fonds_code"))
    return "".join(" AND " + c for c in conds), params


class _Search:
    """One query's filters as SQL; the backend protocol of rank.py."""

    def __init__(self, conn: Any, f: Any) -> None:
        self.cond, self.params = _filters(f)
        self.newest: list[int] | None = None
        self.complete = False

    def where(self, q: Query, exact_: bool, meta_only: bool) -> tuple[str, dict[str, Any]]:
        """vec_f/vec_x for "anywhere", vec_m/vec_mx for "in the metadata" (a weight-A tsquery would need every
        candidate's whole tsvector read back from the heap: the GIN index does not keep weights)."""
        folded, exact_col = ("vec_m", "vec_mx") if meta_only else ("vec_f", "vec_x")
        params = {**self.params, "qf": tsquery(q.terms)}
        where = f"{folded} @@ to_tsquery('simple', :qf)"
        if exact_:
            params["qx"] = tsquery(q.terms, exact_only=True)
            where += f" AND {exact_col} @@ to_tsquery('simple', :qx)"
        return where + self.cond, params

    def candidates(self, conn: Any, q: Query, tier: Any, f: Any, n: int) -> list[int]:
        if not tier.exact and not tier.meta_only and not tier.phrase and self.newest is not None \
                and (n <= len(self.newest) or self.complete):
            return self.newest[:n]  # what count() read already
        where, params = self.where(q, tier.exact, tier.meta_only)
        sql = f"SELECT id FROM search_doc WHERE {where} ORDER BY id DESC LIMIT :n"
        return [r[0] for r in conn.execute(text(sql), {**params, "n": n})]

    def rows(self, conn: Any, ids: list[int], body: int) -> dict[int, dict[str, Any]]:
        return fetch_rows(conn, ids, body)

    def count(self, conn: Any, q: Query, cap: int | None) -> tuple[int, bool]:
        where, params = self.where(q, False, False)
        if cap is None:
            return conn.execute(text(f"SELECT count(*) FROM search_doc WHERE {where}"), params).scalar_one(), True
        self.newest = [r[0] for r in conn.execute(
            text(f"SELECT id FROM search_doc WHERE {where} ORDER BY id DESC LIMIT {cap + 1}"), params)]
        n = len(self.newest)
        self.complete = n <= cap
        if self.complete:
            return n, True
        newest = conn.execute(text("SELECT max(id) FROM search_doc")).scalar_one()
        return estimate(n, self.newest[-1], newest), False


def open_search(conn: Any, f: Any) -> _Search:
    return _Search(conn, f)
