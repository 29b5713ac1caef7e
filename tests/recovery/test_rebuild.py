"""preserve catalog rebuild: a lost catalog rebuilt from the AIPs on a tier (and the event log's backup), then
compared with the original."""

from __future__ import annotations

import json
import shutil

import pytest

from preserve.errors import UsageError
from preserve.repository import Repository


def lose_catalog(repo, tmp_path) -> tuple[Repository, str]:
    """Keep a copy of the catalog to compare with, delete it, reopen: (the reopened repository, the copy's URL)."""
    keep = tmp_path / "original.sqlite"
    root = repo.root
    repo.close()  # SQLite writes its log back into the file when the last connection closes
    shutil.copy(root / "catalog.sqlite", keep)
    for p in root.glob("catalog.sqlite*"):
        p.unlink()
    return Repository.open(root), f"sqlite:///{keep}"


def test_rebuilt_from_a_local_tier_equals_the_original_but_for_events_only_it_held(repo, batch, tmp_path):
    repo.ingest(batch)
    repo.users().add("doc1", "reader")
    repo, original = lose_catalog(repo, tmp_path)
    try:
        res = repo.rebuild_catalog("secondary")
        d = res.to_dict()
        assert d["registered"] == 2 and d["replicas"] == {"primary": 2, "secondary": 2}
        assert [f["code"] for f in d["problems"]] == ["W-REBUILD-NO-EVENTLOG"]  # no off-site tier here
        assert res.ok  # a warning: the AIPs and their own events are back
        diff = repo.compare_catalog(original)
        gone = {x["where"].split(" (")[0].split(".")[0] for x in diff["differences"]}
        # what lived only in the catalog, with no backup of the log: the replication events after ingest, the
        # user and the user's event; everything the AIPs hold is equal
        assert diff["counts"]["a"] == diff["counts"]["b"]
        assert all(w.startswith(("event ", "users ", "agent agent-officer", "agent agent-user")) for w in gone), gone
        assert any(x["where"].startswith("users doc1") for x in diff["differences"])
        assert repo.catalog.verify_chain() == []
        for r in repo.catalog.replicas():
            assert r["status"] == "ok" and r["last_verified"] is None  # found, to be verified by the next audit
        audit = repo.audit(due=True)
        assert len(audit.audits) == 4 and not audit.damaged  # never verified: due first
    finally:
        repo.close()


def test_a_catalog_that_is_not_empty_is_not_rebuilt(repo, batch):
    repo.ingest(batch)
    with pytest.raises(UsageError, match="not empty"):
        repo.rebuild_catalog("primary")


def test_an_aip_that_does_not_verify_is_left_out_and_named(repo, batch, tmp_path):
    res = repo.ingest(batch)
    bad = res.aips[0]["id"]
    meta = repo.root / "tiers/primary" / repo.show_aip(bad)["path"] / "data/metadata/descriptive/hoso.xml"
    meta.write_bytes(meta.read_bytes().replace(b"<", b"< ", 1))
    repo, _ = lose_catalog(repo, tmp_path)
    try:
        d = repo.rebuild_catalog("primary").to_dict()
        assert d["registered"] == 1 and not d["ok"]
        (f,) = [f for f in d["problems"] if f["code"] == "E-REBUILD-AIP-FAILED"]
        assert f["params"]["aip"] == bad and "E-AUDIT-METADATA-EDITED data/metadata/descriptive/hoso.xml" in \
            f["params"]["detail"]
        assert repo.catalog.aip_row(bad) is None
    finally:
        repo.close()


def test_restores_made_without_a_catalog_are_recorded_once_it_is_rebuilt(repo, batch, tmp_path):
    ids = [a["id"] for a in repo.ingest(batch).aips]
    repo, _ = lose_catalog(repo, tmp_path)
    try:
        shutil.rmtree(repo.root / "tiers/primary")
        assert repo.restore("secondary", into="primary").ok
        d = repo.rebuild_catalog("primary").to_dict()
        assert d["events"]["recovery"] == 2
        for aid in ids:
            ev = [e for e in repo.events(aid) if e["type"] == "recovery"]
            assert len(ev) == 1 and "restored from tier 'secondary'" in ev[0]["detail"]
            assert {r["tier"]: r["status"] for r in repo.show_aip(aid)["replicas"]} == {"primary": "ok",
                                                                                       "secondary": "ok"}
        assert repo.catalog.verify_chain() == []
    finally:
        repo.close()
    for p in repo.root.glob("catalog.sqlite*"):  # the rebuilt catalog lost too: a second rebuild has them again
        p.unlink()
    with Repository.open(repo.root) as again:
        assert again.rebuild_catalog("primary").to_dict()["events"]["recovery"] == 2
        assert len([e for e in again.events(ids[0]) if e["type"] == "recovery"]) == 1
        assert again.catalog.verify_chain() == []


def test_the_event_log_comes_back_from_an_export_and_a_broken_one_is_refused_where_it_breaks(repo, batch, tmp_path):
    repo.ingest(batch)
    export = tmp_path / "log"
    export.mkdir()
    events = list(repo.catalog.iter_events())
    (export / "events.jsonl").write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events))
    (export / "chain-head.json").write_text(json.dumps(repo.catalog.chain_head()))
    broken = tmp_path / "broken"
    shutil.copytree(export, broken)
    edited = [dict(e) for e in events]
    edited[3]["detail"] = "sửa lén / edited"
    (broken / "events.jsonl").write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in edited))
    repo, original = lose_catalog(repo, tmp_path)
    try:
        d = repo.rebuild_catalog("primary", eventlog=broken).to_dict()
        (f,) = [f for f in d["problems"] if f["code"] == "E-REBUILD-EVENTLOG-BROKEN"]
        assert f["params"]["seq"] == 4 and d["events"]["imported"] == 3 and not d["ok"]
    finally:
        repo.close()
    for p in repo.root.glob("catalog.sqlite*"):
        p.unlink()
    with Repository.open(repo.root) as again:
        d = again.rebuild_catalog("primary", eventlog=export).to_dict()
        assert d["ok"] and d["events"]["imported"] == len(events) and d["events"]["from_aips"] == 0
        diff = again.compare_catalog(original)
        assert diff["equal"], diff["differences"][:5]
        assert again.catalog.chain_head() == json.loads((export / "chain-head.json").read_text())


def test_rebuilt_into_postgresql_equals_the_sqlite_original(repo, batch, tmp_path, monkeypatch, pg_schema_url):
    repo.ingest(batch)
    repo.users().add("doc1", "reader", password="mat-khau-du-dai")
    export = tmp_path / "log"
    export.mkdir()
    (export / "events.jsonl").write_text("".join(json.dumps(e, ensure_ascii=False) + "\n"
                                                 for e in repo.catalog.iter_events()))
    (export / "access.json").write_text(json.dumps(repo.catalog.export_access(), ensure_ascii=False))
    original = repo.settings.catalog_url
    root = repo.root
    repo.close()
    monkeypatch.setenv("PRESERVE_CATALOG_URL", pg_schema_url)
    with Repository.open(root) as moved:
        assert moved.catalog.dialect == "postgresql"
        d = moved.rebuild_catalog("primary", eventlog=export).to_dict()
        assert d["ok"] and d["access"]["users"] == 1
        diff = moved.compare_catalog(original)
        assert diff["equal"], diff["differences"][:5]
        assert moved.catalog.verify_chain() == []
        assert moved.users().authenticate("doc1", "mat-khau-du-dai") is not None
