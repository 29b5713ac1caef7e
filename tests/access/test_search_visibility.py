"""`preserve search --user NAME` leaves out the records that user may not see under the access rules: open and
conditional records for every active user (within their granted fonds, if any), secret records only with a
grant for the fonds, everything for an administrator, nothing for a disabled account."""

from __future__ import annotations

import pytest

SEES = {  # user -> the classes (tests/access/conftest.py) whose documents appear in their results
    "reader": {"open", "conditional"},
    "archivist": {"open", "conditional"},
    "auditor": {"open", "conditional"},
    "granted": {"open", "conditional", "secret-mode", "secret-mat", "secret-toimat"},
    "admin": {"open", "conditional", "secret-mode", "secret-mat", "secret-toimat"},
    "other": set(),      # granted another fonds only: nothing of this one
    "disabled": set(),
}


@pytest.mark.parametrize("user", sorted(SEES))
def test_results_follow_the_access_rules(world, user):
    repo, docs, _dossiers, _fonds = world
    for klass, doc in docs.items():
        subject = next(d["subject"] for a in repo.list_aips()
                       for d in repo.show_aip(a["id"])["documents"] if d["docCode"] == doc)
        anyone = repo.search(f'"{subject}"', limit=100)
        assert doc in {r["docCode"] for r in anyone["results"]}, "without --user every record is found"
        mine = repo.search(f'"{subject}"', user=user, limit=100)
        found = {r["docCode"] for r in mine["results"]}
        assert (doc in found) == (klass in SEES[user]), (user, klass)
        assert mine["total"] == len(found) <= anyone["total"]


def test_an_unknown_user_is_a_usage_error(world):
    from preserve.errors import UsageError

    repo = world[0]
    with pytest.raises(UsageError, match="nobody"):
        repo.search("dang", user="nobody")
