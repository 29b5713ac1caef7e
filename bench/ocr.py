"""OCR quality of ocrmypdf + tesseract (vie) on generated scanned-looking pages with known text.

For each defect level (mild, heavy) and each candidate option set, the pages are OCRed one PDF each, the text
layer is extracted with `pdftotext -enc UTF-8`, and compared with the ground truth on NFC text with whitespace
collapsed: character error rate, word error rate, word recall ignoring order, and wall seconds per page.
Usage: .venv/bin/python bench/ocr.py [--pages N] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from preserve.ocr.degrade import DPI, degrade, make_page  # noqa: E402

BASE = ["-l", "vie", "--output-type", "pdfa-2", "--jobs", "2"]
OPTION_SETS = {
    "a defaults": [],
    "b --deskew": ["--deskew"],
    "c --deskew --clean": ["--deskew", "--clean"],
    "d --deskew --psm 4": ["--deskew", "--tesseract-pagesegmode", "4"],
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


def run_set(inputs: list[tuple[Path, str]], opts: list[str], folder: Path) -> dict[str, float]:
    """OCR every input with one option set; mean scores and wall seconds per page."""
    rows, spent = [], 0.0
    for path, truth in inputs:
        dst = folder / f"{path.stem}.ocr.pdf"
        t = time.perf_counter()
        subprocess.run(["ocrmypdf", *BASE, *opts, str(path), str(dst)], check=True, capture_output=True)
        spent += time.perf_counter() - t
        text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(dst), "-"], check=True, capture_output=True,
                              text=True).stdout
        rows.append(scores(truth, text))
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    return {**mean, "s_per_page": spent / len(inputs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=6, help="pages per level")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sets = {k: v for k, v in OPTION_SETS.items() if "--clean" not in v or shutil.which("unpaper")}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for level in ("mild", "heavy"):
            inputs = make_inputs(Path(tmp), level, args.pages)
            for name, opts in sets.items():
                r = run_set(inputs, opts, Path(tmp))
                results.append({"level": level, "options": " ".join(BASE + opts), "set": name, **r})
    if args.json:
        print(json.dumps({"pages_per_level": args.pages, "results": results}, ensure_ascii=False, indent=2))
        return
    print("| level | option set | CER | WER | word recall | s/page |\n| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['level']} | {r['set']} | {r['cer']:.2%} | {r['wer']:.2%} | {r['recall']:.2%} "
              f"| {r['s_per_page']:.2f} |")


if __name__ == "__main__":
    main()
