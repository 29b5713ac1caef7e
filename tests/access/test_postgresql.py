"""Users, requests, the access log and a copy on a catalog in PostgreSQL (the same façade as on SQLite)."""

from __future__ import annotations

import zipfile

from preserve.repository import Repository


def test_access_on_postgresql(tmp_path, batch, monkeypatch, pg_schema_url):
    monkeypatch.setenv("PRESERVE_CATALOG_URL", pg_schema_url)
    repo = Repository.init(tmp_path / "repo", offsite=False)
    try:
        assert repo.catalog.dialect == "postgresql"
        repo.ingest(batch)
        doc = repo.show_aip(repo.list_aips()[0]["id"])["documents"][0]["docCode"]
        users = repo.users()
        users.add("doc_1", "reader", full_name="Đỗ Văn Đức", password="mat-khau-postgres")
        users.add("docx1", "reader")  # "doc_1" as a LIKE pattern would match it: the log must not
        users.add("lt", "archivist")
        assert users.authenticate("doc_1", "mat-khau-postgres").full_name == "Đỗ Văn Đức"
        reqs = repo.access_requests()
        rid = reqs.request("doc_1", "Nghiên cứu", doc=doc)["id"]
        reqs.request("docx1", "Nghiên cứu", doc=doc)
        if reqs.get(rid)["status"] == "pending":
            assert reqs.approve(rid, "lt", "Đúng mục đích")["status"] == "approved"
        res = repo.make_access_copy(rid, tmp_path / "out")
        with zipfile.ZipFile(res["zip"]) as z:
            assert any(n.endswith(".pdf") for n in z.namelist())
        log = repo.access_log(user="doc_1")
        assert log and all("doc_1" in e["users"] for e in log)
        assert "dissemination" in {e["type"] for e in log}
        assert repo.catalog.verify_chain() == []
        assert not (tmp_path / "repo" / "catalog.sqlite").exists()
    finally:
        repo.close()
