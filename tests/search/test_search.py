"""Search rules, each on SQLite (FTS5, a file under tmp_path) and PostgreSQL (a schema of the test's own)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import text

from preserve.catalog.db import make_engine, write_session
from preserve.errors import UsageError
from preserve.search import SearchDoc, Visibility, ensure_schema, index_documents, remove_dossier, search
from preserve.search import index, rank

BASE = SearchDoc(doc_code="", file_code="TUHD.01.1", fonds_code="TUHD", aip_id="uuid-1", type_code="01",
                 issued_iso="1965-03-02", level="open", dossier_title="Tập nghị quyết của Tỉnh ủy năm 1965",
                 subject="", code_number=None, code_notation=None, signer=None, organ_name=None, keywords=None,
                 text=None)
_n = iter(range(1, 10_000))


def doc(**kw) -> SearchDoc:
    n = next(_n)
    kw.setdefault("doc_code", f"{kw.get('file_code', BASE.file_code)}.{n:03d}")
    kw.setdefault("subject", f"Tài liệu số {n}")
    return replace(BASE, **kw)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    url = "sqlite:///" + str(tmp_path / "catalog.sqlite") if request.param == "sqlite" \
        else request.getfixturevalue("pg_schema_url")
    eng = make_engine(url)
    ensure_schema(eng)
    ensure_schema(eng)  # idempotent
    yield eng
    eng.dispose()


def load(engine, *docs: SearchDoc) -> list[SearchDoc]:
    with write_session(engine) as s:
        index_documents(s, list(docs))
    return list(docs)


def codes(res: dict) -> list[str]:
    return [r["docCode"] for r in res["results"]]


def test_without_diacritics_finds_with_diacritics(engine):
    a, b, c = load(engine, doc(subject="Về công tác thủy lợi ở Hải Dương"),
                   doc(subject="Nghị quyết của Đảng ủy xã"), doc(subject="Về công tác tuyển quân"))
    assert codes(search(engine, "hai duong")) == [a.doc_code]
    assert codes(search(engine, "dang uy")) == [b.doc_code]
    assert codes(search(engine, "HẢI DƯƠNG")) == [a.doc_code]
    assert search(engine, "Hai Duong")["total"] == 1


def test_typed_diacritics_rank_exact_matches_first(engine):
    # the exact one is indexed in between, and has the weaker field (OCR text), so only exact-first puts it on top
    d1 = load(engine, doc(subject="Về dang dở công việc", keywords="dang"))[0]
    d2 = load(engine, doc(subject="Báo cáo", text="Sự lãnh đạo của Đảng bộ"))[0]
    d3 = load(engine, doc(subject="Dáng đi, dáng đứng", keywords="dáng"))[0]
    res = search(engine, "Đảng")
    assert res["total"] == 3
    assert codes(res)[0] == d2.doc_code
    assert set(codes(res)) == {d1.doc_code, d2.doc_code, d3.doc_code}
    assert res["results"][0]["score"] > res["results"][1]["score"]
    assert codes(search(engine, "dáng"))[0] == d3.doc_code
    # without diacritics every folded match counts the same way
    assert search(engine, "dang")["total"] == 3


def test_quoted_phrase_needs_adjacent_words(engine):
    near, apart = load(engine, doc(subject="Về công tác xây dựng Đảng ở nông thôn"),
                       doc(subject="Xây nhà, dựng trường, theo lời Đảng"))
    assert codes(search(engine, '"xay dung dang"')) == [near.doc_code]
    assert set(codes(search(engine, "xay dung dang"))) == {near.doc_code, apart.doc_code}
    assert codes(search(engine, '"dựng xây"')) == []


def test_notation_found_as_typed(engine):
    hit, other_organ, other_number, qd = load(
        engine, doc(code_number="25", code_notation="NQ/TU"), doc(code_number="25", code_notation="NQ/HU"),
        doc(code_number="26", code_notation="NQ/TU"), doc(code_number="123", code_notation="QĐ-TU"))
    res = search(engine, "25-NQ/TU")
    assert codes(res) == [hit.doc_code]
    assert res["results"][0]["notation"] == "25-NQ/TU"
    assert codes(search(engine, "25-nq/hu")) == [other_organ.doc_code]
    assert codes(search(engine, "123/QĐ-TU")) == [qd.doc_code]
    assert codes(search(engine, "123/QD-TU")) == [qd.doc_code]


def test_searched_fields(engine):
    docs = load(engine, doc(dossier_title="Hồ sơ về phong trào Gió Đại Phong"), doc(signer="Nguyễn Văn Thành"),
                doc(organ_name="Ban Tuyên giáo Tỉnh ủy"), doc(keywords="hợp tác xã; thủy lợi"),
                doc(text="Tại huyện Kinh Môn, các chi bộ đã triển khai kịp thời."))
    for q, d in zip(["gio dai phong", "nguyen van thanh", "ban tuyen giao", "hop tac xa", "kinh mon"], docs):
        assert codes(search(engine, q)) == [d.doc_code], q


def test_metadata_ranks_above_ocr_text(engine):
    in_text = load(engine, doc(subject="Báo cáo", text="Công tác chỉnh huấn được đẩy mạnh ở nhiều nơi."))[0]
    in_subject = load(engine, doc(subject="Về công tác chỉnh huấn", text="Nội dung khác hẳn."))[0]
    assert codes(search(engine, "chinh huan")) == [in_subject.doc_code, in_text.doc_code]


def test_words_side_by_side_rank_above_the_same_words_apart(engine):
    """Unquoted words still match apart, but "uy ban nhan dan" ranks "Ủy ban nhân dân" first."""
    apart = load(engine, doc(subject="Ban chỉ đạo của Tỉnh ủy về công tác dân vận", text="nhân dân các xã"))[0]
    together = load(engine, doc(subject="Báo cáo", text="Ủy ban nhân dân tỉnh Hải Dương báo cáo"))[0]
    newer_apart = load(engine, doc(subject="Ủy viên Ban thường vụ với nhân dân", text=""))[0]
    res = search(engine, "uy ban nhan dan")
    assert res["total"] == 3
    assert codes(res)[0] == together.doc_code, codes(res)
    assert set(codes(res)) == {apart.doc_code, together.doc_code, newer_apart.doc_code}


def test_fonds_and_type_filters(engine):
    a, b, c = load(engine, doc(subject="thủy lợi", fonds_code="TUHD", type_code="01"),
                   doc(subject="thủy lợi", fonds_code="TUHH", type_code="01", file_code="TUHH.01.1"),
                   doc(subject="thủy lợi", fonds_code="TUHD", type_code="09"))
    assert search(engine, "thuy loi")["total"] == 3
    assert set(codes(search(engine, "thuy loi", fonds="TUHD"))) == {a.doc_code, c.doc_code}
    assert codes(search(engine, "thuy loi", fonds="TUHH")) == [b.doc_code]
    assert set(codes(search(engine, "thuy loi", type_code="01"))) == {a.doc_code, b.doc_code}
    assert codes(search(engine, "thuy loi", fonds="TUHD", type_code="09")) == [c.doc_code]
    assert search(engine, "thuy loi", fonds="NOPE")["total"] == 0


def test_date_range_with_partial_dates(engine):
    year, month, day, none = load(engine, doc(subject="tuyển quân", issued_iso="1965"),
                                  doc(subject="tuyển quân", issued_iso="1966-05"),
                                  doc(subject="tuyển quân", issued_iso="1967-03-02"),
                                  doc(subject="tuyển quân", issued_iso=None))

    def found(**kw):
        return set(codes(search(engine, "tuyen quan", **kw)))

    assert found() == {year.doc_code, month.doc_code, day.doc_code, none.doc_code}
    assert found(date_from="1965-06", date_to="1965-07") == {year.doc_code}  # some day of 1965 is in range
    assert found(date_from="1965-12-31", date_to="1966-05-01") == {year.doc_code, month.doc_code}
    assert found(date_from="1966-06") == {day.doc_code}
    assert found(date_to="1966-04-30") == {year.doc_code}
    assert found(date_from="1966", date_to="1967") == {month.doc_code, day.doc_code}
    assert found(date_from="1967-03-02", date_to="1967-03-02") == {day.doc_code}
    assert found(date_from="1967-03-03") == set()
    assert found(date_from="1900", date_to="2100") == {year.doc_code, month.doc_code, day.doc_code}
    with pytest.raises(UsageError):
        search(engine, "tuyen quan", date_from="31/12/1965")


def test_limit_and_total(engine):
    load(engine, *[doc(subject=f"Về công tác cán bộ đợt {i}") for i in range(30)], doc(subject="khác"))
    res = search(engine, "can bo", limit=5)
    assert res["total"] == 30 and len(res["results"]) == 5
    assert len(search(engine, "can bo")["results"]) == 20
    assert search(engine, "can bo", limit=0) == {"results": [], "total": 30, "totalExact": True}
    scores = [r["score"] for r in search(engine, "can bo", limit=50)["results"]]
    assert len(scores) == 30 and scores == sorted(scores, reverse=True)


def test_huge_match_counts_rank_a_bounded_candidate_set(engine, monkeypatch):
    monkeypatch.setattr(rank, "CANDIDATES", 4)
    newest_first = [doc(subject=f"Về công tác Đảng {i}") for i in range(10)]
    load(engine, *newest_first, *[doc(subject=f"Về công tác dang dở {i}") for i in range(3)])
    res = search(engine, "cong tac", limit=6)
    assert res == {**res, "total": 13, "totalExact": True} and len(res["results"]) == 6
    res = search(engine, "Đảng", limit=6)
    assert res["total"] == 13 and len(res["results"]) == 6
    assert all("Đảng" in r["title"] for r in res["results"]), "exact tier first, read newest first"
    assert {r["docCode"] for r in res["results"]} == {d.doc_code for d in newest_first[-6:]}
    # beyond TOTAL_CAP the total is an estimate, unless asked for exactly
    monkeypatch.setattr(index, "TOTAL_CAP", 5)
    res = search(engine, "cong tac")
    assert res["totalExact"] is False and 6 <= res["total"] <= 40
    assert search(engine, "cong tac", exact_total=True)["total"] == 13
    assert search(engine, "dang do")["total"] == 3


def test_permissions(engine):
    docs = load(engine, doc(subject="kiểm tra", level="open"), doc(subject="kiểm tra", level="conditional"),
                doc(subject="kiểm tra", level="secret"), doc(subject="kiểm tra", level="closed"),
                doc(subject="kiểm tra", level="secret", fonds_code="TUHH", file_code="TUHH.01.1"),
                doc(subject="kiểm tra", level="open", fonds_code="TUHH", file_code="TUHH.01.1"))
    op, cond, sec, closed, sec_hh, op_hh = (d.doc_code for d in docs)

    def seen(v):
        res = search(engine, "kiem tra", visible=v)
        assert res["total"] == len(res["results"])
        return set(codes(res))

    assert seen(None) == {op, cond, sec, closed, sec_hh, op_hh}
    assert seen(Visibility(frozenset({"open"}))) == {op, op_hh}
    assert seen(Visibility(frozenset({"open", "conditional"}), frozenset(), None)) == {op, cond, op_hh}
    assert seen(Visibility(frozenset({"open", "conditional", "secret"}), frozenset({"TUHH"}), None)) \
        == {op, cond, op_hh, sec_hh}
    assert seen(Visibility(frozenset({"open", "conditional", "secret"}), None, None)) \
        == {op, cond, sec, sec_hh, op_hh}
    assert seen(Visibility(frozenset({"open", "secret"}), None, frozenset({"TUHD"}))) == {op, sec}
    assert seen(Visibility(frozenset({"open"}), None, frozenset())) == set()
    assert seen(Visibility(frozenset())) == set()
    assert seen(Visibility(frozenset(["open", "conditional", "secret", "closed"]))) == seen(None)


def test_snippet_marks_the_hit_in_the_original(engine):
    long = ("Thực hiện Nghị quyết của Trung ương, trong thời gian qua Tỉnh ủy đã tập trung lãnh đạo công tác "
            "thủy lợi. " * 3 + "Tại huyện Kinh Môn và thành phố Hải Dương, các chi bộ đã triển khai kịp thời. "
            + "Các cấp ủy đảng từ tỉnh đến cơ sở đã quán triệt sâu sắc chủ trương của Đảng. " * 3)
    load(engine, doc(subject="Về công tác thủy lợi", text=long), doc(subject="Báo cáo của Tỉnh ủy Hải Dương"))
    res = search(engine, "hai duong")
    by_text = next(r for r in res["results"] if r["title"] == "Về công tác thủy lợi")
    snip = by_text["snippet"]
    assert "«Hải Dương»" in snip and snip.startswith("…") and snip.endswith("…")
    assert 100 <= len(snip) <= 200
    by_subject = next(r for r in res["results"] if r["title"] != "Về công tác thủy lợi")
    assert by_subject["snippet"] == "Báo cáo của Tỉnh ủy «Hải Dương»"
    load(engine, doc(subject="Nghị quyết", code_number="25", code_notation="NQ/TU"))
    assert search(engine, "25-nq/tu")["results"][0]["snippet"] == "«25-NQ/TU»"  # the field that holds the hit
    assert search(engine, "nghi quyet 25-nq/tu")["results"][0]["snippet"] == "«Nghị quyết»"


def test_result_shape(engine):
    d = load(engine, doc(subject="", dossier_title="Hồ sơ công tác thanh niên", code_number="5",
                         code_notation="CT/TU", issued_iso="1966"))[0]
    r = search(engine, "thanh nien")["results"][0]
    assert r == {"docCode": d.doc_code, "fileCode": d.file_code, "title": "Hồ sơ công tác thanh niên",
                 "snippet": "Hồ sơ công tác «thanh niên»", "score": r["score"], "aipId": "uuid-1",
                 "notation": "5-CT/TU", "issued": "1966", "fonds": "TUHD"}
    assert isinstance(r["score"], float) and r["score"] > 0


@pytest.mark.parametrize("q", ['"', "AND OR", "*", "NEAR(", ":", "'; DROP TABLE search_doc; --", 'Đảng"', "^a",
                               "{meta_x} : dang", "dang*", "(", "a OR b NOT c", "\\", "NEAR(dang uy, 2)", "-dang",
                               "meta_f:dang", "' OR 1=1 --", "%", "_"])
def test_hostile_queries_never_break_the_sql(engine, q):
    load(engine, doc(subject="Nghị quyết của Đảng ủy"))
    try:
        res = search(engine, q)
    except UsageError as e:
        assert "The search query is empty" in str(e)
        return
    assert res["total"] == len(res["results"]) <= 1
    assert search(engine, "dang uy")["total"] == 1, "the index still answers after the hostile query"
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM search_doc")).scalar_one() == 1


def test_remove_dossier_and_reindex(engine):
    a = load(engine, doc(subject="công tác phụ nữ", file_code="TUHD.01.7"),
             doc(subject="công tác phụ nữ", file_code="TUHD.01.7"))
    keep = load(engine, doc(subject="công tác phụ nữ", file_code="TUHD.01.8"))[0]
    assert search(engine, "phu nu")["total"] == 3
    with write_session(engine) as s:
        remove_dossier(s, "TUHD.01.7")
    assert codes(search(engine, "phu nu")) == [keep.doc_code]
    # the FTS index forgot them too: the words of the removed rows match nothing
    load(engine, replace(a[0], subject="công tác thanh niên", aip_id="uuid-2"))  # the dossier's new version
    assert codes(search(engine, "phu nu")) == [keep.doc_code]
    assert codes(search(engine, "thanh nien")) == [a[0].doc_code]
    load(engine, replace(keep, subject="x"), replace(keep, subject="công tác tuyển quân"))  # replaced, not doubled
    assert search(engine, "phu nu")["total"] == 0
    assert codes(search(engine, "tuyen quan")) == [keep.doc_code]
    if engine.dialect.name == "sqlite":  # both contentless FTS tables forgot the old words
        with engine.connect() as c:
            for table in ("search_fts", "search_meta"):
                assert c.execute(text(f"SELECT count(*) FROM {table} WHERE {table} MATCH 'nu'")).scalar_one() == 0
                assert c.execute(text(f"SELECT count(*) FROM {table} WHERE {table} MATCH 'quan'")).scalar_one() == 1


def test_indexing_joins_the_callers_transaction(engine):
    with pytest.raises(RuntimeError):
        with write_session(engine) as s:
            index_documents(s, [doc(subject="công tác chỉnh huấn")])
            raise RuntimeError("rolled back by the caller")
    assert search(engine, "chinh huan")["total"] == 0
    with engine.begin() as conn:  # a plain Connection works as well as a Session
        index_documents(conn, [doc(subject="công tác chỉnh huấn")])
    assert search(engine, "chinh huan")["total"] == 1
