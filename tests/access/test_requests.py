"""Deciding requests: who may approve or deny, reasons, four eyes, expiry, and the events each step leaves."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from preserve.access.requests import AccessRefused
from preserve.errors import UsageError


def _pending(repo, docs, user="reader", cls="conditional"):
    res = repo.access_requests().request(user, "Viết lịch sử Đảng bộ huyện", doc=docs[cls])
    assert res["status"] == "pending"
    return res["id"]


def test_an_archivist_approves_with_a_reason_kept(world):
    repo, docs, _, _ = world
    rid = _pending(repo, docs)
    got = repo.access_requests().approve(rid, "archivist", "Đã xác minh mục đích nghiên cứu")
    assert got["status"] == "approved" and got["decidedBy"] == "archivist"
    assert got["decisionReason"] == "Đã xác minh mục đích nghiên cứu" == got["reason"]
    assert datetime.fromisoformat(got["expires"]) - datetime.fromisoformat(got["decidedAt"]) == timedelta(days=30)
    ev = [e for e in repo.access_log() if e["request"] == rid]
    assert [e["type"] for e in ev] == ["access request", "access approval"]
    assert set(ev[1]["users"]) == {"archivist", "reader"}
    assert ["agent-user-archivist", "authorizer"] in ev[1]["agents"]


def test_a_denial_keeps_its_reason_and_cannot_be_approved_after(world):
    repo, docs, _, _ = world
    rid = _pending(repo, docs)
    got = repo.access_requests().deny(rid, "admin", "Mục đích không phù hợp")
    assert got["status"] == "denied" and got["reason"] == "Mục đích không phù hợp"
    with pytest.raises(AccessRefused) as e:
        repo.access_requests().approve(rid, "archivist", "thử lại")
    assert e.value.finding.code == "E-ACC-NOT-PENDING" and e.value.exit_code == 1
    assert repo.access_requests().get(rid)["status"] == "denied"


@pytest.mark.parametrize("by,code", [("reader", "E-ACC-ROLE"), ("auditor", "E-ACC-ROLE"),
                                     ("granted", "E-ACC-ROLE")])
def test_only_archivists_and_admins_decide(world, by, code):
    repo, docs, _, _ = world
    rid = _pending(repo, docs, user="archivist2")
    with pytest.raises(AccessRefused) as e:
        repo.access_requests().approve(rid, by, "tôi duyệt")
    assert e.value.finding.code == code
    assert repo.access_requests().get(rid)["status"] == "pending"
    refusals = [x for x in repo.access_log(user=by) if x["request"] == rid]
    assert refusals and refusals[-1]["type"] == "access refusal" and code in refusals[-1]["detail"]


def test_nobody_approves_their_own_request(world):
    repo, docs, _, _ = world
    rid = _pending(repo, docs, user="archivist")
    with pytest.raises(AccessRefused) as e:
        repo.access_requests().approve(rid, "archivist", "tự duyệt")
    assert e.value.finding.code == "E-ACC-SELF-APPROVAL"
    assert "không được tự duyệt" in e.value.finding.message_vi
    assert repo.access_requests().approve(rid, "archivist2", "duyệt chéo")["status"] == "approved"


def test_a_conditional_record_is_approved_only_with_a_reason(world):
    repo, docs, _, _ = world
    rid = _pending(repo, docs)
    with pytest.raises(UsageError, match="reason is required"):
        repo.access_requests().approve(rid, "archivist", "  ")
    assert repo.access_requests().get(rid)["status"] == "pending"
    denied = repo.access_requests().deny(rid, "archivist", None)  # a denial without a reason still says so
    assert denied["status"] == "denied" and "no reason given" in denied["reason"]


def test_names_are_case_insensitive(world):
    repo, docs, _, _ = world
    res = repo.access_requests().request("Reader", "Tra cứu", doc=docs["open"])
    assert res["status"] == "approved" and repo.access_requests().get(res["id"])["user"] == "reader"
    assert res["id"] in {e["request"] for e in repo.access_log(user="READER")}


def test_a_secret_request_is_approved_only_while_the_grant_holds(world):
    repo, docs, _, fonds = world
    rid = _pending(repo, docs, user="granted", cls="secret-mode")
    repo.users().grant("granted", [fonds], revoke=True)
    try:
        with pytest.raises(AccessRefused) as e:
            repo.access_requests().approve(rid, "archivist", "đã xem xét")
        assert e.value.finding.code == "E-ACC-SECRET-GRANT"
    finally:
        repo.users().grant("granted", [fonds])
    assert repo.access_requests().approve(rid, "archivist", "đã xem xét")["status"] == "approved"


def test_an_archivist_limited_to_other_fonds_cannot_decide(world):
    repo, docs, _, _ = world
    repo.users().add("lt-khac", "archivist", fonds=["KHAC"])
    rid = _pending(repo, docs)
    with pytest.raises(AccessRefused) as e:
        repo.access_requests().approve(rid, "lt-khac", "ok")
    assert e.value.finding.code == "E-ACC-FONDS-SCOPE"


def test_requests_expire(world):
    repo, docs, _, _ = world
    reqs = repo.access_requests()
    res = reqs.request("reader", "Tra cứu", doc=docs["conditional"], days=2)
    later = (datetime.fromisoformat(repo.now()) + timedelta(days=2, seconds=1)).isoformat(timespec="seconds")
    reqs.now = lambda: later
    assert reqs.get(res["id"])["status"] == "expired"
    with pytest.raises(AccessRefused) as e:
        reqs.approve(res["id"], "archivist", "muộn")
    assert e.value.finding.code == "E-ACC-EXPIRED"
    assert repo.access_requests().get(res["id"])["status"] == "pending"  # still pending by today's clock
    assert [q["id"] for q in reqs.list(status="expired")].count(res["id"]) == 1


@pytest.mark.parametrize("days", [0, -1, 366])
def test_days_out_of_range_is_a_usage_error(world, days):
    repo, docs, _, _ = world
    with pytest.raises(UsageError, match="--days"):
        repo.access_requests().request("reader", "Tra cứu", doc=docs["open"], days=days)


@pytest.mark.parametrize("kwargs,match", [
    ({"doc": "KHONG-CO.1.1.001"}, "No document"), ({"dossier": "KHONG-CO.1.1"}, "No dossier"),
    ({}, "exactly one"), ({"doc": "a", "dossier": "b"}, "exactly one")])
def test_unknown_or_ambiguous_targets(world, kwargs, match):
    repo, _, _, _ = world
    with pytest.raises(UsageError, match=match):
        repo.access_requests().request("reader", "Tra cứu", **kwargs)


def test_unknown_user_and_missing_purpose(world):
    repo, docs, _, _ = world
    with pytest.raises(UsageError, match="No user named 'nobody'"):
        repo.access_requests().request("nobody", "Tra cứu", doc=docs["open"])
    with pytest.raises(UsageError, match="purpose"):
        repo.access_requests().request("reader", " ", doc=docs["open"])
    with pytest.raises(UsageError, match="Unknown status"):
        repo.access_requests().list(status="done")
    with pytest.raises(UsageError, match="No request"):
        repo.access_requests().approve("YC-00000000-000000", "archivist", "x")


def test_the_access_log_filters_by_user_and_date(world):
    repo, docs, _, _ = world
    rid = repo.access_requests().request("granted", "Tra cứu", doc=docs["open"])["id"]
    mine = repo.access_log(user="granted")
    assert rid in {e["request"] for e in mine} and all("granted" in e["users"] for e in mine)
    assert rid not in {e["request"] for e in repo.access_log(user="reader")}
    later = (datetime.fromisoformat(repo.now()) + timedelta(days=10)).strftime("%d/%m/%Y")  # after every event
    assert repo.access_log(since=later) == []
    assert rid in {e["request"] for e in repo.access_log(since=repo.now()[:10])}
    with pytest.raises(UsageError, match="not a date"):
        repo.access_log(since="hôm qua")


def test_access_events_are_in_the_verified_chain(world):
    repo, docs, _, _ = world
    repo.access_requests().deny(_pending(repo, docs), "archivist", "không phù hợp")
    repo.access_requests().approve(_pending(repo, docs), "archivist", "phù hợp")
    repo.access_requests().request("auditor", "Tra cứu", doc=docs["open"])
    kinds = {e["type"] for e in repo.access_log()}
    assert {"user administration", "access request", "access refusal", "access approval", "access denial"} <= kinds
    assert repo.catalog.verify_chain() == []
