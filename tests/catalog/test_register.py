"""register_aip and the reads over it, on SQLite and PostgreSQL."""

from __future__ import annotations

import unicodedata
from dataclasses import replace

import pytest
from sqlalchemy import text

from preserve.aip.model import ROLE_ORIGINAL, Event
from preserve.catalog import Catalog
from preserve.catalog.models import DOCUMENT_COLUMNS, DOSSIER_COLUMNS
from preserve.errors import CatalogError
from preserve.sip.profile import load_profile



def aip_path(aip) -> str:
    u = aip.uuid.replace("-", "")
    return f"aips/{u[:2]}/{u[2:4]}/{aip.uuid}/v{aip.version}"


def _table_counts(catalog: Catalog) -> dict[str, int]:
    tables = ["fonds", "dossier", "document", "aip", "aip_file", "replica", "event", "agent"]
    with catalog.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}


def test_every_profile_field_has_a_column():
    profile = load_profile()
    for f in profile.dossier.fields:
        assert f.key in DOSSIER_COLUMNS or f.key == "fondsName", f"HoSo field {f.key} has no catalog column"
        if f.kind == "date":
            assert f"{f.key}_iso" in DOSSIER_COLUMNS
    for f in profile.document.fields:
        assert f.key in DOCUMENT_COLUMNS, f"TaiLieu field {f.key} has no catalog column"
        if f.kind == "date":
            assert f"{f.key}_iso" in DOCUMENT_COLUMNS


def test_round_trip(catalog, make_aip, register):
    aip = register(make_aip())
    got = catalog.get_aip(aip.id)
    assert got is not None
    assert (got["id"], got["fileCode"], got["version"], got["created"]) == (aip.id, aip.file_code, 1, aip.created)
    assert got["path"] == aip_path(aip) and got["path"].endswith("/v1")
    assert got["documentCount"] == 3 and got["pages"] == 21 and got["current"] is True
    assert got["bytes"] == sum(f.size for f in aip.files)
    assert got["tagmanifest_sha256"] == "ab" * 32 and got["status"] == "stored"

    for key, value in aip.dossier.items():
        assert got["dossier"][key] == value, key
    assert got["dossier"]["title"].startswith("Tập nghị quyết, chỉ thị của Ban Thường vụ Tỉnh uỷ")
    assert got["dossier"]["fondsName"] == "Phông Tỉnh uỷ Hải Dương (1948–1967)"

    assert len(got["documents"]) == len(aip.documents)
    originals = {f.doc_code: f.path for f in aip.files if f.role == ROLE_ORIGINAL}
    for want, have in zip(aip.documents, got["documents"]):
        for key, value in want.items():
            expected = originals[want["docCode"]] if key == "file" else value
            assert have[key] == expected, (want["docCode"], key)
    assert got["documents"][1]["secrecy"] == "01" and got["documents"][0]["secrecy"] is None
    assert got["documents"][0]["signer"] == "Nguyễn Văn Đức"

    assert [f["path"] for f in got["files"]] == [f.path for f in aip.files]
    for want, have in zip(aip.files, got["files"]):
        for key in ("path", "role", "size", "sha256", "sha512", "mime", "puid", "format_name", "original_name",
                    "doc_code", "pages"):
            assert have[key] == getattr(want, key), key

    assert got["replicas"] == [{"tier": "primary", "path": got["path"], "status": "ok",
                                "last_verified": "2026-11-25T11:31:00+07:00", "detail": None}]
    assert [e["id"] for e in got["events"]] == [e.id for e in aip.events]
    first = got["events"][0]
    assert first["type"] == "ingestion" and first["detail"] == "Tiếp nhận lô số hoá 2026-11"
    assert first["agents"] == [{"id": "agent-software-preserve", "role": "executing program"},
                               {"id": "agent-person-nguyen-thi-hoa", "role": "implementer"}]
    assert first["objects"] == [aip.id] and first["aip"] == aip.id

    assert catalog.find_dossier_aip(aip.file_code) == aip.id
    assert catalog.find_dossier_aip("TUHD.01.999") is None
    assert catalog.list_aips() == [{"id": aip.id, "fileCode": aip.file_code, "version": 1, "documents": 3,
                                    "pages": 21, "bytes": got["bytes"], "created": aip.created}]
    assert catalog.get_aip("uuid-00000000-0000-0000-0000-000000000000") is None
    assert catalog.verify_chain() == []


