"""preserve restore: from a tier into another tier or a folder, every AIP verified before it counts."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from preserve.errors import UsageError
from preserve.findings import Finding

PRESERVE = str(Path(sys.executable).parent / "preserve")


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def stored(repo, batch):
    res = repo.ingest(batch)
    return repo, [a["id"] for a in res.aips]


def test_a_lost_tier_comes_back_from_another(stored):
    repo, ids = stored
    primary = repo.root / "tiers/primary"
    before = tree(primary / "aips")
    shutil.rmtree(primary)
    res = repo.restore("secondary", into="primary")
    assert res.ok and [a["status"] for a in res.aips] == ["restored", "restored"]
    assert all(a["catalog"] for a in res.aips)  # the catalog's digests were checked too
    assert tree(primary / "aips") == before
    for aid in ids:
        rep = {r["tier"]: r for r in repo.show_aip(aid)["replicas"]}
        assert rep["primary"]["status"] == "ok" and rep["primary"]["last_verified"]
        ev = [e for e in repo.events(aid) if e["type"] == "recovery"]
        assert len(ev) == 1 and ev[0]["outcome"] == "success" and "catalog digests verified" in ev[0]["detail"]
    again = repo.restore("secondary", into="primary")  # idempotent: intact copies are left as they are
    assert [a["status"] for a in again.aips] == ["present", "present"] and again.ok


def test_a_damaged_source_is_not_restored(stored):
    repo, ids = stored
    info = repo.show_aip(ids[0])
    scan = next((repo.root / "tiers/secondary" / info["path"]).rglob("*.pdf"))
    scan.write_bytes(scan.read_bytes()[:-1] + b"X")
    shutil.rmtree(repo.root / "tiers/primary")
    res = repo.restore("secondary", into="primary")
    assert not res.ok
    bad = next(a for a in res.aips if a["aip"] == ids[0])
    assert bad["status"] == "failed" and "E-AUDIT-FILE-CORRUPTED" in {f["code"] for f in bad["findings"]}
    assert bad["problem"]["code"] == "E-RESTORE-FAILED" and "preserve restore --from" in bad["problem"]["message_en"] \
        + (Finding.from_dict(bad["problem"]).hint("en") or "")
    assert not (repo.root / "tiers/primary" / info["path"]).exists()  # nothing half-written
    assert [e["outcome"] for e in repo.events(ids[0]) if e["type"] == "recovery"] == ["failure"]
    assert list(repo.settings.staging.glob("restore-*")) == []


def test_restore_into_a_plain_folder_and_by_id(stored, tmp_path):
    repo, ids = stored
    res = repo.restore("primary", [ids[1]], to=tmp_path / "out")
    assert res.ok and [a["aip"] for a in res.aips] == [ids[1]]
    rel = repo.show_aip(ids[1])["path"]
    assert tree(tmp_path / "out" / rel) == tree(repo.root / "tiers/primary" / rel)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["aips"]  # scratch space gone
    assert repo.restore("primary", [ids[1]], to=tmp_path / "out").aips[0]["status"] == "present"
    (tmp_path / "out" / rel / "bagit.txt").write_text("changed")
    with pytest.raises(UsageError, match="does not verify"):
        repo.restore("primary", [ids[1]], to=tmp_path / "out")


def test_without_a_catalog_the_manifests_and_signature_decide(stored, tmp_path):
    repo, ids = stored
    (repo.root / "catalog.sqlite").unlink()
    repo.close()
    from preserve.repository import Repository

    with Repository.open(repo.root) as fresh:
        shutil.rmtree(fresh.root / "tiers/primary")
        res = fresh.restore("secondary", into="primary")
        assert res.ok and not any(a["catalog"] for a in res.aips)
        assert "no catalog entry" in res.aips[0]["detail"]
        lines = [json.loads(x) for x in (fresh.root / "state/recovery-events.jsonl").read_text().splitlines()]
        assert {x["aip"] for x in lines} == set(ids) and all(x["tier"] == "primary" for x in lines)
        assert fresh.events() == []  # the rebuilt catalog takes them (test_rebuild)


@pytest.mark.parametrize("args,match", [
    ({"into": "primary", "to": Path("/tmp/x")}, "exactly one"), ({}, "exactly one"),
    ({"into": "secondary"}, "is the tier restored from"), ({"into": "nope"}, "No tier named")])
def test_usage_errors(stored, args, match):
    repo, _ = stored
    with pytest.raises(Exception, match=match):
        repo.restore("secondary", **args)


def test_cli_exit_codes(stored, tmp_path):
    repo, ids = stored

    def run(*args):
        return subprocess.run([PRESERVE, "restore", *args, "--repo", str(repo.root), "--json"], capture_output=True,
                              text=True, env={**os.environ})

    p = run("--from", "primary", "--aip", ids[0], "--to", str(tmp_path / "o"))
    assert p.returncode == 0 and json.loads(p.stdout)["restored"] == 1
    p = run("--from", "primary", "--aip", "uuid-00000000-0000-0000-0000-000000000000", "--to", str(tmp_path / "o"))
    assert p.returncode == 2 and "holds no AIP" in p.stderr
    p = run("--from", "primary", "--to", str(tmp_path / "o"))
    assert p.returncode == 2 and "--all" in p.stderr
    scan = next((repo.root / "tiers/primary" / repo.show_aip(ids[1])["path"]).rglob("*.pdf"))
    scan.write_bytes(b"damaged")
    p = run("--from", "primary", "--all", "--to", str(tmp_path / "o2"))
    assert p.returncode == 1 and json.loads(p.stdout)["failed"] == 1
