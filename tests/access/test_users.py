"""User accounts: argon2id hashes, sign-in, validation of names, roles and passwords, grants, and their events."""

from __future__ import annotations

import pytest
from sqlmodel import select

from preserve.catalog.db import read_session
from preserve.catalog.models import UserAccount
from preserve.errors import UsageError


def _hash(repo, name):
    with read_session(repo.catalog.engine) as s:
        return s.exec(select(UserAccount.password_hash).where(UserAccount.name == name)).first()


def test_passwords_are_argon2id_hashes_and_authenticate(repo):
    users = repo.users()
    users.add("nguyenvana", "reader", full_name="Nguyễn Văn A", password="mot hai ba bon nam")
    stored = _hash(repo, "nguyenvana")
    assert stored.startswith("$argon2id$") and "mot hai ba" not in stored
    assert users.authenticate("nguyenvana", "mot hai ba bon nam").full_name == "Nguyễn Văn A"
    assert users.authenticate("nguyenvana", "mot hai ba bon sau") is None
    assert users.authenticate("khongco", "mot hai ba bon nam") is None
    users.set_password("nguyenvana", "mat khau moi rat dai")
    assert _hash(repo, "nguyenvana") != stored
    assert users.authenticate("nguyenvana", "mot hai ba bon nam") is None
    assert users.authenticate("nguyenvana", "mat khau moi rat dai") is not None
    users.set_disabled("nguyenvana", True)
    assert users.authenticate("nguyenvana", "mat khau moi rat dai") is None
    users.set_disabled("nguyenvana", False)
    assert users.authenticate("nguyenvana", "mat khau moi rat dai") is not None


def test_an_account_without_a_password_cannot_sign_in(repo):
    u = repo.users().add("lt1", "archivist")
    assert u["can_sign_in"] is False
    assert repo.users().authenticate("lt1", "") is None


@pytest.mark.parametrize("name,role,password,match", [
    ("Nguyen Van A", "reader", None, "not a valid user name"),
    ("nguyễn", "reader", None, "not a valid user name"),
    ("a", "reader", None, "not a valid user name"),
    ("nguyenvana", "boss", None, "Unknown role"),
    ("nguyenvana", "reader", "ngan", "too short"),
])
def test_bad_accounts_are_refused_and_nothing_is_written(repo, name, role, password, match):
    with pytest.raises(UsageError, match=match):
        repo.users().add(name, role, password=password)
    assert repo.users().list() == []
    assert repo.access_log() == []


def test_a_user_is_added_once(repo):
    repo.users().add("doc1", "reader")
    with pytest.raises(UsageError, match="already exists"):
        repo.users().add("doc1", "archivist")
    assert repo.users().show("doc1")["role"] == "reader"


def test_grants_and_revokes_are_logged_with_who_made_them(repo):
    users = repo.users(actor="quantri")
    users.add("doc1", "reader", fonds=["TU-HD"])
    assert users.grant("doc1", ["HU-HD", "TU-HD"])["fonds"] == ["HU-HD", "TU-HD"]
    assert users.grant("doc1", ["TU-HD"], revoke=True)["fonds"] == ["HU-HD"]
    log = repo.access_log(user="doc1")
    assert [e["type"] for e in log] == ["user administration"] * 3
    assert "granted fonds HU-HD" in log[1]["detail"] and "revoked fonds TU-HD" in log[2]["detail"]
    assert all(["agent-user-quantri", "implementer"] in e["agents"] for e in log)
    with pytest.raises(UsageError, match="No fonds"):
        users.grant("doc1", [" "])
    with pytest.raises(UsageError, match="No user"):
        users.grant("khongco", ["TU-HD"])


def test_changes_from_the_terminal_name_the_officer(repo):
    repo.users().add("doc1", "reader")
    (event,) = repo.access_log(user="doc1")
    assert event["agents"][0] == [f"agent-officer-{repo.settings.officer}", "implementer"]


def test_role_change_and_unknown_role(repo):
    repo.users().add("doc1", "reader")
    assert repo.users().set_role("doc1", "archivist")["role"] == "archivist"
    with pytest.raises(UsageError, match="Unknown role"):
        repo.users().set_role("doc1", "root")
