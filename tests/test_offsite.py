"""The off-site tier through the whole repository: three verified copies at ingest, incremental `offsite backup`
with the event log, a rotating `offsite check`, damage found, and restic's errors as clear exit-2 messages.
Real restic against a local repository (as `preserve init` makes it)."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from preserve.alerts import read_alerts
from preserve.repository import Repository
from preserve.sip.sample import make_sample

PRESERVE = str(Path(sys.executable).parent / "preserve")
RESTIC = shutil.which("restic")
pytestmark = pytest.mark.skipif(RESTIC is None, reason="restic is not installed (make setup installs it)")


def run(*args):
    """The CLI, with a terminal wide enough that messages are not folded mid-word."""
    return subprocess.run([PRESERVE, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "400"})


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def alert_codes(repo) -> list[str]:
    return [a["code"] for a in read_alerts(repo.root / "alerts.log")]


@pytest.fixture
def orepo(tmp_path):
    r = Repository.init(tmp_path / "repo", "Lưu trữ lịch sử Tỉnh ủy (test)")
    yield r
    r.close()


@pytest.fixture
def small(tmp_path):
    return make_sample(tmp_path / "lo", dossiers=2, docs=2, seed=71, pages=(1, 2)).root


def corrupt_packs(restic_repo: Path) -> None:
    for pack in (restic_repo / "data").rglob("*"):
        if pack.is_file():
            pack.chmod(0o600)
            data = bytearray(pack.read_bytes())
            for i in range(0, len(data), 16):
                data[i] ^= 0xFF
            pack.write_bytes(bytes(data))


def test_ingest_makes_three_verified_copies(orepo, small):
    res = orepo.ingest(small)
    assert res.replication.ok and len(res.aips) == 2
    offsite = orepo.tier("offsite")
    snaps = offsite.snapshots()
    assert len(snaps) == 1, "one snapshot per backup, holding every new AIP"
    for a in res.aips:
        info = orepo.show_aip(a["id"])
        reps = {r["tier"]: r for r in info["replicas"]}
        assert {t: r["status"] for t, r in reps.items()} == {"primary": "ok", "secondary": "ok", "offsite": "ok"}
        assert f"path={info['path']}" in snaps[0]["tags"], "tagged so that the AIP's versions can be found"
        primary = digests(orepo.root / "tiers/primary" / info["path"])
        assert {d.path: d.digests["sha256"] for d in offsite.read_tree(info["path"])} == primary
        ev = [e for e in orepo.events(a["id"]) if e["type"] == "replication" and "offsite" in e["detail"]]
        assert len(ev) == 1 and ev[0]["outcome"] == "success" and "read back from the snapshot" in ev[0]["detail"]
    rows = {r["tier"]: r for r in orepo.tiers_status()}
    assert rows["offsite"]["kind"] == "restic" and rows["offsite"]["aips"] == 2 and rows["offsite"]["missing"] == 0


def test_offsite_backup_is_incremental_and_carries_the_event_log(orepo, small, tmp_path):
    orepo.ingest(small)
    p = run("offsite", "backup", "--repo", orepo.root, "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["ok"] and data["replication"]["copied"] == 0 and data["replication"]["adopted"] == 0
    (log,) = data["eventlog"]
    assert log["tier"] == "offsite" and log["snapshot"] and 0 < log["events"] <= len(orepo.events())
    # a batch stored while the off-site copy was not made: the next backup sends exactly those AIPs
    later = make_sample(tmp_path / "lo2", dossiers=1, docs=2, seed=72, pages=(1, 1)).root
    res = orepo.ingest(later, replicate=False)
    p = run("offsite", "backup", "--repo", orepo.root, "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert [c["aip"] for c in data["replication"]["copies"] if c["tier"] == "offsite"] == [res.aips[0]["id"]]
    # the event log in the snapshot is the catalog's, line for line, with the chain head
    tier = orepo.tier("offsite")
    tier.invalidate()
    snap = [s for s in tier.snapshots() if "eventlog" in s["tags"]][-1]
    with tier.restic.dump(snap["id"], "/eventlog/events.jsonl") as f:
        lines = f.read().decode("utf-8").splitlines()
    in_catalog = orepo.events()
    assert [json.loads(x)["id"] for x in lines] == [e["id"] for e in in_catalog]  # its own event included
    backups = [e for e in orepo.events() if e["type"] == "replication" and e["detail"].startswith("off-site backup")]
    assert len(backups) == 2 and all(e["outcome"] == "success" for e in backups)


def test_offsite_check_rotates_through_every_part(orepo, small):
    orepo.ingest(small)
    (orepo.root / "storage_policies").mkdir()
    text = (Path(__file__).parents[1] / "storage_policies/default.yaml").read_text()
    (orepo.root / "storage_policies/default.yaml").write_text(text.replace("check_parts: 12", "check_parts: 3"))
    seen = []
    for _ in range(4):
        p = run("offsite", "check", "--repo", orepo.root, "--json")
        assert p.returncode == 0, p.stderr
        (c,) = json.loads(p.stdout)["checks"]
        seen.append((c["subset"], c["parts_done"], bool(c["last_full_cycle"])))
    assert seen == [("1/3", 1, False), ("2/3", 2, False), ("3/3", 0, True), ("1/3", 1, True)]
    assert c["check_every_seconds"] == 180 * 86400 // 3
    # time passes: the cycle that began with the last part is older than the tier's 180 days and not complete
    state_file = orepo.root / "state/offsite-check.json"
    state = json.loads(state_file.read_text())
    assert state["offsite"]["cycle_started"]
    state["offsite"]["cycle_started"] = "2025-01-01T08:00:00+07:00"
    state_file.write_text(json.dumps(state))
    p = run("offsite", "check", "--repo", orepo.root, "--json")
    (c,) = json.loads(p.stdout)["checks"]
    assert p.returncode == 0 and c["cycle_late"] is True and c["subset"] == "2/3"
    assert alert_codes(orepo)[-1] == "W-OFFSITE-CYCLE-LATE"
    seen.append(c["subset"])
    checks = [e for e in orepo.events() if e["type"] == "fixity check"]
    assert len(checks) == 5 and all(e["outcome"] == "success" for e in checks)
    assert "--read-data-subset 2/3" in checks[1]["detail"]
    p = run("offsite", "check", "--read-data-subset", "2/2", "--repo", orepo.root, "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["checks"][0]["subset"] == "2/2"
    for bad in ("0/3", "4/3", "half", "1/0"):
        p = run("offsite", "check", "--read-data-subset", bad, "--repo", orepo.root)
        assert p.returncode == 2 and ("n/t" in p.stderr or "beyond" in p.stderr), (bad, p.stderr)


def test_damaged_offsite_repository_is_found(orepo, small):
    res = orepo.ingest(small)
    corrupt_packs(orepo.root / "offsite")
    p = run("offsite", "check", "--read-data-subset", "1/1", "--repo", orepo.root, "--json")
    assert p.returncode == 1, p.stderr
    (c,) = json.loads(p.stdout)["checks"]
    assert c["ok"] is False and c["errors"]
    assert "E-OFFSITE-CHECK" in alert_codes(orepo)
    assert [e["outcome"] for e in orepo.events() if e["type"] == "fixity check"] == ["failure"]
    # a snapshot the catalog does not count as a copy (a run cut off before it was recorded) is never adopted
    # when it cannot be read back intact
    aip = res.aips[0]["id"]
    orepo.catalog.set_replica(aip, "offsite", "offsite", "failed", detail="cut off")
    rep = orepo.replicate([aip], "offsite")
    assert [c["code"] for c in rep.failed] == ["E-REPL-VERIFY"]
    assert "E-REPL-VERIFY" in alert_codes(orepo)


def test_wrong_password_is_a_clear_exit_2_and_never_undoes_an_ingest(orepo, small):
    pw = orepo.root / "keys/restic-password"
    pw.write_text("not the password\n")
    for cmd in (["offsite", "backup"], ["offsite", "check"]):
        p = run(*cmd, "--repo", orepo.root)
        assert p.returncode == 2, (cmd, p.stdout, p.stderr)
        assert "wrong password" in p.stderr and "restic-password" in p.stderr, p.stderr
    p = run("ingest", small, "--repo", orepo.root, "--json")
    assert p.returncode == 1, p.stderr
    data = json.loads(p.stdout)
    assert len(data["aips"]) == 2
    assert {c["tier"]: c["code"] for c in data["replication"]["copies"] if c["status"] == "failed"} == \
        {"offsite": "E-REPL-UNREACHABLE"}
    assert "E-TIER-UNREACHABLE" in alert_codes(orepo)


def test_missing_repository_is_unreachable_not_recreated(orepo):
    os.rename(orepo.root / "offsite", orepo.root / "offsite.gone")
    p = run("offsite", "backup", "--repo", orepo.root)
    assert p.returncode == 2 and "offsite" in p.stderr, p.stderr
    assert not (orepo.root / "offsite").exists()
    rows = {r["tier"]: r for r in json.loads(run("tiers", "status", "--repo", orepo.root, "--json").stdout)}
    assert rows["offsite"]["reachable"] is False and rows["offsite"]["aips"] is None


def test_locked_repository_is_a_clear_exit_2(orepo):
    tier = orepo.tier("offsite")
    holder = subprocess.Popen([RESTIC, "--repo", tier.location, "--password-file", tier.restic.password_file,
                               "backup", "--stdin", "--stdin-filename", "held.txt"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=tier.restic.env)
    try:
        deadline = time.monotonic() + 20
        while not os.listdir(Path(tier.location) / "locks"):
            assert holder.poll() is None and time.monotonic() < deadline, "restic did not take its lock"
            time.sleep(0.05)
        p = run("offsite", "check", "--repo", orepo.root)
        assert p.returncode == 2 and "locked" in p.stderr and "unlock" in p.stderr, p.stderr
    finally:
        holder.send_signal(signal.SIGINT)
        holder.wait(20)


def test_large_runs_go_off_site_in_batches_of_snapshots(orepo, small, monkeypatch):
    """A run queues AIPs for the restic tier and backs them up as each batch fills (bounded memory), one
    snapshot per batch."""
    import preserve.replication as replication

    monkeypatch.setattr(replication, "RESTIC_BATCH", 1)
    res = orepo.ingest(small)
    assert res.replication.ok
    snaps = orepo.tier("offsite").snapshots()
    assert len(snaps) == 2
    paths = sorted(t for s in snaps for t in s["tags"] if t.startswith("path="))
    assert paths == sorted(f"path={orepo.show_aip(a['id'])['path']}" for a in res.aips)
