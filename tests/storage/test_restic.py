"""The restic tier against the real restic binary and real temporary repositories.

Each restic run costs ~0.7 s here (restic derives the key with scrypt on every run), so one repository is made
and filled once per module; tests that change or damage it work on a copy of its folder.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from preserve.errors import ConfigError, StorageError
from preserve.storage.base import FileDigest, TierConflict, TierUnreachable
from preserve.storage.restic import (
    ResticLocked,
    ResticPasswordError,
    ResticRepositoryMissing,
    ResticTier,
    snapshot_trees,
)

RESTIC = shutil.which("restic")
pytestmark = pytest.mark.skipif(RESTIC is None, reason="the restic program is not installed (apt-get install restic)")

U1, U2, U3 = ("uuid-0b9f8a52-1c1e-4b1e-9a57-3f0d6a1c0001", "uuid-0b9f8a52-1c1e-4b1e-9a57-3f0d6a1c0002",
              "uuid-0b9f8a52-1c1e-4b1e-9a57-3f0d6a1c0003")
T1, T2, T3 = f"aips/0b/9f/{U1}/v1", f"aips/0b/9f/{U2}/v1", f"aips/ab/cd/{U3}/v1"
VN = "Tài liệu 01.pdf"


def make_tier(root: Path, repo: str = "offsite", password_file: str = "keys/restic-password", **extra) -> ResticTier:
    spec = {"kind": "restic", "repository": repo, "password_file": password_file,
            "cache_dir": str(root / "cache"), **extra}
    return ResticTier.from_spec("offsite", spec, root)


def write_sources(base: Path) -> None:
    """Three small AIP-like trees: a Vietnamese file name, nested folders, a 2 MiB file."""
    files = {
        f"{T1}/bagit.txt": b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
        f"{T1}/data/{VN}": "Nội dung tài liệu số 01 — Tỉnh ủy".encode() * 50,
        f"{T1}/data/objects/scan 002.tif": bytes(range(256)) * 40,
        f"{T2}/bagit.txt": b"BagIt-Version: 1.0\n",
        f"{T2}/data/large.bin": hashlib.sha256(b"seed").digest() * (2 * 1024 * 1024 // 32),
        f"{T3}/bagit.txt": b"BagIt-Version: 1.0\n",
        f"{T3}/data/empty.txt": b"",
    }
    for rel, data in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)


def source_digests(base: Path, rel: str) -> dict[str, tuple[int, str]]:
    root = base / rel
    return {p.relative_to(root).as_posix(): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in root.rglob("*") if p.is_file()}


def got(digests: list[FileDigest]) -> dict[str, tuple[int, str]]:
    return {d.path: (d.size, d.digests["sha256"]) for d in digests}


def copy_root(src: Path, dest: Path) -> Path:
    """A copy of a test root (repository, password, sources), with its own restic cache."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("cache"))
    return dest


class Counter:
    def __init__(self):
        self.n = 0

    def advance(self, n: int = 1) -> None:
        self.n += n


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """An initialised repository holding T1, T2, T3 in one put_trees call, and what that call returned."""
    root = tmp_path_factory.mktemp("restic") / "root"
    (root / "keys").mkdir(parents=True)
    (root / "keys" / "restic-password").write_text("mật khẩu thử nghiệm\n", encoding="utf-8")
    write_sources(root / "src")
    tier = make_tier(root)
    tier.initialise()
    before = tier.restic.snapshots()
    progress = Counter()
    back = tier.put_trees(root / "src", [T1, T2, T3], ("sha256", "md5"), progress=progress)
    return {"root": root, "tier": tier, "before": before, "back": back, "progress": progress.n}


# --- writing and reading back ------------------------------------------------------------------------------------
def test_put_trees_makes_one_tagged_snapshot_and_reads_it_back(filled):
    root, tier, back = filled["root"], filled["tier"], filled["back"]
    snaps = tier.restic.snapshots()
    assert filled["before"] == [] and len(snaps) == 1
    assert set(snaps[0]["tags"]) == {"preserve", f"path={T1}", f"path={T2}", f"path={T3}"}
    assert snapshot_trees(snaps[0]) == {T1, T2, T3}
    for rel in (T1, T2, T3):
        assert got(back[rel]) == source_digests(root / "src", rel)
    assert f"data/{VN}" in got(back[T1]) and "data/objects/scan 002.tif" in got(back[T1])
    assert got(back[T2])["data/large.bin"][0] == 2 * 1024 * 1024
    assert all(set(d.digests) == {"sha256", "md5"} for d in back[T1])
    assert filled["progress"] == sum(s for r in (T1, T2, T3) for s, _ in source_digests(root / "src", r).values())


