"""OCR quality, reading order and throughput of ocrmypdf + tesseract (vie), through preserve.ocr.engine.

1. Quality: for each defect level (mild, tilted, heavy) and option set, generated pages with known text
   (preserve.ocr.degrade) are OCRed, one single-image PDF each, all of a set in one `run_ocr` over the cores;
   the text layer (`pdftotext -enc UTF-8`) is compared with the ground truth on NFC text with whitespace
   collapsed: character error rate, word error rate, word recall ignoring order, and wall seconds per page.
2. Reading order: pages drawn by preserve.sip.sample.render_pages (two-column Party header), clean and
   degraded; for each set, how many header lines come out of pdftotext as one whole line, whether each column
   keeps its order, and how many lines mix words of both columns (scrambled).
   Set c is the engine's own choice: --deskew only for a scan that measures crooked (preserve.ocr.skew).
3. Throughput: D documents of P pages (sample-style multi-page PDFs, mild, tilted, heavy in turn) through
   `run_ocr` with the engine's choice, never/always --deskew and ocrmypdf's optimiser on, against the plain way
   (one document after another, --jobs = cores, with and without OMP_THREAD_LIMIT=1); seconds of wall time per
   page and output bytes per page.
Usage: .venv/bin/python bench/ocr.py [--pages N] [--samples N] [--docs D] [--doc-pages P] [--cores C] [--json]
       .venv/bin/python bench/ocr.py --tables RUN.json   (the tables of an earlier --json run)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from preserve.ocr import engine  # noqa: E402
from preserve.ocr.degrade import DPI, degrade, header_columns, make_page, sample_spec  # noqa: E402
from preserve.sip.sample import render_pages  # noqa: E402

PLAIN = ["-l", "vie", "--output-type", "pdfa-2", "-q"]  # ocrmypdf's defaults otherwise
OPTION_SETS = {
    "a defaults": PLAIN,
    "b --deskew": PLAIN + ["--deskew"],
    "c chosen": None,  # engine's choice per document: --deskew only if the scan measures crooked
}


def normal(text: str) -> str:
    """NFC with runs of whitespace as one space: the layout of the text layer is not what is measured."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def levenshtein(a: list | str, b: list | str) -> int:
    """Edit distance, one row at a time: O(len(a)·len(b)) time, O(len(b)) memory."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def scores(ref: str, hyp: str) -> dict[str, float]:
    """CER and WER against the reference, and the share of reference words found anywhere (multiset)."""
    ref, hyp = normal(ref), normal(hyp)
    rw, hw = ref.split(), hyp.split()
    found = sum((Counter(rw) & Counter(hw)).values())
    return {"cer": levenshtein(ref, hyp) / len(ref), "wer": levenshtein(rw, hw) / len(rw), "recall": found / len(rw)}


def make_inputs(folder: Path, level: str, pages: int) -> list[tuple[Path, str]]:
    """Single-image PDFs at 200 dpi, as a scanner would hand them over, with their ground truth."""
    out = []
    for k in range(pages):
        img, truth = make_page(1000 + k)
        path = folder / f"{level}-{k}.pdf"
        degrade(img, level, 1000 + k).save(path, "PDF", resolution=DPI)
        out.append((path, truth))
    return out


def ocr_all(paths: list[Path], opts: list[str] | None, folder: Path,
            cores: int) -> tuple[list[engine.OcrResult], float]:
    """One run_ocr over every path; the results and the wall seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [engine.OcrJob(p, folder / f"{p.stem}.ocr.pdf", p.stem) for p in paths]
    t = time.perf_counter()
    results = engine.run_ocr(jobs, cores=cores, options=opts)
    spent = time.perf_counter() - t
    bad = [r.error for r in results if not r.ok]
    if bad:
        raise SystemExit(f"OCR failed: {bad}")
    return results, spent


