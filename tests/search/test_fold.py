"""Folding and query parsing: pure functions, no database."""

import unicodedata

import pytest

from preserve.errors import UsageError
from preserve.search import fold, has_diacritics, parse
from preserve.search.query import fts5_expr, tsquery

VOWELS = "aăâeêioôơuưy"
TONES = ["", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323"]  # huyền sắc ngã hỏi nặng


def vietnamese_letters() -> list[str]:
    letters = [unicodedata.normalize("NFC", unicodedata.normalize("NFD", v) + t) for v in VOWELS for t in TONES]
    letters += ["đ"] + list("bcdghklmnpqrstvx")
    return letters + [c.upper() for c in letters]


def test_fold_keeps_the_length_of_every_vietnamese_letter():
    letters = vietnamese_letters()
    assert len(letters) == 2 * (12 * 6 + 1 + 16)
    for c in letters:
        assert len(c) == 1, repr(c)  # every Vietnamese letter has one precomposed code point
        f = fold(c)
        assert len(f) == 1 and f.isascii() and f.islower(), (c, f)
    text = "".join(letters)
    assert len(fold(text)) == len(text)


def test_fold_strips_diacritics_and_dd():
    assert fold("Hải Dương") == "hai duong"
    assert fold("Đảng ủy") == "dang uy"
    assert fold("Đ") == fold("đ") == "d"
    assert fold("Nghị quyết 25-NQ/TU") == "nghi quyet 25-nq/tu"


def test_fold_length_equals_nfc_length_for_odd_characters():
    for s in ["İstanbul", "straße", "ﬁle", "x\u0301\u0302y", "\u0301alone", "ǅ", "Ω K Å", "Ha\u0309i Dương (NFD)"]:
        n = unicodedata.normalize("NFC", s)
        assert len(fold(s)) == len(n), s
    assert fold("İ") == "i"
    assert fold("ß") == "ß"
    assert fold("Ha\u0309i") == "hai"  # decomposed input is composed first


def test_has_diacritics_ignores_case():
    assert has_diacritics("Đảng") and has_diacritics("ủy") and has_diacritics("Đ")
    assert not has_diacritics("Hai Duong") and not has_diacritics("25-NQ/TU")


def test_notation_is_one_phrase_of_its_parts():
    q = parse("25-NQ/TU 123/QĐ-TU v.v")
    assert [t.folded for t in q.terms] == [("25", "nq", "tu"), ("123", "qd", "tu"), ("v", "v")]
    assert q.terms[1].accented and not q.terms[0].accented


def test_quoted_phrases_and_separators():
    q = parse('"xây dựng  Đảng", hải;dương')
    assert [t.folded for t in q.terms] == [("xay", "dung", "dang"), ("hai",), ("duong",)]
    assert [t.exact for t in q.terms][0] == ("xây", "dựng", "đảng")


@pytest.mark.parametrize("q", ['"', "AND OR", "*", "NEAR(", ":", "'; DROP TABLE search_doc; --", 'a"b"c"',
                               "^x", "{meta_x}: y", "col:word", "x -y", "a\\'b"])
def test_hostile_queries_make_only_quoted_tokens(q):
    try:
        parsed = parse(q)
    except UsageError:
        return
    expr = fts5_expr(parsed.terms, "meta_f text_f")
    for t in parsed.terms:
        for p in t.folded:
            assert p.isalnum()
    assert expr.count('"') % 2 == 0
    assert "'" not in "".join(p for t in parsed.terms for p in t.folded)
    assert tsquery(parsed.terms)


@pytest.mark.parametrize("q", ["", "   ", '"', '""', "*", ":", "-/.", "« »"])
def test_empty_query_is_a_usage_error(q):
    with pytest.raises(UsageError) as e:
        parse(q)
    assert "Câu tìm kiếm trống / The search query is empty" in str(e.value)
    assert e.value.hint


def test_scoring_fold_agrees_with_fold_on_vietnamese():
    from preserve.search.rank import ascii_fold

    text = "".join(vietnamese_letters()) + " Đảng ủy Hải Dương, 25-NQ/TU; Nghị quyết"
    assert ascii_fold(text) == fold(text)


def test_total_estimate():
    from preserve.search.rows import estimate

    assert estimate(1001, 999_000, 1_000_000) == 1_000_000  # matches in every id
    assert estimate(1001, 990_001, 1_000_000) == 100_000  # in one id of ten
    assert estimate(1001, 1, 1_000) == 1001  # never below what was counted