def test_fetch_tree_writes_one_tree_from_one_dump(filled, tmp_path):
    root, tier = filled["root"], filled["tier"]
    got_back = tier.fetch_tree(T1, tmp_path / "out", ("sha256",), keep=lambda n: n == "bagit.txt")
    assert got(got_back) == source_digests(root / "src", T1) == source_digests(tmp_path / "out", "")
    assert [d.content is not None for d in got_back].count(True) == (1 if (root / "src" / T1 / "bagit.txt").exists()
                                                                     else 0)
    with pytest.raises(FileNotFoundError):
        tier.fetch_tree("aips/00/00/none/v1", tmp_path / "none")


def test_snapshot_holds_relative_paths(filled):
    """restic 0.14, run from the base folder: the tree holds /aips/…; `paths` records the absolute sources."""
    tier = filled["tier"]
    snap = tier.snapshots()[-1]
    assert sorted(snap["paths"]) == sorted(str(filled["root"] / "src" / r) for r in (T1, T2, T3))
    nodes = {n["path"]: n for n in tier.restic.ls(snap["id"], f"/{T1}")}
    assert nodes[f"/{T1}/data/{VN}"]["type"] == "file"
    assert nodes[f"/{T1}"]["type"] == "dir"


def test_exists_list_open_stat_and_aip_paths(filled):
    tier = filled["tier"]
    tier.invalidate()
    assert tier.aip_paths() == {T1, T2, T3}
    assert tier.exists(T1) and tier.exists("aips") and tier.exists("aips/ab")
    assert not tier.exists("aips/ff") and not tier.exists(f"aips/0b/9f/{U1}/v2")
    assert tier.exists(f"{T1}/data/{VN}") and not tier.exists(f"{T1}/data/absent.pdf")
    paths = [f.path for f in tier.list("")]
    assert paths == sorted(paths) and len(paths) == 7 and f"{T1}/data/{VN}" in paths
    assert [f.path for f in tier.list(f"{T1}/data/objects")] == [f"{T1}/data/objects/scan 002.tif"]
    info = tier.stat(f"{T2}/data/large.bin")
    assert info is not None and info.size == 2 * 1024 * 1024 and tier.stat(T2) is None
    with tier.open(f"{T1}/data/{VN}") as f:
        assert f.read() == (filled["root"] / "src" / T1 / "data" / VN).read_bytes()
    with pytest.raises(FileNotFoundError):
        tier.open(f"{T1}/data/absent.pdf")
    with pytest.raises(FileNotFoundError):
        tier.open("aips/ff/ff/nothing/v1/bagit.txt")
    first = tier.read_tree(T2)
    assert next(first).path == "bagit.txt"
    first.close()  # restic is still writing the 2 MiB file: it is interrupted and must remove its lock
    assert not os.listdir(Path(tier.location) / "locks")


def test_snapshot_list_is_cached(filled, monkeypatch):
    tier = filled["tier"]
    tier.invalidate()
    calls = []
    real = tier.restic.snapshots
    monkeypatch.setattr(tier.restic, "snapshots", lambda tags=None: calls.append(tags) or real(tags))
    assert all(tier.exists(r) for r in [T1, T2, T3] * 300)
    assert calls == [["preserve"]]


def test_second_put_of_a_tree_is_a_conflict(filled):
    root, tier = filled["root"], filled["tier"]
    with pytest.raises(TierConflict, match=T1):
        tier.put_tree(root / "src", T1)
    with pytest.raises(TierConflict):
        tier.put_trees(root / "src", [f"aips/ab/cd/{U3}/v9", T2])
    tier.invalidate()
    assert len(tier.snapshots()) == 1


def test_check_intact_repository(filled):
    res = filled["tier"].restic.check("1/3")
    assert res == {"ok": True, "errors": [], "output": res["output"]} and "no errors were found" in res["output"]


# --- damage ----------------------------------------------------------------------------------------------------
def corrupt_packs(repo: Path) -> None:
    """Flip one byte in every 16 of every pack: every blob (≥ 32 bytes of IV and MAC) is hit."""
    for pack in (repo / "data").rglob("*"):
        if pack.is_file():
            pack.chmod(0o600)
            data = bytearray(pack.read_bytes())
            for i in range(0, len(data), 16):
                data[i] ^= 0xFF
            pack.write_bytes(bytes(data))


