"""The query language: words, "quoted phrases" and document notations (25-NQ/TU), all of which must match.

Nothing the user types reaches FTS5 MATCH or to_tsquery as syntax: the expression is built here from tokens
(letters and digits only), each quoted. Everything that is not a letter or a digit separates words, except
- / . between letters or digits inside one word, which make a notation: matched as a phrase of its parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from preserve.errors import UsageError
from preserve.search.fold import TOKEN_RE, exact, fold, nfc

_PHRASE_RE = re.compile(r'"([^"]*)"')
_CHUNK_RE = re.compile(TOKEN_RE.pattern + r"(?:[-/.]" + TOKEN_RE.pattern + r")*")


@dataclass(frozen=True)
class Term:
    """One thing that must match: a word (one part) or a phrase (parts that must be adjacent, in order)."""

    folded: tuple[str, ...]
    exact: tuple[str, ...]

    @property
    def accented(self) -> bool:
        return self.folded != self.exact

    @property
    def is_phrase(self) -> bool:
        return len(self.folded) > 1


@dataclass(frozen=True)
class Query:
    text: str
    terms: tuple[Term, ...]

    @property
    def accented(self) -> bool:
        """Typed with diacritics: matches with exactly those diacritics rank first."""
        return any(t.accented for t in self.terms)


def _term(span: str) -> Term | None:
    parts = TOKEN_RE.findall(span)
    if not parts:
        return None
    return Term(tuple(fold(p) for p in parts), tuple(exact(p) for p in parts))


def parse(text: str) -> Query:
    """Parse a query; raise UsageError if it has no letter or digit."""
    text = nfc(text or "")
    terms: list[Term] = []
    rest: list[str] = []
    pos = 0
    for m in _PHRASE_RE.finditer(text):
        rest.append(text[pos:m.start()])
        pos = m.end()
        if t := _term(m.group(1)):
            terms.append(t)
    rest.append(text[pos:])
    for piece in rest:
        for m in _CHUNK_RE.finditer(piece.replace('"', " ")):
            if t := _term(m.group(0)):
                terms.append(t)
    unique = tuple(dict.fromkeys(terms))
    if not unique:
        raise UsageError("Câu tìm kiếm trống / The search query is empty",
                         hint="Gõ ít nhất một từ, ví dụ: preserve search \"hai duong\" / "
                              "type at least one word, e.g. preserve search \"hai duong\"")
    return Query(text, unique)


def _fts_phrase(parts: tuple[str, ...]) -> str:
    return '"' + " ".join(p.replace('"', "") for p in parts) + '"'


def fts5_expr(terms: tuple[Term, ...], folded_cols: str, exact_cols: str | None = None) -> str:
    """An FTS5 MATCH expression: every term, in `folded_cols`; accented terms in `exact_cols` when given."""
    out = []
    for t in terms:
        if exact_cols and t.accented:
            out.append(f"{{{exact_cols}}} : {_fts_phrase(t.exact)}")
        else:
            out.append(f"{{{folded_cols}}} : {_fts_phrase(t.folded)}")
    return " AND ".join(out)


def _ts_phrase(parts: tuple[str, ...]) -> str:
    return "(" + " <-> ".join("'" + p.replace("'", "").replace("\\", "") + "'" for p in parts) + ")"


def tsquery(terms: tuple[Term, ...], exact_only: bool = False) -> str:
    """A to_tsquery('simple', …) string: all terms folded, or (exact_only) only the accented ones, exact."""
    if exact_only:
        return " & ".join(_ts_phrase(t.exact) for t in terms if t.accented)
    return " & ".join(_ts_phrase(t.folded) for t in terms)