def test_agents_are_upserted(catalog, make_aip, register):
    register(make_aip("TUHD.01.1"))
    second = make_aip("TUHD.01.2")
    second.agents[0].name = "preserve 0.2.0"
    register(second)
    with catalog.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, name FROM agent ORDER BY id")).all()
    assert len(rows) == 3
    assert ("agent-software-preserve", "preserve 0.2.0") in [tuple(r) for r in rows]
    assert ("agent-person-nguyen-thi-hoa", "Nguyễn Thị Hoà") in [tuple(r) for r in rows]


def test_text_is_stored_nfc(catalog, make_aip, register):
    aip = make_aip()
    nfd_title = unicodedata.normalize("NFD", aip.dossier["title"])
    assert nfd_title != aip.dossier["title"]
    aip.dossier["title"] = nfd_title
    register(aip)
    assert catalog.get_aip(aip.id)["dossier"]["title"] == unicodedata.normalize("NFC", nfd_title)


def test_unknown_keys_are_kept(catalog, make_aip, register):
    aip = make_aip()
    aip.dossier["archivalHistory"] = "Tiếp nhận từ Văn phòng Tỉnh uỷ năm 1970"
    register(aip)
    assert catalog.get_aip(aip.id)["dossier"]["archivalHistory"] == "Tiếp nhận từ Văn phòng Tỉnh uỷ năm 1970"


def test_same_version_again_writes_nothing(catalog, make_aip, register):
    aip = register(make_aip())
    before, head = _table_counts(catalog), catalog.chain_head()
    again = replace(make_aip(), id=f"uuid-{'1' * 8}-1111-1111-1111-{'1' * 12}")
    with pytest.raises(CatalogError, match="already in AIP"):
        register(again)
    with pytest.raises(CatalogError):  # the very same AIP id
        register(aip)
    assert _table_counts(catalog) == before
    assert catalog.chain_head() == head
    assert catalog.verify_chain() == []


def test_failure_at_the_last_step_leaves_no_rows(catalog, make_aip, register):
    first = register(make_aip("TUHD.01.1"))
    before, head = _table_counts(catalog), catalog.chain_head()
    # a new fonds, dossier, documents, files, replica… then an event whose id is already in the log:
    # the insert that fails is the last one of the transaction.
    late = make_aip("HUHH.02.7", fonds_name="Phông Tỉnh uỷ Hải Hưng (1968–1996)")
    late.events.append(Event(first.events[0].id, "ingestion", late.created, "success"))
    with pytest.raises(CatalogError, match="refused"):
        register(late)
    assert _table_counts(catalog) == before
    assert catalog.chain_head() == head
    assert catalog.find_dossier_aip("HUHH.02.7") is None
    assert catalog.get_aip(late.id) is None
    assert catalog.counts()["fonds"] == 1
    assert catalog.verify_chain() == []


def test_document_code_taken_by_another_dossier(catalog, make_aip, register):
    register(make_aip("TUHD.01.1"))
    before = _table_counts(catalog)
    clash = make_aip("TUHD.01.2")
    clash.documents[0]["docCode"] = "TUHD.01.1.001"
    with pytest.raises(CatalogError):
        register(clash)
    assert _table_counts(catalog) == before


def test_higher_version_replaces_the_dossier(catalog, make_aip, register):
    v1 = register(make_aip(n_docs=3))
    v2 = make_aip(version=2, n_docs=2)
    v2.dossier["title"] = "Tập nghị quyết (đã hiệu đính)"
    register(v2)
    assert catalog.find_dossier_aip(v1.file_code) == v2.id
    got = catalog.get_aip(v2.id)
    assert got["dossier"]["title"] == "Tập nghị quyết (đã hiệu đính)"
    assert [d["docCode"] for d in got["documents"]] == ["TUHD.01.125.001", "TUHD.01.125.002"]
    assert [a["version"] for a in catalog.list_aips()] == [1, 2]
    counts = catalog.counts()
    assert (counts["dossiers"], counts["documents"], counts["aips"], counts["pages"]) == (1, 2, 2, 14)
    old = catalog.get_aip(v1.id)
    assert old["files"] and old["current"] is False and old["documentCount"] == 3  # the old version's rows stay
    with pytest.raises(CatalogError):  # a lower version than the one held
        register(make_aip(version=1, aip_id=f"uuid-{'2' * 8}-2222-2222-2222-{'2' * 12}"))


