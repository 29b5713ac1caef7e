"""An ingest killed with SIGKILL at several points leaves no visible partial AIP and no catalog rows for it;
a repeat ingest then succeeds."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from preserve.repository import Repository

PRESERVE = str(Path(sys.executable).parent / "preserve")


def _visible_aips(tier: Path) -> list[Path]:
    return [p for p in tier.glob("aips/*/*/*") if not p.name.startswith(".")]


@pytest.mark.parametrize("point", ["after-build", "after-journal", "after-publish", "after-register"])
def test_sigkill_during_ingest(tmp_path, batch, point):
    repo = Repository.init(tmp_path / "repo", offsite=False)
    repo.close()
    env = {**os.environ, "PRESERVE_CRASHPOINT": point}
    proc = subprocess.run([PRESERVE, "ingest", str(batch), "--repo", str(repo.root), "--json"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    tier = repo.root / "tiers/primary"
    with Repository.open(repo.root) as r:
        registered = {a["id"] for a in r.list_aips()}
        if point == "after-register":
            assert len(registered) == 1  # the first AIP was complete and committed before the kill
        else:
            assert registered == set()
            assert r.catalog.counts()["dossiers"] == 0
        # opening the repository recovered: what the tier shows is exactly what the catalog holds, all complete
        visible = _visible_aips(tier)
        assert {p.name for p in visible} == {i.removeprefix("uuid-") for i in registered}
        for d in visible:
            assert (d / "v1" / "tagmanifest-sha256.txt.p7s").is_file()
    # a repeat ingest recovers what was left and stores every dossier exactly once
    proc = subprocess.run([PRESERVE, "ingest", str(batch), "--repo", str(repo.root), "--json"], capture_output=True,
                          text=True)
    assert proc.returncode == (1 if point == "after-register" else 0), proc.stdout + proc.stderr
    with Repository.open(repo.root) as r:
        aips = r.list_aips()
        assert sorted(a["fileCode"] for a in aips) == sorted({a["fileCode"] for a in aips}) and len(aips) == 2
        assert {p.name for p in _visible_aips(tier)} == {a["id"].removeprefix("uuid-") for a in aips}
        assert r.catalog.verify_chain() == []
    assert not [p for p in (repo.root / "staging").iterdir() if p.name not in (".ingest.lock", ".replicate.lock")]  # lock files stay


def test_sigkill_at_random_moments_keeps_tier_and_catalog_consistent(tmp_path):
    """Kill real ingests at seeded random moments (wherever they are), then check the invariants each time."""
    import random
    import time

    from preserve.sip.sample import make_sample

    info = make_sample(tmp_path / "b", dossiers=4, docs=2, seed=61)
    repo = Repository.init(tmp_path / "repo", offsite=False)
    repo.close()
    tier = repo.root / "tiers/primary"
    rng = random.Random(2026)
    for _ in range(5):
        proc = subprocess.Popen([PRESERVE, "ingest", str(info.root), "--repo", str(repo.root), "--json"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.4, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with Repository.open(repo.root) as r:
            registered = {a["id"].removeprefix("uuid-") for a in r.list_aips()}
            assert {p.name for p in _visible_aips(tier)} == registered
            assert r.catalog.verify_chain() == []
            assert r.catalog.counts()["dossiers"] == len(registered)
    proc = subprocess.run([PRESERVE, "ingest", str(info.root), "--repo", str(repo.root), "--json"], capture_output=True,
                          text=True)
    assert proc.returncode in (0, 1), proc.stderr
    with Repository.open(repo.root) as r:
        assert sorted(a["fileCode"] for a in r.list_aips()) == sorted(info.file_codes)
