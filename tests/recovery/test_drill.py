"""Restore drills: a random sample restored from the off-site tier into scratch space, verified, recorded,
removed; a failed drill alerts; the scheduler runs it monthly."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from preserve.alerts import read_alerts
from preserve.repository import Repository
from preserve.schedule.jobs import RUNNERS
from preserve.schedule.plan import load_plan
from preserve.sip.sample import make_sample

PRESERVE = str(Path(sys.executable).parent / "preserve")
needs_restic = pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed (make setup)")


@pytest.fixture(scope="module")
def offsite_repo(tmp_path_factory):
    """A repository with the default policy (two local tiers and the restic off-site tier), 3 AIPs stored."""
    if shutil.which("restic") is None:
        pytest.skip("restic is not installed (make setup)")
    tmp = tmp_path_factory.mktemp("drill")
    repo = Repository.init(tmp / "repo", "Lưu trữ lịch sử Tỉnh ủy (diễn tập)")
    repo.ingest(make_sample(tmp / "lo", dossiers=3, docs=1, seed=41, pages=(1, 1)).root)
    yield repo
    repo.close()


def alerts(repo) -> list[str]:
    return [a["code"] for a in read_alerts(repo.root / "alerts.log")]


@needs_restic
def test_a_drill_restores_verifies_records_and_cleans_up(offsite_repo):
    repo = offsite_repo
    d = repo.drill(sample=2)
    assert d["ok"] and d["tier"] == "offsite" and d["sample"] == 2 and d["held"] == 3
    assert [a["status"] for a in d["aips"]] == ["restored", "restored"]
    assert all("catalog digests verified" in a["detail"] for a in d["aips"])
    assert d["cleaned"] and list(repo.settings.staging.glob("drill-*")) == []
    summary = [e for e in repo.events() if e["type"] == "recovery" and e["aip"] is None][-1]
    assert summary["outcome"] == "success" and "restore drill from tier 'offsite': 2 of 2" in summary["detail"]
    for a in d["aips"]:
        assert any(e["type"] == "recovery" and e["detail"].startswith("restore drill:") for e in repo.events(a["aip"]))


@needs_restic
def test_the_sample_is_random_and_bounded(offsite_repo):
    from preserve.recovery.drill import drill

    picks = {drill(offsite_repo, sample=1, rng=random.Random(seed))["aips"][0]["aip"] for seed in (4, 5, 7)}
    assert len(picks) == 3  # the draw decides: these three seeds draw each AIP once
    assert offsite_repo.drill(sample=50)["sample"] == 3  # no more than the tier holds


def test_a_drill_of_a_local_tier_and_a_failed_one_alerts(repo, batch, tmp_path):
    ids = [a["id"] for a in repo.ingest(batch).aips]
    assert repo.drill("secondary", sample=5)["ok"]
    for aid in ids:  # the secondary copies rot
        for pdf in (repo.root / "tiers/secondary" / repo.show_aip(aid)["path"]).rglob("*.pdf"):
            pdf.write_bytes(b"rot")
    d = repo.drill("secondary", sample=1)
    assert not d["ok"] and d["problem"]["code"] == "E-DRILL-FAILED"
    assert "E-AUDIT-FILE-TRUNCATED" in {f["code"] for a in d["aips"] for f in a["findings"]}
    assert alerts(repo)[-1] == "E-DRILL-FAILED"
    assert list(repo.settings.staging.glob("drill-*")) == []
    summary = [e for e in repo.events() if e["type"] == "recovery" and e["aip"] is None][-1]
    assert summary["outcome"] == "failure"
    p = subprocess.run([PRESERVE, "drill", "--from", "secondary", "--repo", str(repo.root), "--json"],
                       capture_output=True, text=True, env={**os.environ})
    assert p.returncode == 1 and json.loads(p.stdout)["ok"] is False
    p = subprocess.run([PRESERVE, "drill", "--from", "primary", "--sample", "0", "--repo", str(repo.root)],
                       capture_output=True, text=True, env={**os.environ})
    assert p.returncode == 2 and "--sample" in p.stderr


def test_a_drill_with_nothing_to_restore_fails_and_says_why(repo):
    d = repo.drill("primary")
    assert not d["ok"] and d["sample"] == 0 and "no AIP" in d["problem"]["message_en"]
    assert alerts(repo) == ["E-DRILL-FAILED"]


def test_the_scheduler_runs_the_monthly_drill(repo, batch):
    repo.ingest(batch)
    plan = load_plan(repo)
    spec = plan.job("restore-drill")
    assert spec is not None and spec.trigger_text == "cron: 0 3 1 * *" and spec.sample == 5
    ok, summary = RUNNERS[spec.kind](repo, spec)
    assert ok and "restored and verified 2 of 2" in summary


@needs_restic
def test_a_restore_from_restic_reads_each_snapshot_once(offsite_repo, tmp_path):
    """Restic pays its key derivation per run: the AIPs of one snapshot come out of one `restic dump`."""
    repo = offsite_repo
    tier = repo.tier("offsite")
    snapshots = {tier.snapshot_of(r) for r in tier.aip_paths()}
    dumps = []
    real_dump = tier.restic.dump
    tier.restic.dump = lambda snap, path: dumps.append((snap, path)) or real_dump(snap, path)
    try:
        res = repo.restore("offsite", to=tmp_path / "out")
    finally:
        tier.restic.dump = real_dump
    assert res.ok and res.to_dict()["restored"] == 3
    assert sorted(dumps) == sorted((s, "/") for s in snapshots) and len(snapshots) < 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["aips"]
    for a in res.aips:
        assert (tmp_path / "out" / a["path"] / "bagit.txt").is_file() and "catalog digests verified" in a["detail"]