def test_existing_file_codes(catalog, make_aip, register):
    a = register(make_aip("TUHD.01.1"))
    b = register(make_aip("TUHD.01.2"))
    asked = ["TUHD.01.1", "TUHD.01.2", "TUHD.01.3", "TUHD.01.1"] + [f"X.1.{n}" for n in range(1200)]
    assert catalog.existing_file_codes(asked) == {"TUHD.01.1": a.id, "TUHD.01.2": b.id}
    assert catalog.existing_file_codes([]) == {}


def test_counts(catalog, make_aip, register):
    assert catalog.counts() == {"fonds": 0, "dossiers": 0, "documents": 0, "pages": 0, "aips": 0, "files": 0,
                                "bytes": 0}
    a = register(make_aip("TUHD.01.1", n_docs=2))
    b = register(make_aip("TUHD.01.2", n_docs=4))
    c = register(make_aip("HUHH.02.3", n_docs=1, fonds_name="Phông Tỉnh uỷ Hải Hưng"))
    assert catalog.counts() == {
        "fonds": 2, "dossiers": 3, "documents": 7, "pages": 49, "aips": 3,
        "files": sum(len(x.files) for x in (a, b, c)),
        "bytes": sum(f.size for x in (a, b, c) for f in x.files),
    }


def test_set_replica(catalog, make_aip, register):
    aip = register(make_aip())
    ev = Event("uuid-aaaaaaaa-0000-4000-8000-000000000001", "replication", "2026-11-25T12:00:00+07:00",
               "success", "Sao sang NAS", [("agent-software-preserve", "executing program")], [aip.id])
    catalog.set_replica(aip.id, "nas", "/mnt/nas/" + aip_path(aip), "ok", "2026-11-25T12:00:00+07:00", [ev])
    catalog.set_replica(aip.id, "primary", aip_path(aip), "damaged")
    reps = {r["tier"]: r for r in catalog.replicas(aip.id)}
    assert reps["nas"]["status"] == "ok" and reps["nas"]["path"].startswith("/mnt/nas/")
    assert reps["primary"] == {"aip": aip.id, "tier": "primary", "path": aip_path(aip), "status": "damaged",
                               "last_verified": "2026-11-25T11:31:00+07:00", "detail": None}
    assert [r["aip"] for r in catalog.replicas(tier="nas")] == [aip.id]
    assert catalog.events(aip.id)[-1]["id"] == ev.id
    with pytest.raises(CatalogError):
        catalog.set_replica(aip.id, "nas", "x", "lost")
    with pytest.raises(CatalogError):
        catalog.set_replica("uuid-nope", "nas", "x", "ok")
    assert catalog.verify_chain() == []


def test_postgresql_uses_the_schema_in_the_url(catalog, catalog_url):
    if catalog.dialect != "postgresql":
        pytest.skip("PostgreSQL only")
    schema = catalog_url.rsplit("search_path%3D", 1)[1]
    with catalog.engine.connect() as conn:
        tables = set(conn.execute(text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                                  {"s": schema}).scalars())
    assert {"aip", "dossier", "document", "event", "chain_head"} <= tables


def test_a_catalog_from_an_earlier_release_gets_the_new_columns(catalog_url):
    """replica.detail came with the storage layer: a catalog made before it is upgraded when opened."""
    from sqlalchemy import create_engine, inspect, text

    from preserve.catalog import Catalog

    cat = Catalog(catalog_url)
    cat.create_all()
    engine = create_engine(catalog_url)
    with engine.begin() as conn:
        conn.execute(text('ALTER TABLE "replica" DROP COLUMN "detail"'))
    assert "detail" not in {c["name"] for c in inspect(engine).get_columns("replica")}
    engine.dispose()
    cat.close()
    again = Catalog(catalog_url)
    again.create_all()
    engine = create_engine(catalog_url)
    assert "detail" in {c["name"] for c in inspect(engine).get_columns("replica")}
    engine.dispose()
    again.close()
