"""Faults a user or the machine can cause during ingest: an unmounted tier, a full disk, a second ingest."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from preserve.errors import StorageError, UsageError
from preserve.ingest import ingest_lock
from preserve.sip.sample import make_sample

PRESERVE = str(Path(sys.executable).parent / "preserve")


def test_absent_primary_tier_is_unreachable_not_created(repo, batch):
    tier = repo.root / "tiers/primary"
    shutil.rmtree(tier)  # the disk is not mounted
    with pytest.raises(StorageError, match="not reachable"):
        repo.ingest(batch)
    assert not tier.exists()
    assert repo.list_aips() == []
    p = subprocess.run([PRESERVE, "ingest", str(batch), "--repo", str(repo.root)], capture_output=True, text=True)
    assert p.returncode == 2 and "Mount the disk" in p.stderr


def test_second_ingest_at_once_is_refused(repo, batch):
    with ingest_lock(repo.root / "staging"):
        with pytest.raises(UsageError, match="Another ingest"):
            repo.ingest(batch)


@pytest.fixture
def small_fs(tmp_path):
    """A real 3 MiB filesystem (tmpfs) mounted for the test; skipped where mounting is not allowed."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {p.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("where", ["staging", "tier"])
def test_full_disk_leaves_nothing_half_written(repo, tmp_path, small_fs, where):
    """The disk fills while an AIP is staged (or while it is copied to a tier on another filesystem):
    exit 2, no partial AIP visible, no catalog rows for it, and AIPs that did fit are whole."""
    info = make_sample(tmp_path / "big", dossiers=4, docs=3, seed=51, pages=(3, 4))
    target = repo.root / ("staging" if where == "staging" else "tiers/primary")
    shutil.rmtree(target)
    target.symlink_to(small_fs)  # the folder now lives on the small filesystem
    if where == "tier":
        from preserve.storage.local import write_marker

        write_marker("primary", small_fs)  # a new disk set up for the tier (`preserve tiers init`)
    p = subprocess.run([PRESERVE, "ingest", str(info.root), "--repo", str(repo.root)], capture_output=True, text=True)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Free space" in p.stderr
    aips = repo.list_aips()
    assert len(aips) < 4
    tier = repo.root / "tiers/primary"
    visible = [d for d in tier.glob("aips/*/*/*") if not d.name.startswith(".")]
    assert sorted(d.name for d in visible) == sorted(a["id"].removeprefix("uuid-") for a in aips)
    for d in visible:
        assert (d / "v1/tagmanifest-sha256.txt.p7s").is_file()
    assert not list(tier.glob("aips/*/*/.*"))  # no partial copies left
    assert repo.catalog.verify_chain() == []
