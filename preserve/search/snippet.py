"""Snippets: about 160 characters of the NFC original around the first hit, hits marked « », '…' at cut ends.

Hits are found in the folded text; fold() keeps lengths, so the same offsets cut the original.
"""

from __future__ import annotations

import re

from preserve.search.fold import fold, nfc
from preserve.search.query import Query

WIDTH = 160


def _pattern(q: Query) -> re.Pattern[str]:
    """Any term, longest first, as whole words of the folded text (phrase parts apart by non-word characters)."""
    alts = sorted((r"[\W_]+".join(re.escape(p) for p in t.folded) for t in q.terms), key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(alts) + r")\b")


def snippet(fields: list[str | None], q: Query, width: int = WIDTH) -> str:
    """From the first field that holds a hit (OCR text first), else the first non-empty field."""
    pat = _pattern(q)
    for f in fields:
        if not f:
            continue
        original = nfc(f)
        m = pat.search(fold(original))
        if m:
            return _cut(original, pat, m.start(), m.end(), width)
    for f in fields[1:]:
        if f:
            return _cut(nfc(f), pat, 0, 0, width)
    return ""


def _cut(original: str, pat: re.Pattern[str], start: int, end: int, width: int) -> str:
    lo = max(0, start - (width - (end - start)) // 3)
    hi = min(len(original), lo + width)
    lo = max(0, min(lo, hi - width))
    # move the cuts to word boundaries
    if lo > 0:
        sp = original.rfind(" ", max(0, lo - 20), lo + 1)
        lo = sp + 1 if sp >= 0 else lo
    if hi < len(original):
        sp = original.find(" ", hi - 20 if hi - 20 > end else end, hi + 1)
        hi = sp if sp >= 0 else hi
    window = original[lo:hi]
    folded = fold(window)
    spans: list[list[int]] = []
    for m in pat.finditer(folded):
        if spans and not window[spans[-1][1]:m.start()].strip():
            spans[-1][1] = m.end()  # hits one space apart are marked as one: «Hải Dương»
        else:
            spans.append([m.start(), m.end()])
    out, pos = [], 0
    for a, b in spans:
        out.append(window[pos:a])
        out.append("«" + window[a:b] + "»")
        pos = b
    out.append(window[pos:])
    text = " ".join("".join(out).split())
    return ("…" if lo > 0 else "") + text + ("…" if hi < len(original) else "")
