"""The users and access commands as an officer runs them: --json shapes and exit codes 0/1/2 (the rules
themselves are tested through the façade, which the commands only call)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PRESERVE = str(Path(sys.executable).parent / "preserve")


def run(repo, *args, stdin=None):
    return subprocess.run([PRESERVE, *map(str, args), "--repo", str(repo.root)], capture_output=True, text=True,
                          input=stdin, env={**os.environ})


def test_users_commands(world, tmp_path):
    repo = world[0]
    pw = tmp_path / "pw"
    pw.write_text("mat-khau-cua-toi-1\n", encoding="utf-8")
    p = run(repo, "users", "add", "cli-doc", "--role", "reader", "--full-name", "Phạm Thu Hà", "--fonds", "TU-HD",
            "--password-file", pw, "--json")
    assert p.returncode == 0, p.stderr
    u = json.loads(p.stdout)
    assert (u["name"], u["role"], u["fonds"], u["can_sign_in"]) == ("cli-doc", "reader", ["TU-HD"], True)
    assert repo.users().authenticate("cli-doc", "mat-khau-cua-toi-1") is not None  # the newline is not in it
    p = run(repo, "users", "passwd", "cli-doc", "--password-file", "-", stdin="mot-mat-khau-khac\n")
    assert p.returncode == 0, p.stderr
    assert repo.users().authenticate("cli-doc", "mot-mat-khau-khac") is not None
    p = run(repo, "users", "add", "x2", "--role", "chief")
    assert p.returncode == 2 and "Unknown role" in p.stderr
    p = run(repo, "users", "passwd", "cli-doc", "--password-file", tmp_path / "none")
    assert p.returncode == 2 and "Cannot read the password file" in p.stderr


def test_request_json_shape_and_exit_codes(world):
    repo, docs, _, _ = world
    p = run(repo, "access", "request", "--doc", docs["open"], "--user", "reader", "--purpose", "Tra cứu", "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert set(data) == {"id", "status", "reason"} and data["status"] == "approved"
    p = run(repo, "access", "request", "--doc", docs["secret-mat"], "--user", "reader", "--purpose", "Tra cứu",
            "--json")
    assert p.returncode == 1
    data = json.loads(p.stdout)
    assert data["status"] == "refused" and data["reason"].startswith("E-ACC-SECRET-GRANT: ")
    p = run(repo, "access", "request", "--doc", "KHONG.1.1.001", "--user", "reader", "--purpose", "Tra cứu")
    assert p.returncode == 2 and "No document" in p.stderr


def test_approve_and_the_log(world):
    repo, docs, _, _ = world
    rid = repo.access_requests().request("reader", "Nghiên cứu", doc=docs["conditional"])["id"]
    p = run(repo, "access", "approve", rid, "--by", "reader", "--reason", "tự duyệt", "--json")
    assert p.returncode == 1
    refused = json.loads(p.stdout)
    assert refused["status"] == "refused" and refused["code"] == "E-ACC-ROLE" and refused["id"] == rid
    p = run(repo, "access", "approve", rid, "--by", "archivist")
    assert p.returncode == 2 and "reason is required" in p.stderr
    p = run(repo, "access", "approve", rid, "--by", "archivist", "--reason", "Đúng mục đích", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["status"] == "approved"
    p = run(repo, "access", "log", "--user", "reader", "--json")
    events = [e for e in json.loads(p.stdout)["events"] if e["request"] == rid]
    assert [e["type"] for e in events] == ["access request", "access refusal", "access approval"]
