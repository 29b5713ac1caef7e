"""Folding for search: lower case, Vietnamese diacritics stripped, đ/Đ → d, one code point for one code point.

`fold(text)` has exactly the length of `unicodedata.normalize("NFC", text)`, so an offset found in the folded text
is an offset in the NFC original (snippets are cut from the original with it). A character whose folding would be
longer or shorter (e.g. 'ß' stays 'ß', a lone combining mark stays itself) is kept as one character.
"""

from __future__ import annotations

import re
import unicodedata

# Token characters, as the SQLite FTS5 unicode61 tokenizer sees them: letters, digits, combining marks.
TOKEN_RE = re.compile(r"(?:[^\W_]|[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f])+")


def _fold_char(c: str) -> str:
    if c in "đĐ":
        return "d"
    low = c.lower()
    bare = "".join(ch for ch in unicodedata.normalize("NFD", low) if not unicodedata.combining(ch))
    if len(bare) == 1:
        return bare
    if len(low) == 1:
        return low
    return c


class _Table(dict):
    """A str.translate table filled on first use of each code point (C-speed lookups after that)."""

    def __missing__(self, cp: int) -> int:
        folded = ord(_fold_char(chr(cp)))
        self[cp] = folded
        return folded


_TABLE = _Table({cp: ord(chr(cp).lower()) for cp in range(128)})


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def fold(text: str) -> str:
    """NFC, then per code point: lower case, no diacritics, đ → d. Same length as the NFC text."""
    return nfc(text).translate(_TABLE)


def exact(text: str) -> str:
    """The 'exact' form: NFC, lower case, diacritics kept (what a query typed with diacritics must match)."""
    return nfc(text).lower()


def has_diacritics(q: str) -> bool:
    """True when the text carries diacritics (or đ): it differs from its folding other than by case."""
    return fold(q) != exact(q)


def tokens(text: str) -> list[str]:
    """The words of a text (letters, digits, combining marks), as the FTS5 tokenizer splits it."""
    return TOKEN_RE.findall(text)
