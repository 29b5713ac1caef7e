"""Ranking, the same on both engines: strict tiers, then a field-weighted score inside a tier.

Tiers, best first (the exact ones only when the query was typed with diacritics; the side-by-side ones only
for several words):
  1. the words side by side, in order, in the metadata, accented terms with exactly their diacritics
  2. the words side by side somewhere (metadata or OCR text), exact
  3. every term in the metadata, exact      4. every term somewhere, exact
  5.–8. the same four, folded
Each tier asks the engine for its newest matches only (ORDER BY rowid DESC LIMIT seen + CANDIDATES), so no query
ever touches all the matches of a common word; inside a tier the candidates are scored here, in Python, from
the fields they were found in (subject and notation count most, OCR text least), with a bonus when the
words of a several-word query stand side by side in order. A lower tier is read only
when the higher ones hold fewer than `limit` documents (they were then read completely).
Score = tier + s/(1+s): in [0, 1) for tier 4, [1, 2) for tier 3, …; higher is better.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from preserve.search.fold import fold
from preserve.search.query import Query, Term

CANDIDATES = 200
FIELD_WEIGHTS = {"subject": 3.0, "notation": 3.0, "signer": 2.0, "keywords": 2.0, "organ_name": 1.5,
                 "dossier_title": 1.5}
TEXT_WEIGHT = 0.25  # per occurrence in the OCR text, at most TEXT_MAX occurrences a term
TEXT_MAX = 4

TEXT_SCAN = 4000  # characters of OCR text read to score a candidate (OCR texts can be tens of KB)
PHRASE_BONUS = 2.0  # the words of a several-word query found next to each other, in order ("uy ban nhan dan")


@dataclass(frozen=True)
class Tier:
    exact: bool
    meta_only: bool
    phrase: bool = False  # the query's words side by side, in order (several-word queries only)


class Backend(Protocol):
    def candidates(self, conn: Any, q: Query, tier: Tier, f: Any, n: int) -> list[int]: ...
    def rows(self, conn: Any, ids: list[int], body: int) -> dict[int, dict[str, Any]]: ...


def term_patterns(q: Query) -> list[tuple[str, re.Pattern[str]]]:
    """A term's longest part (a cheap substring test first) and its regex over folded text: the parts as whole
    words, separated by non-word characters."""
    return [(max(t.folded, key=len), re.compile(r"\b" + r"[\W_]+".join(re.escape(p) for p in t.folded) + r"\b"))
            for t in q.terms]


def phrase_pattern(q: Query) -> re.Pattern[str] | None:
    """The whole query as one phrase over folded text, when it has several words: documents holding the words
    side by side, in order, rank above those holding them apart."""
    parts = [p for t in q.terms for p in t.folded]
    if len(parts) < 2:
        return None
    return re.compile(r"\b" + r"[\W_]+".join(re.escape(p) for p in parts) + r"\b")


def ascii_fold(text: str) -> str:
    """A faster folding for scoring only (lengths not kept; other scripts dropped): enough when every query word
    is ASCII, as folded Vietnamese words are."""
    return unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "d")).encode(
        "ascii", "ignore").decode("ascii").lower()


def field_score(row: dict[str, Any], pats: list[tuple[str, re.Pattern[str]]], with_text: bool,
                folder: Callable[[str], str] = fold, phrase: re.Pattern[str] | None = None) -> float:
    keys = [k for k in FIELD_WEIGHTS if row.get(k)]
    folded = folder("\x1f".join(row[k] for k in keys)).split("\x1f")  # one call a row
    body = folder(row["body"]) if with_text and row.get("body") else ""
    s = 0.0
    if phrase is not None:
        if any(phrase.search(v) for v in folded):
            s += PHRASE_BONUS * max(FIELD_WEIGHTS.values())
        elif body and phrase.search(body):
            s += PHRASE_BONUS
    for part, p in pats:
        for k, v in zip(keys, folded):
            if part in v and p.search(v):
                s += FIELD_WEIGHTS[k]
        if body and part in body:
            n = 0
            for _ in p.finditer(body):
                n += 1
                if n >= TEXT_MAX:
                    break
            s += TEXT_WEIGHT * n
    return s


def tiers(q: Query) -> list[Tier]:
    """Exact diacritics first (when typed); within each, the words side by side before the words apart (when
    there are several); within each, metadata before anywhere."""
    phrases = [True, False] if len(q.terms) > 1 else [False]
    kinds = [True, False] if q.accented else [False]
    return [Tier(exact, meta, phrase) for exact in kinds for phrase in phrases for meta in (True, False)]


def as_phrase(q: Query) -> Query:
    """The query's words as one phrase (adjacent, in order)."""
    return Query(q.text, (Term(tuple(p for t in q.terms for p in t.folded), tuple(p for t in q.terms for p in t.exact)),))


def rank(backend: Backend, conn: Any, q: Query, f: Any, limit: int) -> list[tuple[int, float]]:
    """The ids of the best `limit` documents with their scores, best first."""
    pats = term_patterns(q)
    phrase = phrase_pattern(q)
    phrased = as_phrase(q) if len(q.terms) > 1 else q
    folder = ascii_fold if all(p.isascii() for t in q.terms for p in t.folded) else fold
    order = tiers(q)
    seen: set[int] = set()
    out: list[tuple[int, float]] = []
    for n, tier in enumerate(order):
        need = limit - len(out)
        if need <= 0:
            break
        asked = phrased if tier.phrase else q
        new = [i for i in backend.candidates(conn, asked, tier, f, len(seen) + CANDIDATES) if i not in seen]
        if not new:
            continue
        rows = backend.rows(conn, new, body=0 if tier.meta_only else TEXT_SCAN)
        scored = sorted(((field_score(rows[i], pats, not tier.meta_only, folder, phrase), i) for i in new if i in rows),
                        key=lambda si: (-si[0], -si[1]))
        base = float(len(order) - 1 - n)
        out += [(i, base + s / (1.0 + s)) for s, i in scored[:need]]
        seen.update(new)
    return out