def test_corrupted_pack_fails_read_back_and_check(filled, tmp_path):
    root = copy_root(filled["root"], tmp_path / "root")
    tier = make_tier(root)
    corrupt_packs(root / "offsite")
    # restic stops the tar mid-stream with exit 1 (or 2): the read raises, it never yields a wrong digest
    with pytest.raises(StorageError, match="damaged data.*ciphertext verification failed") as e:
        list(tier.read_tree(T1))
    assert not isinstance(e.value, TierUnreachable)
    res = tier.restic.check("1/1")
    assert res["ok"] is False and any("Pack ID does not match" in ln for ln in res["errors"])
    assert not any(ln.startswith("Fatal:") for ln in res["errors"])


# --- deleting, single files, the event log backup ----------------------------------------------------------------
def test_delete_put_file_and_plain_backup(filled, tmp_path):
    root = copy_root(filled["root"], tmp_path / "root")
    tier = make_tier(root)
    with pytest.raises(StorageError, match="shared snapshot"):
        tier.delete(T1)
    assert tier.aip_paths() == {T1, T2, T3}
    (root / "src" / "aips/ee/ee/uuid-4/v1").mkdir(parents=True)
    (root / "src" / "aips/ee/ee/uuid-4/v1/bagit.txt").write_text("x")
    back = tier.put_tree(root / "src", "aips/ee/ee/uuid-4/v1")
    assert [d.path for d in back] == ["bagit.txt"]
    assert tier.exists("aips/ee/ee/uuid-4/v1")
    tier.delete("aips/ee/ee/uuid-4/v1")
    assert not tier.exists("aips/ee/ee/uuid-4/v1") and tier.aip_paths() == {T1, T2, T3}
    tier.delete("aips/ee/ee/uuid-4/v1")  # nothing there: not an error
    written = tier.put_file(root / "src" / T3 / "bagit.txt", "eventlog/head.txt")
    assert written.digests["sha256"] == hashlib.sha256(b"BagIt-Version: 1.0\n").hexdigest()
    summary = tier.restic.backup(root / "src", ["aips/ab"], ["preserve", "eventlog"])  # as offsite.py does
    assert len(summary["snapshot_id"]) == 8
    tier.invalidate()
    assert set(tier.trees()) == {T1, T2, T3, "eventlog/head.txt"}  # untagged trees are not the tier's


# --- failures ----------------------------------------------------------------------------------------------------
def test_wrong_password(filled, tmp_path):
    (tmp_path / "wrong").write_text("not the password\n")
    tier = make_tier(filled["root"], password_file=str(tmp_path / "wrong"))
    with pytest.raises(ResticPasswordError) as e:
        tier.check()
    assert isinstance(e.value, TierUnreachable) and "password is wrong" in str(e.value)
    assert str(tmp_path / "wrong") in e.value.hint
    assert "not the password" not in str(e.value)


def test_missing_or_empty_password_file(filled, tmp_path):
    tier = make_tier(filled["root"], password_file=str(tmp_path / "absent"))
    with pytest.raises(ResticPasswordError, match="cannot read the password file") as e:
        tier.exists(T1)
    assert str(tmp_path / "absent") in e.value.hint
    (tmp_path / "empty").write_text("")
    with pytest.raises(ResticPasswordError, match="password is wrong"):  # restic then reads stdin: /dev/null
        make_tier(filled["root"], password_file=str(tmp_path / "empty")).check()


def test_missing_repository(filled, tmp_path):
    tier = make_tier(filled["root"], repo=str(tmp_path / "no-repo"))
    with pytest.raises(ResticRepositoryMissing, match="no restic repository") as e:
        tier.check()
    assert isinstance(e.value, TierUnreachable) and "preserve tiers init offsite" in e.value.hint
    with pytest.raises(TierUnreachable):
        tier.free_space()
    assert tier.total_space() is None


def test_unreachable_server(filled):
    tier = make_tier(filled["root"], repo="rest:http://127.0.0.1:9/preserve")
    with pytest.raises(TierUnreachable, match="not reachable") as e:
        tier.check()
    assert not isinstance(e.value, ResticRepositoryMissing) and tier.free_space() is None


def test_restic_absent(filled, tmp_path):
    for tier in (make_tier(filled["root"], restic_bin=str(tmp_path / "restic")),
                 make_tier(filled["root"], env={"PATH": str(tmp_path)})):
        with pytest.raises(TierUnreachable, match="restic program") as e:
            tier.check()
        assert "apt-get install restic" in e.value.hint


