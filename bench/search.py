"""Full-text search on SQLite: load N synthetic documents, then time typical queries (p50, p95 in ms).

Documents are generated from the project's text bank (preserve.sip.sample.text_bank()): subjects, dossier
titles, issuing bodies, signers, notations like 123-NQ/TU, keywords and one or two OCR paragraphs each, with
district names (with diacritics) of Hải Dương / Hải Hưng and dates over several fonds. Loading goes through the
public API (ensure_schema, index_documents), one transaction per batch, as the catalog does.

Usage: .venv/bin/python bench/search.py [--docs N] [--batch N] [--repeat N] [--db PATH [--reuse]] [--keep] [--json]
       .venv/bin/python bench/search.py --url postgresql://…?options=-csearch_path%3Dbench [--docs N] [--reuse]
(with --url: an empty schema of PostgreSQL; the bench does not drop what it made there)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sqlalchemy import text  # noqa: E402

from preserve.catalog.db import make_engine, write_session  # noqa: E402
from preserve.search import SearchDoc, Visibility, ensure_schema, index_documents, search  # noqa: E402
from preserve.sip.sample import text_bank  # noqa: E402

FONDS = [("TU-HD", 1948, 1967), ("TU-HH", 1968, 1996), ("TU-HD2", 1997, 2024), ("HU-KM", 1960, 2020),
         ("HU-CL", 1960, 2020)]
DISTRICTS = ["Kinh Môn", "Chí Linh", "Nam Sách", "Thanh Hà", "Cẩm Giàng", "Gia Lộc", "Tứ Kỳ", "Ninh Giang",
             "Thanh Miện", "Kim Thành", "Bình Giang", "Khoái Châu", "Văn Lâm", "Ân Thi", "Phù Cừ", "Kim Động"]
LEVELS = ["open"] * 6 + ["conditional"] * 3 + ["secret"]


def make_docs(bank: dict, start: int, n: int, rng: random.Random) -> list[SearchDoc]:
    docs = []
    for k in range(start, start + n):
        fonds, y0, y1 = FONDS[k % len(FONDS)]
        year = rng.randint(y0, y1)
        t = rng.choice(bank["types"])
        organ = rng.choice(bank["organs"])
        noun = rng.choice(bank["topics"])
        fill = {"noun": noun, "year": year, "year1": year + 1, "q": rng.randint(1, 4)}
        title = rng.choice(bank["dossier_titles"]).format(types=t["name"], types_lower=t["name"].lower(), **fill)
        subject = rng.choice(bank["subjects"]).format(**fill)
        paras = [p.format(**fill) for p in rng.sample(bank["paragraphs"], rng.randint(1, 2))]
        paras.append(f"Tại huyện {rng.choice(DISTRICTS)}, các chi bộ đã triển khai kịp thời.")
        if k % 1000 == 7:
            paras.append(bank["stray_note"])  # the rare words: "bàn giao"
        r = rng.random()
        issued = f"{year}" if r < 0.1 else f"{year}-{rng.randint(1, 12):02d}" if r < 0.3 else \
            f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        file_code = f"{fonds}.1.{k // 10}"
        docs.append(SearchDoc(
            doc_code=f"{file_code}.{k % 10 + 1:03d}", file_code=file_code, fonds_code=fonds, aip_id=f"uuid-{k}",
            type_code=t["code"], issued_iso=issued, level=LEVELS[k % len(LEVELS)], dossier_title=title,
            subject=subject, code_number=str(rng.randint(1, 300)), code_notation=f"{t['abbr']}/{organ['suffix']}",
            signer=rng.choice(bank["signers"]), organ_name=organ["name"],
            keywords="; ".join(rng.sample(bank["keywords"], 2)), text="\n".join(paras)))
    return docs


def queries(bank: dict) -> dict[str, list[tuple[str, dict]]]:
    from preserve.search.fold import fold

    signers = bank["signers"]
    return {
        "place, no diacritics": [(fold(d), {}) for d in DISTRICTS],
        "place, with diacritics": [(d, {}) for d in DISTRICTS],
        "notation": [(f"{n}-{t['abbr']}/TU", {}) for n in (5, 25, 48, 120, 212) for t in bank["types"][:4]],
        "signer": [(s, {}) for s in signers],
        "quoted phrase": [('"xây dựng Đảng"', {}), ('"hợp tác xã"', {}), ('"vụ chiêm"', {}), ('"thi đua"', {})],
        "common word": [("dang", {}), ("tinh uy", {}), ("Đảng", {}), ("cong tac", {})],
        "rare word": [("ghi chu", {}), ("trang", {}), ("bàn giao", {})],
        "fonds + date range": [(w, {"fonds": f, "date_from": a, "date_to": b}) for w, f, a, b in [
            ("thuy loi", "TU-HH", "1970", "1975-06"), ("can bo", "TU-HD", "1960-03", "1962"),
            ("Kinh Môn", "HU-KM", "1990", "2000-12-31"), ("tuyen quan", "TU-HD2", "2001-01-15", "2003")]],
        "common word, reader's permissions": [("dang", {"visible": Visibility(frozenset({"open", "conditional"}),
                                                                               frozenset(), None)})],
    }


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--db", help="database file (default: a new temporary one)")
    ap.add_argument("--url", help="a PostgreSQL catalog URL instead of SQLite")
    ap.add_argument("--reuse", action="store_true", help="use --db as it is, without loading")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    bank = text_bank()
    tmp = None
    db = None
    if args.url:
        engine = make_engine(args.url)
    else:
        if args.db:
            db = Path(args.db)
        else:
            tmp = tempfile.mkdtemp(prefix="bench-search-")
            db = Path(tmp) / "catalog.sqlite"
        if not args.reuse and db.exists():
            sys.exit(f"{db} exists; use --reuse or another --db")
        engine = make_engine(f"sqlite:///{db}")
    load_s = None
    if not args.reuse:
        ensure_schema(engine)
        rng = random.Random(42)
        t0 = time.perf_counter()
        for start in range(0, args.docs, args.batch):
            docs = make_docs(bank, start, min(args.batch, args.docs - start), rng)
            with write_session(engine) as s:
                index_documents(s, docs)
            if not args.json and (start // args.batch) % 20 == 0:
                print(f"  {start + len(docs):>9} docs  {time.perf_counter() - t0:7.1f} s", file=sys.stderr)
        load_s = time.perf_counter() - t0
        with engine.connect() as c:  # as a maintenance job would after a bulk load
            if db is not None:
                c.execute(text("INSERT INTO search_fts(search_fts) VALUES('optimize')"))
                c.execute(text("INSERT INTO search_meta(search_meta) VALUES('optimize')"))
                c.commit()
                c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            else:
                c.commit()
                c.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE search_doc")
        load_s_opt = time.perf_counter() - t0
    with engine.connect() as c:
        n = c.execute(text("SELECT count(*) FROM search_doc")).scalar_one()
        if db is None:
            size = c.execute(text("SELECT pg_total_relation_size('search_doc')")).scalar_one()
    if db is not None:
        size = sum(os.path.getsize(p) for p in [db, Path(f"{db}-wal")] if p.exists())

    report: dict = {"docs": n, "db_bytes": size, "load_s": load_s,
                    "load_and_optimize_s": None if args.reuse else load_s_opt, "queries": {}}
    for kind, variants in queries(bank).items():
        search(engine, variants[0][0], **variants[0][1])  # warm
        times, totals = [], []
        for i in range(args.repeat):
            q, kw = variants[i % len(variants)]
            t0 = time.perf_counter()
            res = search(engine, q, **kw)
            times.append((time.perf_counter() - t0) * 1000)
            totals.append(res["total"])
        report["queries"][kind] = {"p50_ms": round(statistics.median(times), 2),
                                   "p95_ms": round(percentile(times, 95), 2),
                                   "example": variants[0][0], "median_total": int(statistics.median(totals))}
    engine.dispose()
    if tmp and not args.keep:
        for p in Path(tmp).iterdir():
            p.unlink()
        os.rmdir(tmp)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return
    print(f"documents: {n}   database: {size / 2**20:.0f} MiB   "
          + (f"load: {load_s:.0f} s (+ optimize: {load_s_opt - load_s:.0f} s)" if load_s else ""))
    print(f"{'query':38} {'example':24} {'matches':>9} {'p50 ms':>8} {'p95 ms':>8}")
    for kind, r in report["queries"].items():
        print(f"{kind:38} {r['example'][:24]:24} {r['median_total']:>9} {r['p50_ms']:>8} {r['p95_ms']:>8}")


if __name__ == "__main__":
    main()
