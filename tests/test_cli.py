"""The CLI as an officer uses it: exit codes 0/1/2, --json shapes, --repo and PRESERVE_HOME."""

import json
import os
import subprocess
import sys
from pathlib import Path


from preserve.sip.sample import make_sample

PRESERVE = str(Path(sys.executable).parent / "preserve")


def run(*args, env=None, cwd=None):
    return subprocess.run([PRESERVE, *map(str, args)], capture_output=True, text=True, env={**os.environ, **(env or {})},
                          cwd=cwd)


def test_init_layout_and_key_mode(tmp_path):
    p = run("init", tmp_path / "r", "--json")
    assert p.returncode == 0, p.stderr
    root = tmp_path / "r"
    for d in ("tiers/primary", "tiers/secondary", "offsite", "staging", "quarantine", "keys"):
        assert (root / d).is_dir(), d
    assert (root / "preserve.toml").is_file() and (root / "catalog.sqlite").is_file()
    assert (root / "keys/signing-key.pem").stat().st_mode & 0o777 == 0o600
    assert (root / "keys/restic-password").stat().st_mode & 0o777 == 0o600
    if (root / "offsite/config").exists():  # restic installed: the off-site repository exists
        assert (root / "offsite/keys").is_dir()
    assert run("init", root).returncode == 2  # never over an existing repository


def test_validate_exit_codes_and_json_shape(tmp_path, batch):
    p = run("validate", batch, "--json", "--repo", tmp_path / "none")
    assert p.returncode == 0, p.stdout + p.stderr
    data = json.loads(p.stdout)
    assert data["valid"] is True and isinstance(data["findings"], list)
    bad = make_sample(tmp_path / "bad", dossiers=1, docs=2, seed=3, defects=["bad-date"])
    p = run("validate", bad.root, "--json")
    assert p.returncode == 1
    data = json.loads(p.stdout)
    assert data["valid"] is False
    f = next(f for f in data["findings"] if f["code"] == "E-FIELD-DATE")
    assert set(f) >= {"code", "severity", "where", "message_vi", "message_en"} and f["severity"] == "error"
    assert "TaiLieu" in f["where"] or "tailieu" in f["where"]
    assert run("validate", tmp_path / "does-not-exist").returncode == 2
    assert run("validate").returncode == 2  # usage error
    assert run("frobnicate").returncode == 2


def test_ingest_list_show_events_json(tmp_path, batch):
    root = tmp_path / "r"
    assert run("init", root).returncode == 0
    p = run("ingest", batch, "--json", env={"PRESERVE_HOME": str(root)})
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert set(data) == {"aips", "refused", "findings", "replication"} and len(data["aips"]) == 2
    assert set(data["aips"][0]) == {"id", "fileCode", "path", "ocr"}  # ocr: derivatives made (0: OCR off in tests)
    rep = data["replication"]
    assert {"copied", "adopted", "failed", "copies", "under_replicated", "alerts"} <= set(rep)
    assert rep["copied"] == 4 and rep["failed"] == 0  # 2 AIPs × (secondary, offsite)
    assert {c["tier"] for c in rep["copies"]} == {"secondary", "offsite"}
    p = run("aips", "list", "--json", "--repo", root)
    rows = json.loads(p.stdout)
    assert p.returncode == 0 and {"id", "fileCode", "version", "documents", "pages", "bytes"} <= set(rows[0])
    p = run("aips", "show", rows[0]["id"], "--json", "--repo", root)
    info = json.loads(p.stdout)
    assert {"files", "replicas", "events"} <= set(info) and info["files"][0]["sha256"]
    p = run("events", "--aip", rows[0]["id"], "--json", "--repo", root)
    assert p.returncode == 0 and {e["type"] for e in json.loads(p.stdout)} >= {"ingestion"}
    assert run("events", "--verify", "--repo", root).returncode == 0
    assert run("aips", "show", "uuid-nope", "--repo", root).returncode == 2
    # a second ingest of the same batch: refused, exit 1
    assert run("ingest", batch, "--repo", root).returncode == 1


def test_commands_without_repository_say_what_to_do(tmp_path):
    p = run("aips", "list", "--repo", tmp_path / "nothing")
    assert p.returncode == 2 and "preserve init" in p.stderr


