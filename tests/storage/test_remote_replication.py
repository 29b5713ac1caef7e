"""Replication to network tiers through a whole repository: an SFTP server that goes away in the middle of
replication and comes back (zero copies lost), and the restic off-site tier reached over SFTP, as at a second
site. Both against a real OpenSSH server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import shlex
import shutil
from pathlib import Path

import pytest
import tomli_w

from preserve.config import CONFIG_NAME
from preserve.repository import Repository
from preserve.sip.sample import make_sample

REPO = Path(__file__).resolve().parents[2]


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def add_tier(root: Path, name: str, spec: dict, copy_tiers: list[str], policy: str = "local-only") -> None:
    """Declare a tier in preserve.toml and name it among the copy tiers of the repository's own policy."""
    import tomllib

    cfg = tomllib.loads((root / CONFIG_NAME).read_text(encoding="utf-8"))
    cfg["tiers"][name] = spec
    (root / CONFIG_NAME).write_text(tomli_w.dumps(cfg), encoding="utf-8")
    text = (REPO / "storage_policies" / f"{policy}.yaml").read_text(encoding="utf-8")
    required = len(copy_tiers)
    text = text.replace("tiers: [primary, secondary]", f"tiers: [{', '.join(copy_tiers)}]")
    text = text.replace("required: 2", f"required: {required}")
    (root / "storage_policies").mkdir(exist_ok=True)
    (root / "storage_policies" / f"{policy}.yaml").write_text(text, encoding="utf-8")


class _StopServer:
    """A progress sink that stops the SFTP server once `after` bytes have gone out."""

    def __init__(self, server, after: int):
        self.server, self.after, self.seen, self.stopped = server, after, 0, False

    def start(self, label, total, unit="items"):
        pass

    def advance(self, n=1):
        self.seen += n
        if not self.stopped and self.seen >= self.after:
            self.server.stop()
            self.stopped = True

    def done(self):
        pass


def test_sftp_server_lost_mid_replication_then_back_loses_no_copy(tmp_path, own_sshd):
    root = tmp_path / "repo"
    Repository.init(root, "Lưu trữ (test)", offsite=False).close()
    remote = tmp_path / "nas-site2"
    remote.mkdir()
    add_tier(root, "nas", own_sshd.spec(remote), ["primary", "secondary", "nas"])
    batch = make_sample(tmp_path / "b", dossiers=4, docs=2, seed=81, pages=(2, 3)).root
    with Repository.open(root) as repo:
        res = repo.ingest(batch, replicate=False)
        ids = [a["id"] for a in res.aips]
        first = repo.catalog.replication_state(ids)[0]
        # secondary (local) and nas (sftp) each get every AIP: stop the server during the nas copies
        stop = _StopServer(own_sshd, first["bytes"] * 2 + 300_000)
        result = repo.replicate(progress=stop)
        assert stop.stopped
        nas = {c["aip"]: c for c in result.copies if c["tier"] == "nas"}
        ok = [a for a, c in nas.items() if c["status"] == "copied"]
        bad = [c for c in nas.values() if c["status"] == "failed"]
        assert ok and bad and len(ok) + len(bad) == 4
        assert "E-REPL-UNREACHABLE" in {c["code"] for c in bad}
        assert all(c["status"] == "copied" for c in result.copies if c["tier"] == "secondary")
        # only whole, recorded copies are under the AIP paths on the server
        held = {p.parent.parent.name for p in remote.glob("aips/*/*/*/v1/bagit.txt")}
        assert held == {i.removeprefix("uuid-") for i in ok}
        # the server comes back
        own_sshd.start()
        again = repo.replicate()
        assert again.ok, again.to_dict()
        assert sorted(c["aip"] for c in again.copies) == sorted(set(ids) - set(ok))
        for i in ids:
            info = repo.show_aip(i)
            assert {r["tier"]: r["status"] for r in info["replicas"]} == \
                {"primary": "ok", "secondary": "ok", "nas": "ok"}
            assert digests(remote / info["path"]) == digests(root / "tiers/primary" / info["path"])
        assert repo.replicate().copies == []
        leftovers = list((remote / ".staging").iterdir()) if (remote / ".staging").exists() else []
        assert leftovers == [], "the upload cut off by the server's loss was cleaned on the next run"
        status = {r["tier"]: r for r in repo.tiers_status()}
        assert status["nas"]["reachable"] and status["nas"]["aips"] == 4 and status["nas"]["missing"] == 0


@pytest.mark.skipif(shutil.which("restic") is None or shutil.which("ssh") is None,
                    reason="restic and ssh are needed (make setup installs them)")
def test_restic_offsite_over_sftp(tmp_path, sshd):
    root = tmp_path / "repo"
    Repository.init(root, "Lưu trữ (test)", offsite=False).close()
    password = root / "keys" / "restic-password"
    assert password.is_file() and (password.stat().st_mode & 0o777) == 0o600
    site2 = tmp_path / "site2-restic"
    command = shlex.join(["ssh", "-i", str(sshd.key), "-p", str(sshd.port), "-o", "BatchMode=yes",
                          "-o", f"UserKnownHostsFile={sshd.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                          f"{sshd.user}@{sshd.host}", "-s", "sftp"])
    spec = {"kind": "restic", "repository": f"sftp:{sshd.user}@{sshd.host}:{site2}",
            "password_file": "keys/restic-password", "options": [f"sftp.command={command}"]}
    add_tier(root, "offsite", spec, ["primary", "secondary", "offsite"])
    batch = make_sample(tmp_path / "b", dossiers=2, docs=2, seed=82, pages=(1, 2)).root
    with Repository.open(root) as repo:
        assert repo.init_tier("offsite")["kind"] == "restic"
        assert (site2 / "config").is_file(), "restic init ran on the server"
        res = repo.ingest(batch)
        assert res.replication.ok, res.replication.to_dict()
        for a in res.aips:
            assert {r["tier"]: r["status"] for r in repo.show_aip(a["id"])["replicas"]}["offsite"] == "ok"
        backup = repo.offsite_backup()
        assert backup["ok"] and backup["eventlog"][0]["snapshot"]
        check = repo.offsite_check("1/1")
        assert check["ok"] and check["checks"][0]["tier"] == "offsite"
