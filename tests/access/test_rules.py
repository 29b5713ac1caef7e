"""Every cell of the rules table in docs/access.md, read from the document itself, against the real catalog."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from preserve.access import rules
from preserve.access.rules import Record, User

DOC = Path(__file__).resolve().parents[2] / "docs" / "access.md"


def table() -> dict[tuple[str, str], str]:
    """(record class, requester kind) -> expected outcome, from the markdown table of docs/access.md."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Record \\ requester"))
    columns = re.findall(r"`([^`]+)`", lines[start])
    cells = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        parts = [p.strip() for p in line.strip("|").split("|")]
        cls = re.match(r"`([^`]+)`", parts[0]).group(1)
        for col, cell in zip(columns, parts[1:]):
            cells[(cls, col)] = cell
    return cells


CELLS = table()
USERS = {"reader": "reader", "reader+grant": "granted", "reader+other-fonds": "other", "archivist": "archivist",
         "admin": "admin", "auditor": "auditor", "disabled": "disabled"}


def test_the_table_has_every_cell():
    classes = {c for c, _ in CELLS}
    assert classes == {"open", "conditional", "secret-mode", "secret-mat", "secret-toimat", "closed"}
    assert {k for _, k in CELLS} == set(USERS)
    assert len(CELLS) == 6 * 7
    assert all(v in ("approved", "pending") or v.startswith("E-ACC-") for v in CELLS.values())


@pytest.mark.parametrize("cls,kind", sorted(k for k in CELLS if k[0] != "closed"))
def test_request_cell(world, cls, kind):
    repo, docs, _, _ = world
    expected = CELLS[(cls, kind)]
    res = repo.access_requests().request(USERS[kind], f"kiểm thử ô {cls}/{kind}", doc=docs[cls])
    assert set(res) == {"id", "status", "reason"}
    if expected.startswith("E-ACC-"):
        assert res["status"] == "refused"
        assert res["reason"].startswith(expected + ": ")
        vi, en = res["reason"].removeprefix(expected + ": ").split(" / ", 1)
        assert vi and en and vi != en  # a message in each language
    else:
        assert res["status"] == expected, res["reason"]
    stored = repo.access_requests().get(res["id"])
    assert stored["status"] == res["status"] and stored["level"] == ("secret" if cls.startswith("secret") else cls)
    log = [e for e in repo.access_log(user=USERS[kind]) if e["request"] == res["id"]]
    assert len(log) == 1
    assert log[0]["type"] == ("access refusal" if res["status"] == "refused" else "access request")
    assert expected in log[0]["detail"]


@pytest.mark.parametrize("kind", sorted(USERS))
def test_closed_cell(kind):
    """Tuyệt mật records are refused at ingest (E-RULE-TUYET-MAT), so this row is tested on the rules alone."""
    expected = CELLS[("closed", kind)]
    grants = {"reader+grant": {"F"}, "disabled": {"F"}, "reader+other-fonds": {"KHAC"}}.get(kind, set())
    role = {"archivist": "archivist", "admin": "admin", "auditor": "auditor"}.get(kind, "reader")
    user = User(kind, role, disabled=kind == "disabled", grants=frozenset(grants))
    d = rules.decide_request(user, Record("document", "F.1.1.001", "F.1.1", "F", rules.CLOSED))
    assert d.status == "refused" and d.finding.code == expected


def test_a_reader_refused_a_secret_record_gets_a_clear_message_and_it_is_logged(world):
    repo, docs, _, fonds = world
    res = repo.access_requests().request("reader", "Nghiên cứu", doc=docs["secret-mat"])
    assert res["status"] == "refused"
    assert "E-ACC-SECRET-GRANT" in res["reason"]
    assert "chưa được cấp quyền khai thác tài liệu mật" in res["reason"]
    assert "has no grant for the secret records of fonds " + fonds in res["reason"]
    assert any(e["type"] == "access refusal" and e["request"] == res["id"] for e in repo.access_log("reader"))


@pytest.mark.parametrize("mode,secrecy,level", [
    ("01", None, "open"), ("02", None, "conditional"), ("03", None, "secret"), (None, None, "open"),
    ("01", "01", "secret"), ("01", "02", "secret"), ("01", "03", "closed"), ("99", None, "conditional")])
def test_document_level(mode, secrecy, level):
    assert rules.level_of(mode, secrecy) == level


def test_dossier_level_is_its_most_restrictive_part():
    assert rules.record_level("01", [("", ""), ("02", "")]) == "conditional"
    assert rules.record_level("01", [("", ""), ("", "02")]) == "secret"
    assert rules.record_level("03", [("01", "")]) == "secret"
    assert rules.record_level("", []) == "conditional"  # no mode: nothing opens by default
    assert rules.record_level("01", []) == "open"


def test_whole_dossier_request_takes_the_class_of_the_dossier(world):
    repo, _, dossiers, _ = world
    assert repo.access_requests().request("reader", "Nghiên cứu", dossier=dossiers["open"])["status"] == "approved"
    res = repo.access_requests().request("reader", "Nghiên cứu", dossier=dossiers["secret-toimat"])
    assert res["status"] == "refused" and "E-ACC-SECRET-GRANT" in res["reason"]


def test_a_top_secret_record_is_never_copied_and_says_so():
    user = User("doc", "reader", grants=frozenset({"F"}))
    d = rules.decide_request(user, Record("dossier", "F.1.1", "F.1.1", "F", rules.CLOSED))
    assert d.finding.code == "E-ACC-CLOSED"
    assert "không được cấp bản sao" in d.finding.message_vi and "no copy may be made" in d.finding.message_en