def quality(tmp: Path, pages: int, cores: int) -> list[dict]:
    rows = []
    for level in ("mild", "tilted", "heavy"):
        inputs = make_inputs(tmp, level, pages)
        for name, opts in OPTION_SETS.items():
            results, spent = ocr_all([p for p, _ in inputs], opts, tmp / f"q-{level}-{name[0]}", cores)
            sc = [scores(truth, r.text) for (_, truth), r in zip(inputs, results)]
            mean = {k: sum(x[k] for x in sc) / len(sc) for k in sc[0]}
            rows.append({"level": level, "set": name, "options": " ".join(opts or ["(per document)"]), **mean,
                         "deskewed": sum("--deskew" in r.options for r in results), "pages": len(inputs),
                         "s_per_page": spent / len(inputs)})
    return rows


def header_order(text: str, spec: dict) -> dict[str, int]:
    """Header lines found whole (one extracted line, exact), found at all (one line within 15 % edits), columns
    in order (found lines of a column in increasing line order), and scrambled lines (words of both columns)."""
    lines = [normal(x) for x in text.splitlines() if x.strip()][:20]
    left, right = header_columns(spec)
    only_l = {w for x in left for w in x.split()} - {w for x in right for w in x.split()}
    only_r = {w for x in right for w in x.split()} - {w for x in left for w in x.split()}
    whole = found = in_order = 0
    for column in (left, right):
        at = []
        for want in column:
            dist, k = min((levenshtein(want, got), k) for k, got in enumerate(lines)) if lines else (len(want), -1)
            whole += dist == 0
            if dist <= 0.15 * len(want):
                found += 1
                at.append(k)
        in_order += at == sorted(at)
    mixed = sum(bool(set(x.split()) & only_l) and bool(set(x.split()) & only_r) for x in lines)
    return {"lines": len(left) + len(right), "whole": whole, "found": found, "columns_in_order": in_order,
            "scrambled_lines": mixed}


def reading_order(tmp: Path, samples: int, cores: int) -> list[dict]:
    rows = []
    specs = [sample_spec(2000 + k) for k in range(samples)]
    for level in ("clean", "mild", "tilted", "heavy"):
        paths = []
        for k, spec in enumerate(specs):
            img = render_pages(spec, 1)[0]
            img = img if level == "clean" else degrade(img, level, 2000 + k)
            paths.append(tmp / f"ro-{level}-{k}.pdf")
            img.save(paths[-1], "PDF", resolution=DPI, quality=70 if level == "clean" else 95)
        for name, opts in OPTION_SETS.items():
            results, spent = ocr_all(paths, opts, tmp / f"ro-{level}-{name[0]}", cores)
            per = [header_order(r.text, spec) for r, spec in zip(results, specs)]
            total = {k: sum(x[k] for x in per) for k in per[0]}
            rows.append({"level": level, "set": name, "pages": len(paths), **total,
                         "signer_found": sum(normal(sp["signer"]) in normal(r.text) for r, sp in zip(results, specs)),
                         "s_per_page": spent / len(paths)})
    return rows


