"""The full disaster, as an officer would live it, with the commands of the runbook (docs/operations.md §4):

1. init, ingest a sample, replicate, back up off-site;
2. the server room floods: both local tiers and the catalog are gone;
3. preserve restore --from offsite --all --into primary;
4. preserve catalog rebuild --from primary;
5. preserve replicate;
6. preserve audit --all;
7. zero bytes differ from the original AIPs, on both local tiers, and the catalog matches the lost one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from preserve.repository import Repository
from preserve.sip.sample import make_sample

PRESERVE = str(Path(sys.executable).parent / "preserve")
pytestmark = pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed (make setup)")


def run(root: Path, *args: str) -> tuple[int, dict]:
    p = subprocess.run([PRESERVE, *args, "--repo", str(root), "--json"], capture_output=True, text=True,
                       env={**os.environ})
    try:
        return p.returncode, json.loads(p.stdout)
    except ValueError:
        raise AssertionError(f"{args}: exit {p.returncode}\n{p.stdout}\n{p.stderr}") from None


def aip_bytes(tier: Path) -> dict[str, str]:
    """Every file of every AIP on a tier folder, by path: its SHA-256 (the tier's own marker left out)."""
    return {p.relative_to(tier).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((tier / "aips").rglob("*")) if p.is_file()}


def test_the_archive_comes_back_from_the_offsite_copy(tmp_path):
    root = tmp_path / "repo"
    Repository.init(root, "Lưu trữ lịch sử Tỉnh ủy (diễn tập thảm họa)").close()
    with Repository.open(root) as repo:  # users and a request: rows no AIP holds, which must come back too
        repo.users().add("bandoc", "reader", full_name="Nguyễn Thị Hòa", password="mat-khau-du-dai")
    batch = make_sample(tmp_path / "lo", dossiers=3, docs=2, seed=31, pages=(1, 2)).root
    code, ingest = run(root, "ingest", str(batch))
    assert code == 0 and len(ingest["aips"]) == 3
    with Repository.open(root) as repo:
        repo.access_requests().request("bandoc", "Nghiên cứu", dossier=ingest["aips"][0]["fileCode"])
    code, backup = run(root, "offsite", "backup")
    assert code == 0 and backup["ok"]
    original = {t: aip_bytes(root / "tiers" / t) for t in ("primary", "secondary")}
    assert original["primary"] == original["secondary"] and len(original["primary"]) > 30
    shutil.copy(root / "catalog.sqlite", tmp_path / "lost-catalog.sqlite")  # kept only to compare with

    # 2. the flood
    shutil.rmtree(root / "tiers" / "primary")
    shutil.rmtree(root / "tiers" / "secondary")
    (root / "catalog.sqlite").unlink()

    # 3. every AIP back from the off-site copy, each verified before it counts
    code, restored = run(root, "restore", "--from", "offsite", "--all", "--into", "primary")
    assert code == 0, restored
    assert restored["restored"] == 3 and restored["failed"] == 0
    assert all(not a["catalog"] for a in restored["aips"])  # no catalog: the manifests and signature decided

    # 4. the catalog, from the restored AIPs and the event log's backup
    code, rebuilt = run(root, "catalog", "rebuild", "--from", "primary")
    assert code == 0, rebuilt
    assert rebuilt["registered"] == 3 and rebuilt["problems"] == []
    assert rebuilt["events"]["imported"] > 0 and rebuilt["events"]["recovery"] == 3
    assert rebuilt["access"]["users"] == 1 and rebuilt["access"]["requests"] == 1
    assert rebuilt["tiers_set_up"] == ["secondary"]

    # 5. the second local copy
    code, rep = run(root, "replicate")
    assert code == 0 and rep["copied"] == 3 and rep["under_replicated"] == []

    # 6. every copy re-read
    code, audit = run(root, "audit", "--all")
    assert code == 0 and audit["damaged"] == 0 and audit["replicas"] == 9 and audit["unreachable"] == []

    # 7. zero bytes differ, and the catalog matches the one lost
    for tier in ("primary", "secondary"):
        assert aip_bytes(root / "tiers" / tier) == original["primary"], tier
    code, diff = run(root, "catalog", "compare", "--with", str(tmp_path / "lost-catalog.sqlite"))
    assert code == 0 and diff["equal"], diff["differences"][:10]
    assert diff["counts"]["a"] == diff["counts"]["b"]
    assert set(diff["added_events"]) <= {"recovery", "replication", "fixity check"}
    code, chain = run(root, "events", "verify")
    assert code == 0, chain
    with Repository.open(root) as repo:
        assert repo.users().authenticate("bandoc", "mat-khau-du-dai") is not None
