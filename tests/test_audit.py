"""`preserve audit`, `preserve repair` and `preserve events verify` through the CLI: exit codes, JSON, events,
alerts, the HTML report, usage errors. (Every damage on every tier kind: tests/fixity/test_damage_matrix.py.)"""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

PRESERVE = str(Path(sys.executable).parent / "preserve")


def run(*args):
    return subprocess.run([PRESERVE, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "300"})


def alert_codes(root: Path) -> list[str]:
    p = root / "alerts.log"
    return [json.loads(x)["code"] for x in p.read_text().splitlines() if x.strip()] if p.exists() else []


@pytest.fixture
def stored(repo, batch):
    res = repo.ingest(batch)
    return repo, [a["id"] for a in res.aips]


def test_audit_all_then_damage_then_repair(stored, tmp_path):
    repo, ids = stored
    p = run("audit", "--due", "--repo", repo.root, "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["replicas"] == 0, "copies verified at ingest are not due"
    report = tmp_path / "bao-cao.html"
    p = run("audit", "--all", "--repo", repo.root, "--json", "--report", report)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["ok"] and data["replicas"] == 4 and data["tiers"]["primary"]["intact"] == 2
    for i in ids:
        checks = [e for e in repo.events(i) if e["type"] == "fixity check"]
        assert len(checks) == 2 and all(e["outcome"] == "success" for e in checks)
    assert "Báo cáo kiểm tra toàn vẹn" in report.read_text()
    # one flipped byte in a scan on the secondary tier
    info = repo.show_aip(ids[0])
    pdf = sorted((repo.root / "tiers/secondary" / info["path"]).rglob("*.pdf"))[0]
    raw = bytearray(pdf.read_bytes())
    raw[len(raw) // 3] ^= 0x01
    pdf.write_bytes(bytes(raw))
    p = run("audit", "--all", "--repo", repo.root, "--json", "--report", report)
    assert p.returncode == 1
    data = json.loads(p.stdout)
    (problem,) = data["problems"]
    assert problem["tier"] == "secondary" and problem["aip"] == ids[0]
    (f,) = problem["findings"]
    assert f["code"] == "E-AUDIT-FILE-CORRUPTED" and f["params"]["path"].endswith(pdf.name)
    assert f["params"]["expected"].startswith("sha256:") and f["params"]["found"].startswith("sha256:")
    html = report.read_text()
    assert pdf.name in html and f["params"]["expected"] in html and f["params"]["found"] in html
    assert f"preserve repair --aip {ids[0]} --tier secondary" in html
    assert "E-AUDIT-DAMAGE" in alert_codes(repo.root)
    assert {r["tier"]: r["status"] for r in repo.show_aip(ids[0])["replicas"]}["secondary"] == "damaged"
    p = run("repair", "--repo", repo.root, "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    (fix,) = json.loads(p.stdout)["repairs"]
    assert fix["status"] == "repaired" and fix["source"] == "primary"
    assert run("audit", "--all", "--repo", repo.root).returncode == 0
    assert run("repair", "--repo", repo.root, "--json").returncode == 0  # nothing left to repair


def test_unreachable_tier_exits_2_and_is_not_missing(stored):
    repo, ids = stored
    os.rename(repo.root / "tiers/secondary", repo.root / "tiers/secondary.unmounted")
    p = run("audit", "--all", "--repo", repo.root, "--json")
    assert p.returncode == 2, p.stdout + p.stderr
    data = json.loads(p.stdout)
    assert [u["tier"] for u in data["unreachable"]] == ["secondary"]
    assert data["tiers"]["primary"]["intact"] == 2 and "secondary" not in data["tiers"]
    assert "E-TIER-UNREACHABLE" in alert_codes(repo.root)
    for i in ids:
        assert {r["tier"]: r["status"] for r in repo.show_aip(i)["replicas"]}["secondary"] == "ok"


def test_audit_usage_errors_exit_2(stored):
    repo, _ = stored
    for args in (["--due", "--all"], ["--time-limit", "soon"], ["--tier", "nas9"],
                 ["--aip", "uuid-00000000-0000-0000-0000-000000000000"]):
        p = run("audit", *args, "--repo", repo.root)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
    p = run("repair", "--aip", "uuid-00000000-0000-0000-0000-000000000000", "--repo", repo.root)
    assert p.returncode == 2 and "aips list" in p.stderr


def test_events_verify_finds_an_edited_event(stored):
    repo, _ = stored
    p = run("events", "verify", "--repo", repo.root, "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["ok"] is True
    db = sqlite3.connect(repo.root / "catalog.sqlite")
    db.execute("UPDATE event SET detail = detail || ' (sửa)' WHERE seq = 3")
    db.commit()
    db.close()
    p = run("events", "verify", "--repo", repo.root, "--json")
    assert p.returncode == 1
    assert [x["code"] for x in json.loads(p.stdout)["problems"]] == ["E-CHAIN-EDITED"]
    assert run("events", "nonsense", "--repo", repo.root).returncode == 2


def test_a_remembered_signature_counts_only_while_its_certificate_is_trusted(stored, tmp_path):
    repo, ids = stored
    assert run("audit", "--all", "--repo", repo.root).returncode == 0
    db = sqlite3.connect(repo.root / "catalog.sqlite")
    (memo,) = db.execute("SELECT COUNT(*) FROM signature_verified").fetchone()
    db.close()
    assert memo == 2, "one verification per AIP, shared by its replicas"
    assert run("audit", "--all", "--repo", repo.root).returncode == 0  # from the memo
    # the repository stops trusting the certificate the AIPs were signed with
    from preserve.keys import generate_keys

    other = tmp_path / "other-keys"
    generate_keys(other, "Another organisation")
    for p in repo.settings.signing_cert.parent.glob(repo.settings.signing_cert.name + "*"):
        p.unlink()
    (other / "signing-cert.pem").rename(repo.settings.signing_cert)
    p = run("audit", "--all", "--repo", repo.root, "--json")
    assert p.returncode == 1
    codes = {f["code"] for a in json.loads(p.stdout)["problems"] for f in a["findings"]}
    assert codes == {"E-AUDIT-SIGNATURE"}