def write_exclusive_lock(tier: ResticTier) -> Path:
    """A fresh exclusive lock of this process and host, encrypted with the repository's master key the way
    restic writes locks (AES-256-CTR, Poly1305-AES MAC; file name = SHA-256 of the file)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.poly1305 import Poly1305

    key = json.loads(tier.restic.run(["--no-lock", "cat", "masterkey"]))
    enc, mac_k, mac_r = (base64.b64decode(x) for x in (key["encrypt"], key["mac"]["k"], key["mac"]["r"]))
    plain = json.dumps({"time": datetime.now(UTC).isoformat(), "exclusive": True,
                        "hostname": socket.gethostname(), "username": "test", "pid": os.getpid(),
                        "uid": os.getuid(), "gid": os.getgid()}).encode()
    iv = os.urandom(16)
    ct = Cipher(algorithms.AES(enc), modes.CTR(iv)).encryptor().update(plain)
    s = Cipher(algorithms.AES(mac_k), modes.ECB()).encryptor().update(iv)
    data = iv + ct + Poly1305.generate_tag(mac_r + s, ct)
    path = Path(tier.location) / "locks" / hashlib.sha256(data).hexdigest()
    path.write_bytes(data)
    return path


def test_exclusive_lock(filled, tmp_path):
    root = copy_root(filled["root"], tmp_path / "root")
    tier = make_tier(root)
    lock = write_exclusive_lock(tier)
    with pytest.raises(ResticLocked, match="locked by another restic process") as e:
        tier.check()
    assert not isinstance(e.value, TierUnreachable)
    assert f"restic --repo {tier.location} --password-file {root}/keys/restic-password unlock" in e.value.hint
    assert "Wait" in e.value.hint
    with pytest.raises(ResticLocked, match="locked exclusively by PID"):
        tier.exists(T1)
    lock.unlink()
    tier.check()


def test_lock_held_by_a_running_restic(filled, tmp_path):
    """A real `restic backup --stdin` waiting on its input holds a (shared) lock: check and forget, which need
    an exclusive one, are refused; the tier's reads still work."""
    root = copy_root(filled["root"], tmp_path / "root")
    tier = make_tier(root)
    holder = subprocess.Popen([RESTIC, "--repo", tier.location, "--password-file", tier.restic.password_file,
                               "backup", "--stdin", "--stdin-filename", "held.txt"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=tier.restic.env)
    try:
        deadline = time.monotonic() + 20
        while not os.listdir(Path(tier.location) / "locks"):
            assert holder.poll() is None and time.monotonic() < deadline, "restic did not take its lock"
            time.sleep(0.05)
        with pytest.raises(ResticLocked, match="already locked by PID"):
            tier.restic.check()
        with pytest.raises(ResticLocked):
            tier.restic.forget([tier.snapshots()[0]["id"]])
    finally:
        holder.send_signal(signal.SIGINT)
        holder.wait(20)
    assert not os.listdir(Path(tier.location) / "locks")


# --- configuration -------------------------------------------------------------------------------------------
def test_from_spec(tmp_path):
    t = ResticTier.from_spec("off", {"kind": "restic", "repository": "offsite", "password_file": "keys/pw"}, tmp_path)
    assert t.location == str(tmp_path / "offsite") and t.restic.password_file == str(tmp_path / "keys/pw")
    assert t.local_path == tmp_path / "offsite" and t.kind == "restic" and t.atomic_publish
    url = "sftp:backup@example.org:/srv/restic"
    t = ResticTier.from_spec("off", {"repository": url, "password_file": "/etc/pw", "env": {"A": "1"}}, tmp_path)
    assert t.location == url and t.local_path is None and t.free_space() is None and t.restic.env["A"] == "1"
    with pytest.raises(ConfigError, match="no repository") as e:
        ResticTier.from_spec("off", {"password_file": "k"}, tmp_path)
    assert "[tiers.off]" in e.value.hint
    with pytest.raises(ConfigError, match="no password_file"):
        ResticTier.from_spec("off", {"repository": "r"}, tmp_path)
    with pytest.raises(StorageError, match="comma"):
        t.put_tree(tmp_path, "aips/a,b")


def test_environment_is_cleaned(monkeypatch, tmp_path):
    monkeypatch.setenv("RESTIC_PASSWORD", "leak")
    monkeypatch.setenv("RESTIC_REPOSITORY", "/elsewhere")
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("RESTIC_CACHE_DIR", raising=False)
    env = ResticTier("off", str(tmp_path), tmp_path / "pw").restic.env
    assert "RESTIC_PASSWORD" not in env and "RESTIC_REPOSITORY" not in env and env["RESTIC_CACHE_DIR"]