def test_keys_import(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    import datetime as dt

    root = tmp_path / "r"
    run("init", root)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Văn phòng Tỉnh ủy")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    kf, cf, other = tmp_path / "k.pem", tmp_path / "c.pem", tmp_path / "o.pem"
    kf.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other.write_bytes(other_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    assert run("keys", "import", other, cf, "--repo", root).returncode == 2  # key does not match the certificate
    p = run("keys", "import", kf, cf, "--repo", root, "--json")
    assert p.returncode == 0, p.stderr
    assert "Văn phòng Tỉnh ủy" in json.loads(p.stdout)["subject"]
    assert (root / "keys/signing-key.pem").stat().st_mode & 0o777 == 0o600


def _holey(shared_dir, tmp_path):
    """The suite's holey-bag has its holes filled; open one: remove a file that fetch.txt names."""
    import shutil

    dest = tmp_path / "holey"
    shutil.copytree(shared_dir / "bagit-conformance/v0.97/valid/holey-bag", dest)
    for p in [dest, *dest.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    (dest / "data/dir1/test3.txt").unlink()
    return dest


def test_bag_only(tmp_path, shared_dir):
    valid = shared_dir / "bagit-conformance/v1.0/valid/basicBag"
    p = run("validate", "--bag-only", valid, "--json")
    assert p.returncode == 0, p.stdout
    invalid = next((shared_dir / "bagit-conformance/v1.0/invalid").iterdir())
    p = run("validate", "--bag-only", invalid, "--json")
    assert p.returncode == 1 and json.loads(p.stdout)["valid"] is False
    holey = _holey(shared_dir, tmp_path)
    p = run("validate", "--bag-only", holey, "--json")
    assert p.returncode == 0 and any(f["code"] == "W-BAG-HOLEY" for f in json.loads(p.stdout)["findings"])


def test_holey_bag_is_refused_at_ingest(tmp_path, shared_dir):
    root = tmp_path / "r"
    run("init", root)
    p = run("ingest", _holey(shared_dir, tmp_path), "--repo", root, "--json")
    assert p.returncode == 1
    codes = {f["code"] for f in json.loads(p.stdout)["findings"]}
    assert "E-BAG-HOLEY" in codes


def test_bag_only_accepts_a_zipped_bag_and_finds_damage(tmp_path):
    from preserve.sip.sample import bag_sample, zip_sample

    info = make_sample(tmp_path / "b", dossiers=1, docs=1, seed=41)
    bag_sample(info.root, tmp_path / "bag")
    zip_sample(tmp_path / "bag", tmp_path / "bag.zip")
    p = run("validate", "--bag-only", tmp_path / "bag.zip", "--json")
    assert p.returncode == 0, p.stdout
    pdf = next((tmp_path / "bag/data").rglob("*.pdf"))
    pdf.write_bytes(pdf.read_bytes()[:-10] + b"0123456789")
    p = run("validate", "--bag-only", tmp_path / "bag", "--json")
    assert p.returncode == 1 and "E-BAG-DIGEST" in {f["code"] for f in json.loads(p.stdout)["findings"]}
    root = tmp_path / "r"
    run("init", root)
    p = run("ingest", tmp_path / "bag", "--repo", root, "--json")  # an invalid bag refuses the whole batch
    assert p.returncode == 1 and json.loads(p.stdout)["aips"] == []


def test_keys_generate_replace_keeps_the_old_pair(tmp_path):
    root = tmp_path / "r"
    run("init", root)
    assert run("keys", "generate", "--repo", root).returncode == 2  # a pair exists: say so, change nothing
    old = (root / "keys/signing-cert.pem").read_bytes()
    p = run("keys", "generate", "--replace", "--organisation", "Văn phòng Tỉnh ủy", "--repo", root, "--json")
    assert p.returncode == 0, p.stderr
    assert (root / "keys/signing-cert.pem").read_bytes() != old
    assert [q for q in (root / "keys").iterdir() if q.name.startswith("signing-cert.pem.")]
    assert (root / "keys/signing-key.pem").stat().st_mode & 0o777 == 0o600


def test_user_errors_exit_2_and_say_what_to_do(tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something.txt").write_text("x")
    p = run("init", busy)
    assert p.returncode == 2 and "empty" in p.stderr
    p = run("sample-sip", tmp_path / "s", "--defects", "no-such-defect")
    assert p.returncode == 2 and "--list-defects" in p.stderr
    assert run("sample-sip", tmp_path / "s2", "--dossiers", "1", "--docs", "1").returncode == 0
    p = run("sample-sip", tmp_path / "s2", "--dossiers", "1", "--docs", "1")
    assert p.returncode == 2 and "→" in p.stderr
    root = tmp_path / "r"
    run("init", root)
    (root / "preserve.toml").write_text("[repository\nbroken", encoding="utf-8")
    p = run("aips", "list", "--repo", root)
    assert p.returncode == 2 and "not valid TOML" in p.stderr and "→" in p.stderr