def plain_sequential(paths: list[Path], folder: Path, cores: int, omp: bool) -> float:
    """One ocrmypdf after another, each with --jobs = cores; tesseract's OpenMP threads on unless omp=False."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "OMP_THREAD_LIMIT"}
    if not omp:
        env["OMP_THREAD_LIMIT"] = "1"
    t = time.perf_counter()
    for p in paths:
        cmd = ["ocrmypdf", *engine.ocr_options(deskew=True), "--jobs", str(cores), str(p), str(folder / p.name)]
        subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t


def throughput(tmp: Path, docs: int, doc_pages: int, cores: int) -> list[dict]:
    """Sample-style documents, each with one defect level in turn (mild, tilted, heavy, mild, ...)."""
    paths = []
    for k in range(docs):
        level = ("mild", "tilted", "heavy")[k % 3]
        imgs = [degrade(im, level, 3000 + 10 * k + j) for j, im in enumerate(render_pages(sample_spec(3000 + k),
                                                                                            doc_pages))]
        paths.append(tmp / f"tp-{k}.pdf")
        imgs[0].save(paths[-1], "PDF", resolution=DPI, save_all=True, append_images=imgs[1:], quality=70)
    n, rows = docs * doc_pages, []
    in_bytes = sum(p.stat().st_size for p in paths)
    straight, crooked = engine.ocr_options(), engine.ocr_options(deskew=True)
    opt1 = [x for x in straight if x not in ("--optimize", "0")]
    for name, opts in (("run_ocr, chosen (--deskew where crooked)", None), ("run_ocr, never --deskew", straight),
                       ("run_ocr, always --deskew", crooked),
                       ("run_ocr, never --deskew, --optimize 1 (ocrmypdf's default)", opt1)):
        results, spent = ocr_all(paths, opts, tmp / f"tp-{len(rows)}", cores)
        out_bytes = sum(r.dest.stat().st_size for r in results)
        rows.append({"how": name, "s_per_page": spent / n, "kb_per_page": out_bytes / n / 1024})
    for name, omp in (("always --deskew, one document at a time, --jobs cores, OMP left to ocrmypdf", True),
                      ("always --deskew, one document at a time, --jobs cores, OMP_THREAD_LIMIT=1", False)):
        spent = plain_sequential(paths, tmp / f"tp-{len(rows)}", cores, omp)
        rows.append({"how": name, "s_per_page": spent / n, "kb_per_page": None})
    return [{**r, "docs": docs, "pages_per_doc": doc_pages, "input_kb_per_page": in_bytes / n / 1024} for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=4, help="generated pages per defect level (quality)")
    ap.add_argument("--samples", type=int, default=3, help="sample pages per level (reading order)")
    ap.add_argument("--docs", type=int, default=3, help="documents (throughput)")
    ap.add_argument("--doc-pages", type=int, default=3, help="pages per document (throughput)")
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--parts", default="quality,order,throughput", help="which parts to run, comma-separated")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--tables", type=Path, metavar="JSON", help="print the tables of an earlier --json run")
    args = ap.parse_args()
    if args.tables:
        return tables(json.loads(args.tables.read_text()))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        parts = set(args.parts.split(","))
        q = quality(Path(tmp), args.pages, args.cores) if "quality" in parts else []
        ro = reading_order(Path(tmp), args.samples, args.cores) if "order" in parts else []
        tp = throughput(Path(tmp), args.docs, args.doc_pages, args.cores) if "throughput" in parts else []
    out = {"tools": engine.ocr_tools(), "cores": args.cores, "pages_per_level": args.pages, "quality": q,
           "reading_order": ro, "throughput": tp, "seconds": time.perf_counter() - t0}
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        tables(out)


def tables(out: dict) -> None:
    q, ro, tp = out["quality"], out["reading_order"], out["throughput"]
    if q:
        quality_table(q)
    if ro:
        order_table(ro)
    if tp:
        throughput_table(tp)
    print(f"\n{out['seconds']:.0f} s in all")


def quality_table(q: list[dict]) -> None:
    print("| level | option set | CER | WER | word recall | deskewed | s/page |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")
    for r in q:
        print(f"| {r['level']} | {r['set']} | {r['cer']:.2%} | {r['wer']:.2%} | {r['recall']:.2%} "
              f"| {r['deskewed']}/{r['pages']} | {r['s_per_page']:.2f} |")


def order_table(ro: list[dict]) -> None:
    print("\n| level | option set | header lines whole | found | columns in order | scrambled lines | signer |"
          " s/page |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in ro:
        print(f"| {r['level']} | {r['set']} | {r['whole']}/{r['lines']} | {r['found']}/{r['lines']} "
              f"| {r['columns_in_order']}/{2 * r['pages']} | {r['scrambled_lines']} | {r['signer_found']}/{r['pages']} "
              f"| {r['s_per_page']:.2f} |")


def throughput_table(tp: list[dict]) -> None:
    r0 = tp[0]
    print(f"\n{r0['docs']} documents × {r0['pages_per_doc']} pages, input {r0['input_kb_per_page']:.0f} KB/page")
    print("\n| how | s/page | output KB/page |\n| --- | --- | --- |")
    for r in tp:
        kb = f"{r['kb_per_page']:.0f}" if r["kb_per_page"] else "–"
        print(f"| {r['how']} | {r['s_per_page']:.2f} | {kb} |")


if __name__ == "__main__":
    main()
