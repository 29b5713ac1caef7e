"""`preserve demo` (what `make demo` runs) ends with three verified copies of every AIP."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PRESERVE = str(Path(sys.executable).parent / "preserve")


@pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed (make setup installs it)")
def test_demo_shows_three_copies(tmp_path):
    env = {**os.environ, "PRESERVE_OCR": "at-ingest"}  # the demo as a user runs it: OCR at ingest (the default)
    p = subprocess.run([PRESERVE, "demo", "--repo", str(tmp_path / "demo"), "--json"], capture_output=True,
                       text=True, env=env)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["aips"] == 4 and len(data["refused"]) == 1
    assert set(data["tiers"]) == {"primary", "secondary", "offsite"}
    assert all(t["aips"] == data["aips"] for t in data["tiers"].values())
    assert data["copies"] and all(c == {"primary": "ok", "secondary": "ok", "offsite": "ok"}
                                  for c in data["copies"].values())
    assert data["audit"]["replicas"] == 3 * data["aips"] and data["audit"]["damaged"] == 0
    assert data["damage"]["found"] == ["E-AUDIT-FILE-CORRUPTED"] and data["damage"]["repaired"] == ["repaired"]
    access = data["access"]
    assert access["status"] == "approved" and access["zip"].endswith(".zip") and Path(access["zip"]).is_file()
    assert access["pages"] >= 1
    # it ends with a search that finds a document by a word of its OCR text, with and without diacritics
    search = data["search"]
    assert search["source"] == "OCR" and search["found"], search
    assert search["plain"] != search["word"] and search["plain_rank"] and search["with_diacritics_rank"]
    ocr = sorted(Path(data["example_aip"]).glob("data/representations/ocr/data/*.pdf"))
    assert ocr, "the AIP has its OCR representation"
