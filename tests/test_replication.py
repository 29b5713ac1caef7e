"""Replication over local tiers: copies verified by reading back, failures that never undo an ingest, catch-up
that is idempotent, and a tier taken away in the middle of replication then brought back with no copy lost."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from preserve.alerts import read_alerts
from preserve.errors import UsageError
from preserve.replication import replication_lock
from preserve.sip.sample import make_sample

PRESERVE = str(Path(sys.executable).parent / "preserve")


def run(*args):
    return subprocess.run([PRESERVE, *map(str, args)], capture_output=True, text=True)


def tree_digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def alert_codes(repo) -> list[str]:
    return [a["code"] for a in read_alerts(repo.root / "alerts.log")]


def replicas(repo, aip_id) -> dict[str, dict]:
    return {r["tier"]: r for r in repo.show_aip(aip_id)["replicas"]}


@pytest.fixture
def four(tmp_path):
    return make_sample(tmp_path / "b4", dossiers=4, docs=2, seed=61, pages=(2, 3)).root


def test_ingest_copies_to_the_secondary_tier_and_reads_it_back(repo, batch):
    res = repo.ingest(batch)
    assert len(res.aips) == 2 and res.replication.ok and res.replication.under_replicated == []
    for a in res.aips:
        info = repo.show_aip(a["id"])
        reps = replicas(repo, a["id"])
        assert set(reps) == {"primary", "secondary"}
        sec = reps["secondary"]
        assert sec["status"] == "ok" and sec["last_verified"] and sec["path"].endswith(info["path"])
        primary = repo.root / "tiers/primary" / info["path"]
        secondary = repo.root / "tiers/secondary" / info["path"]
        assert tree_digests(secondary) == tree_digests(primary)
        ev = [e for e in repo.events(a["id"]) if e["type"] == "replication"]
        assert len(ev) == 1 and ev[0]["outcome"] == "success" and "read back" in ev[0]["detail"]
    assert not (repo.root / "tiers/secondary/.staging").exists() or \
        not any((repo.root / "tiers/secondary/.staging").iterdir())


def test_replicate_is_idempotent(repo, batch):
    repo.ingest(batch)
    again = repo.replicate()
    assert again.copies == [] and again.ok and again.under_replicated == []
    p = run("replicate", "--repo", repo.root, "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["copied"] == 0 and data["failed"] == 0 and data["under_replicated"] == []


def test_tier_down_at_ingest_leaves_the_aip_stored_and_under_replicated(repo, batch):
    sec = repo.root / "tiers/secondary"
    away = repo.root / "tiers/secondary.unmounted"
    os.rename(sec, away)  # the disk is not mounted
    p = run("ingest", batch, "--repo", repo.root, "--json")
    assert p.returncode == 1, p.stderr  # stored, but a copy is missing: a finding, not a system error
    data = json.loads(p.stdout)
    assert len(data["aips"]) == 2
    assert data["replication"]["failed"] == 2
    assert {c["code"] for c in data["replication"]["copies"]} == {"E-REPL-UNREACHABLE"}
    assert [u["missing"] for u in data["replication"]["under_replicated"]] == [["secondary"], ["secondary"]]
    assert not sec.exists(), "an unreachable tier is never created"
    codes = alert_codes(repo)
    assert codes.count("E-TIER-UNREACHABLE") == 1, codes  # one alert for the tier, not one per AIP
    assert "E-COPIES-BELOW-MIN" in codes
    for a in data["aips"]:
        assert repo.show_aip(a["id"])["id"] == a["id"]
        assert replicas(repo, a["id"])["secondary"]["status"] == "failed"
    # status shows it
    p = run("tiers", "status", "--repo", repo.root, "--json")
    assert p.returncode == 1
    rows = {r["tier"]: r for r in json.loads(p.stdout)}
    assert rows["secondary"]["reachable"] is False and "absent" in rows["secondary"]["reason"]
    assert rows["secondary"]["aips"] is None, "an unreachable tier's copies are unknown, not missing"
    assert rows["primary"]["aips"] == 2 and rows["primary"]["missing"] == 0
    assert alert_codes(repo)[-1] == "E-TIER-UNREACHABLE", "status of a copy tier that is down alerts too"
    # the disk comes back; replicate catches up
    os.rename(away, sec)
    p = run("replicate", "--repo", repo.root, "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["copied"] == 2
    for a in data["aips"]:
        assert replicas(repo, a["id"])["secondary"]["status"] == "ok"
    rows = {r["tier"]: r for r in json.loads(run("tiers", "status", "--repo", repo.root, "--json").stdout)}
    assert rows["secondary"]["aips"] == 2 and rows["secondary"]["missing"] == 0


class _PullTheDisk:
    """A progress sink that unmounts (moves away) the secondary tier once `after` bytes have been copied."""

    def __init__(self, tier: Path, away: Path, after: int):
        self.tier, self.away, self.after, self.seen, self.pulled = tier, away, after, 0, False

    def start(self, label, total, unit="items"):
        pass

    def advance(self, n=1):
        self.seen += n
        if not self.pulled and self.seen >= self.after:
            os.rename(self.tier, self.away)
            self.pulled = True

    def done(self):
        pass


def test_tier_taken_away_mid_replication_then_back_loses_no_copy(repo, four):
    res = repo.ingest(four, replicate=False)
    ids = [a["id"] for a in res.aips]
    assert len(ids) == 4
    sizes = {a["id"]: a["bytes"] for a in repo.list_aips()}
    sec = repo.root / "tiers/secondary"
    away = repo.root / "tiers/secondary.away"
    # pull the disk in the middle of the second AIP's copy
    first = repo.catalog.replication_state(ids)[0]["id"]
    pull = _PullTheDisk(sec, away, sizes[first] + 200_000)  # payload + metadata of the first, then part of the second
    result = repo.replicate(progress=pull)
    assert pull.pulled
    copied = [c["aip"] for c in result.copies if c["status"] == "copied"]
    failed = [c for c in result.copies if c["status"] == "failed"]
    assert len(copied) >= 1 and len(failed) >= 1 and len(copied) + len(failed) == 4, [(c["code"], c["detail"]) for c in failed]
    assert {c["code"] for c in failed} <= {"E-REPL-UNREACHABLE", "E-REPL-FAILED"}
    assert "E-REPL-UNREACHABLE" in {c["code"] for c in failed}
    # what the catalog calls a verified copy is really on the (moved) disk, whole; nothing else is
    on_disk = {p.parent.parent.name for p in away.glob("aips/*/*/*/v1/bagit.txt")}
    assert on_disk == {i.removeprefix("uuid-") for i in copied}, "only whole, recorded copies are visible"
    for i in ids:
        st = replicas(repo, i)["secondary"]["status"]
        assert st == ("ok" if i in copied else "failed")
    # the disk comes back: catch up, then every AIP has two identical, verified copies
    os.rename(away, sec)
    again = repo.replicate()
    assert again.ok and sorted(c["aip"] for c in again.copies) == sorted(set(ids) - set(copied))
    for i in ids:
        info = repo.show_aip(i)
        assert replicas(repo, i)["secondary"]["status"] == "ok"
        assert tree_digests(sec / info["path"]) == tree_digests(repo.root / "tiers/primary" / info["path"])
    leftovers = list((sec / ".staging").iterdir()) if (sec / ".staging").exists() else []
    assert leftovers == [], "the cut-off copy's staging area was cleaned on the next run"
    assert repo.replicate().copies == []


def test_a_leftover_copy_is_adopted_when_intact_and_replaced_when_not(repo, batch):
    res = repo.ingest(batch, replicate=False)
    a, b = (repo.show_aip(x["id"]) for x in res.aips)
    prim, sec = repo.root / "tiers/primary", repo.root / "tiers/secondary"
    # a copy written by a run that was cut off before the catalog heard of it
    for info in (a, b):
        shutil.copytree(prim / info["path"], sec / info["path"])
    damaged = sorted((sec / b["path"]).rglob("*.pdf"))[0]
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0123456789")
    result = repo.replicate()
    status = {c["aip"]: c["status"] for c in result.copies}
    assert status == {a["id"]: "adopted", b["id"]: "copied"}
    assert tree_digests(sec / b["path"]) == tree_digests(prim / b["path"])


def test_a_damaged_source_is_never_copied(repo, batch):
    res = repo.ingest(batch, replicate=False)
    a, b = (repo.show_aip(x["id"]) for x in res.aips)
    prim, sec = repo.root / "tiers/primary", repo.root / "tiers/secondary"
    pdf = sorted((prim / a["path"]).rglob("*.pdf"))[0]
    raw = bytearray(pdf.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte in a payload file
    pdf.write_bytes(bytes(raw))
    tm = prim / b["path"] / "tagmanifest-sha256.txt"
    tm.write_text(tm.read_text() + "\n")  # an edited tag manifest
    result = repo.replicate()
    assert not result.ok
    assert {c["aip"]: c["code"] for c in result.copies} == {a["id"]: "E-REPL-NO-SOURCE", b["id"]: "E-REPL-NO-SOURCE"}
    assert not (sec / a["path"]).exists() and not (sec / b["path"]).exists()
    damaged = [x for x in read_alerts(repo.root / "alerts.log") if x["code"] == "E-REPL-SOURCE-DAMAGED"]
    assert {x["aip"] for x in damaged} == {a["id"], b["id"]}
    assert any("corrupted" in x["message_en"] for x in damaged)
    assert any("tagmanifest-sha256.txt" in x["message_en"] for x in damaged)


def test_full_secondary_disk_refuses_before_writing(repo, batch, tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {p.stderr.strip()}")
    try:
        sec = repo.root / "tiers/secondary"
        shutil.rmtree(sec)
        sec.symlink_to(mnt)
        repo.init_tier("secondary")  # a new disk for the tier
        res = repo.ingest(batch)
        assert len(res.aips) == 2, "a full copy tier never undoes the ingest"
        assert {c["code"] for c in res.replication.failed} == {"E-TIER-FULL"}
        assert [p for p in mnt.rglob("*") if p.is_file()] == [mnt / ".preserve-tier"], "nothing half-written"
        assert "E-TIER-FULL" in alert_codes(repo)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_low_free_space_raises_an_alert(repo, batch):
    (repo.root / "storage_policies").mkdir()
    text = (Path(__file__).parents[1] / "storage_policies/local-only.yaml").read_text()
    (repo.root / "storage_policies/local-only.yaml").write_text(text.replace("min_free: 10%", "min_free: 100%", 1))
    repo.ingest(batch)
    low = [a for a in read_alerts(repo.root / "alerts.log") if a["code"] == "W-TIER-LOW-SPACE"]
    assert [a["tier"] for a in low] == ["primary"], "the policy asks 100% free on primary only"
    rows = {r["tier"]: r for r in repo.tiers_status()}
    assert rows["primary"]["low_space"] is True and rows["secondary"]["low_space"] is False


def test_empty_mount_point_is_unreachable_not_an_empty_tier(repo, batch):
    sec = repo.root / "tiers/secondary"
    (sec / ".preserve-tier").unlink()  # what an unmounted disk's mount point looks like: an empty folder
    res = repo.ingest(batch)
    assert {c["code"] for c in res.replication.failed} == {"E-REPL-UNREACHABLE"}
    assert "tiers init secondary" in res.replication.failed[0]["detail"] or \
        "mount point" in res.replication.failed[0]["detail"]
    assert list(sec.iterdir()) == []
    p = run("tiers", "init", "secondary", "--repo", repo.root)
    assert p.returncode == 0, p.stderr
    assert repo.replicate().ok


def test_replicate_usage_errors_exit_2(repo, batch):
    repo.ingest(batch)
    p = run("replicate", "--tier", "nas9", "--repo", repo.root)
    assert p.returncode == 2 and "nas9" in p.stderr and "policy" in p.stderr
    p = run("replicate", "--aip", "uuid-00000000-0000-0000-0000-000000000000", "--repo", repo.root)
    assert p.returncode == 2 and "aips list" in p.stderr
    with replication_lock(repo.root / "staging", wait=False):
        with pytest.raises(UsageError, match="Another replication"):
            repo.replicate()
        p = run("replicate", "--repo", repo.root)
        assert p.returncode == 2 and "Another replication" in p.stderr


def test_a_replaced_disk_is_filled_again_after_tiers_init(repo, batch):
    """The secondary disk dies and a new, empty one is mounted: `tiers init` marks the copies the catalog had
    there as missing, and `replicate` writes them again."""
    ids = [a["id"] for a in repo.ingest(batch).aips]
    sec = repo.root / "tiers/secondary"
    before = sorted(p.relative_to(sec).as_posix() for p in (sec / "aips").rglob("*") if p.is_file())
    shutil.rmtree(sec)
    sec.mkdir()  # the new disk's mount point: empty, no marker
    p = run("tiers", "init", "secondary", "--repo", repo.root, "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["missing"] == 2
    assert {replicas(repo, a)["secondary"]["status"] for a in ids} == {"missing"}
    res = repo.replicate()
    assert res.ok and len([c for c in res.copies if c["tier"] == "secondary"]) == 2
    assert sorted(p.relative_to(sec).as_posix() for p in (sec / "aips").rglob("*") if p.is_file()) == before
    assert {replicas(repo, a)["secondary"]["status"] for a in ids} == {"ok"}
    assert json.loads(run("tiers", "init", "secondary", "--repo", repo.root, "--json").stdout)["missing"] == 0
