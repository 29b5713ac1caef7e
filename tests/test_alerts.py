"""Alert delivery against real servers on 127.0.0.1: an aiosmtpd SMTP server and an HTTP server, both started
here. Mail and webhook get each problem once (reminders after remind_every, again when its params change, a
recovery message when resolved); a channel that is down never stops the caller nor the other channel."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import subprocess
import sys
import threading
import time
import tomllib
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import tomli_w
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from preserve.alerts import STATE_FILE, Alerter, read_alerts
from preserve.config import Settings, default_settings
from preserve.findings import Finding

PRESERVE = str(Path(sys.executable).parent / "preserve")
ORG = "Lưu trữ lịch sử Tỉnh ủy (thử)"
WEBHOOK_KEYS = {"source", "version", "kind", "repository", "root", "code", "severity", "problem", "tier", "aip",
                "where", "message_vi", "message_en", "hint_vi", "hint_en", "params", "at", "first_seen",
                "last_seen", "count"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------- servers
class Inbox:
    """aiosmtpd handler that keeps every message it accepts, parsed (headers decoded)."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content,
                                                      policy=email.policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
            return AuthResult(success=auth_data.password == b"mat-khau-bi-mat")
        return AuthResult(success=False)

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


@pytest.fixture
def smtp():
    inbox = Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=free_port(), authenticator=inbox.authenticate,
                     auth_require_tls=False)
    ctl.start()
    inbox.port = ctl.port
    yield inbox
    ctl.stop()


class Hook(ThreadingHTTPServer):
    daemon_threads = True
    status = 200
    delay = 0.0

    def __init__(self):
        super().__init__(("127.0.0.1", 0), HookHandler)
        self.bodies: list[dict] = []
        self.content_types: list[str] = []
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class HookHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.server.delay)
        if self.server.status == 200:
            self.server.bodies.append(json.loads(raw.decode("utf-8")))
            self.server.content_types.append(self.headers["Content-Type"])
        self.send_response(self.server.status)
        if self.server.status == 302:
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    h = Hook()
    yield h
    h.stop()


# ---------------------------------------------------------------------- helpers
def alerts_table(smtp=None, hook=None, **extra) -> dict:
    table: dict = {"remind_every": "24h", **extra.pop("top", {})}
    if smtp is not None:
        table["mail"] = {"host": "127.0.0.1", "port": smtp if isinstance(smtp, int) else smtp.port,
                         "from": "preserve@luutru.local", "to": ["phong.luutru@luutru.local", "van.thu@luutru.local"],
                         "min_severity": "error", **extra.pop("mail", {})}
    if hook is not None:
        table["webhook"] = {"url": hook if isinstance(hook, str) else hook.url, "min_severity": "warning",
                            "timeout": 5, **extra.pop("webhook", {})}
    return table


def settings_for(root: Path, table: dict) -> Settings:
    data = default_settings(ORG, offsite=False)
    data["alerts"].update(table)  # keeps the old email = [] beside the new tables, as an old repository has
    root.mkdir(parents=True, exist_ok=True)
    return Settings(root, data)


def alerter(tmp_path, smtp=None, hook=None, **extra) -> Alerter:
    return Alerter.for_settings(settings_for(tmp_path / "repo", alerts_table(smtp, hook, **extra)))


def repl_failed(detail="ổ đĩa không phản hồi") -> Finding:
    return Finding("E-REPL-FAILED", "secondary:aip/hs-01", {"aip": "hs-01", "tier": "secondary", "detail": detail})


def low_space() -> Finding:
    return Finding("W-TIER-LOW-SPACE", "secondary", {"tier": "secondary", "free": "1 GiB", "threshold": "10%"})


def state(a: Alerter) -> dict:
    return json.loads(a.state_path.read_text(encoding="utf-8"))


def log_of(a: Alerter) -> list[dict]:
    return read_alerts(a.log_path)


# ---------------------------------------------------------------------- delivery
def test_an_alert_reaches_mail_webhook_and_the_log(tmp_path, smtp, hook):
    (tmp_path / "repo/keys").mkdir(parents=True)
    (tmp_path / "repo/keys/smtp-password").write_text("mat-khau-bi-mat\n")
    a = alerter(tmp_path, smtp, hook, mail={"user": "preserve", "password_file": "keys/smtp-password"})
    got = a.alert(repl_failed(), tier="secondary", aip="hs-01")
    assert got.delivered == {"mail": None, "webhook": None} and a.raised == [got]
    assert smtp.logins == [("preserve", "mat-khau-bi-mat")], "login with the password file"
    (msg,) = smtp.messages
    assert msg["Subject"].startswith("[preserve] LỖI / ERROR E-REPL-FAILED: Sao chép AIP hs-01"), msg["Subject"]
    assert msg["From"] == "preserve@luutru.local"
    assert msg["To"] == "phong.luutru@luutru.local, van.thu@luutru.local"
    assert smtp.envelopes == [("preserve@luutru.local", ["phong.luutru@luutru.local", "van.thu@luutru.local"])]
    assert msg["X-Preserve-Code"] == "E-REPL-FAILED" and msg["X-Preserve-Kind"] == "alert"
    text = msg.get_content()
    f = repl_failed()
    for part in (f.message_vi, f.message_en, "ổ đĩa không phản hồi", "Cần làm / What to do:", "preserve replicate",
                 "Tầng lưu trữ / Tier: secondary", "AIP: hs-01", "Vị trí / Where: secondary:aip/hs-01", ORG,
                 str(tmp_path / "repo")):
        assert part in text, part
    assert text.index(f.message_vi) < text.index(f.message_en), "Vietnamese first"
    (body,) = hook.bodies
    assert hook.content_types == ["application/json; charset=utf-8"]
    assert set(body) == WEBHOOK_KEYS
    assert body["source"] == "preserve" and body["kind"] == "alert" and body["version"] == 1
    assert (body["code"], body["problem"], body["severity"]) == ("E-REPL-FAILED", "E-REPL-FAILED", "error")
    assert (body["tier"], body["aip"], body["where"]) == ("secondary", "hs-01", "secondary:aip/hs-01")
    assert body["message_vi"] == f.message_vi and body["message_en"] == f.message_en
    assert body["hint_vi"] and body["hint_en"] and body["params"]["detail"] == "ổ đĩa không phản hồi"
    assert body["repository"] == ORG and body["root"] == str(tmp_path / "repo")
    assert body["count"] == 1 and body["first_seen"] == body["at"] == got.at
    (line,) = log_of(a)
    assert line["code"] == "E-REPL-FAILED" and line["kind"] == "alert" and line["channels"] == ["mail", "webhook"]


def test_each_channel_has_its_minimum_severity(tmp_path, smtp, hook):
    a = alerter(tmp_path, smtp, hook)  # mail: error and above; webhook: warning and above
    a.alert(low_space(), tier="secondary")
    assert smtp.messages == [] and [b["code"] for b in hook.bodies] == ["W-TIER-LOW-SPACE"]
    a.alert(Finding("I-ALERT-TEST", "x", {"repository": "r"}))
    assert smtp.messages == [] and len(hook.bodies) == 1, "info is below both minimums"
    assert [x["code"] for x in log_of(a)] == ["W-TIER-LOW-SPACE", "I-ALERT-TEST"], "the log takes every severity"
    crit = alerter(tmp_path / "b", smtp, hook, mail={"min_severity": "critical"})
    crit.alert(repl_failed())
    assert smtp.messages == [] and len(hook.bodies) == 2


def test_a_problem_is_sent_once_again_when_it_changes_and_reminded_later(tmp_path, smtp, hook):
    a = alerter(tmp_path, smtp, hook)
    a.alert(repl_failed(), tier="secondary", aip="hs-01")
    again = a.alert(repl_failed(), tier="secondary", aip="hs-01")
    assert again.kind == "repeat" and again.delivered == {}
    assert len(smtp.messages) == 1 and len(hook.bodies) == 1, "the same open problem is not sent twice"
    (p,) = a.open_problems()
    assert p["count"] == 2 and p["sent"].keys() == {"mail", "webhook"} and p["last_seen"] >= p["first_seen"]
    assert [x["kind"] for x in log_of(a)] == ["alert", "repeat"]
    # the same code elsewhere is another problem
    a.alert(repl_failed(), tier="offsite", aip="hs-01")
    assert len(smtp.messages) == 2
    # changed params: sent again, as an alert
    changed = a.alert(repl_failed("hết thời gian chờ"), tier="secondary", aip="hs-01")
    assert changed.kind == "alert" and len(smtp.messages) == 3 and hook.bodies[-1]["kind"] == "alert"
    assert "hết thời gian chờ" in smtp.messages[-1]["Subject"]
    assert hook.bodies[-1]["count"] == 3, "count goes on for the same problem"
    # a day passes: the next raise is a reminder
    data = state(a)
    for p in data["problems"].values():
        p["last_sent"] = (datetime.fromisoformat(p["last_sent"]) - timedelta(days=2)).isoformat()
    a.state_path.write_text(json.dumps(data))
    r = a.alert(repl_failed("hết thời gian chờ"), tier="secondary", aip="hs-01")
    assert r.kind == "reminder" and r.delivered == {"mail": None, "webhook": None}
    assert smtp.messages[-1]["Subject"].startswith("[preserve] NHẮC LẠI / REMINDER LỖI / ERROR E-REPL-FAILED")
    assert hook.bodies[-1]["kind"] == "reminder" and hook.bodies[-1]["count"] == 4
    a.alert(repl_failed("hết thời gian chờ"), tier="secondary", aip="hs-01")
    assert len(smtp.messages) == 4, "the reminder restarted the clock"


def test_a_short_remind_every_reminds_after_it_passes(tmp_path, hook):
    a = alerter(tmp_path, hook=hook, top={"remind_every": "1s"})
    a.alert(low_space(), tier="secondary")
    time.sleep(2.05)  # now_iso has whole seconds
    assert a.alert(low_space(), tier="secondary").kind == "reminder"
    assert [b["kind"] for b in hook.bodies] == ["alert", "reminder"]


def test_resolve_tells_the_channels_that_got_the_alert(tmp_path, smtp, hook):
    a = alerter(tmp_path, smtp, hook)
    a.alert(low_space(), tier="secondary")                      # webhook only
    a.alert(repl_failed(), tier="secondary", aip="hs-01")       # both
    assert a.resolve("W-TIER-LOW-SPACE", tier="primary") == [], "another tier: nothing to close"
    (closed,) = a.resolve("W-TIER-LOW-SPACE", tier="secondary")
    assert closed["code"] == "W-TIER-LOW-SPACE"
    body = hook.bodies[-1]
    assert (body["kind"], body["code"], body["problem"], body["tier"]) == \
        ("resolved", "I-ALERT-RESOLVED", "W-TIER-LOW-SPACE", "secondary")
    assert "đã được khắc phục" in body["message_vi"] and "resolved" in body["message_en"]
    assert len(smtp.messages) == 1, "mail never got the warning, so it gets no recovery message for it"
    assert [p["code"] for p in a.open_problems()] == ["E-REPL-FAILED"]
    a.resolve("E-REPL-FAILED")  # None = any tier, aip, where
    assert smtp.messages[-1]["Subject"].startswith("[preserve] ĐÃ KHẮC PHỤC / RESOLVED E-REPL-FAILED: Sao chép")
    assert "Sự cố E-REPL-FAILED đã được khắc phục" in smtp.messages[-1].get_content()
    assert a.open_problems() == [] and [x["kind"] for x in log_of(a)][-2:] == ["resolved", "resolved"]
    a.alert(repl_failed(), tier="secondary", aip="hs-01")
    assert len(smtp.messages) == 3, "back after being resolved: a new problem, sent again"


# ---------------------------------------------------------------------- failures
def test_a_channel_that_is_down_never_stops_the_caller_nor_the_other(tmp_path, smtp, hook):
    down = free_port()  # nothing listens there
    a = alerter(tmp_path, down, hook)
    got = a.alert(repl_failed(), tier="secondary", aip="hs-01")
    assert got.delivered["webhook"] is None and "Connection" in got.delivered["mail"]
    assert len(hook.bodies) == 1, "the webhook still delivered"
    fail = [x for x in log_of(a) if x["kind"] == "delivery-failed"]
    assert [(x["code"], x["channel"], x["problem"]) for x in fail] == [("W-ALERT-CHANNEL-FAILED", "mail",
                                                                        "E-REPL-FAILED")]
    assert f"127.0.0.1:{down}" in fail[0]["message_en"] and "đang chạy" in fail[0]["hint_vi"]
    assert "is running and reachable" in fail[0]["hint_en"]
    (p,) = a.open_problems()
    assert set(p["sent"]) == {"webhook"} and "mail" in p["failed"]
    # the mail server is back (the settings point to it): the next raise retries mail only
    a.channels[0].port = smtp.port
    a.alert(repl_failed(), tier="secondary", aip="hs-01")
    assert len(smtp.messages) == 1 and len(hook.bodies) == 1
    assert a.open_problems()[0]["failed"] == {}
    # now the webhook answers 500 while mail works
    hook.status = 500
    got = a.alert(repl_failed("lỗi mới"), tier="secondary", aip="hs-01")
    assert got.delivered["mail"] is None and got.delivered["webhook"] == "HTTP 500 Internal Server Error"
    assert len(smtp.messages) == 2
    assert [x["channel"] for x in log_of(a) if x["kind"] == "delivery-failed"] == ["mail", "webhook"]


def test_starttls_against_a_server_without_it_is_a_clear_failure(tmp_path, smtp, hook):
    a = alerter(tmp_path, smtp, hook, mail={"starttls": True})
    got = a.alert(repl_failed())
    assert "STARTTLS" in got.delivered["mail"] and got.delivered["webhook"] is None
    assert smtp.messages == []
    (fail,) = [x for x in log_of(a) if x["kind"] == "delivery-failed"]
    assert "starttls" in fail["hint_en"] and "STARTTLS" in fail["message_en"]


def test_webhook_timeout_redirect_and_bad_settings_are_failures_not_crashes(tmp_path, hook):
    hook.delay = 1.0
    a = alerter(tmp_path, hook=hook, webhook={"timeout": 0.2})
    assert "timed out" in a.alert(low_space()).delivered["webhook"]
    hook.delay, hook.status = 0.0, 302
    assert alerter(tmp_path / "b", hook=hook).alert(low_space()).delivered["webhook"] == "HTTP 302 Found"
    bad = alerter(tmp_path / "c", smtp=2525, hook="ftp://x", mail={"host": ""}, top={"min_severity": "loud"})
    assert {c.name for c in bad.channels} == {"mail", "webhook"}
    got = bad.alert(repl_failed())
    assert "host is missing" in got.delivered["mail"] and "http://" in got.delivered["webhook"]
    assert any("min_severity" in e for e in bad.config_errors)
    results = {r["channel"]: r for r in bad.test()}
    assert not results["mail"]["ok"] and not results["webhook"]["ok"] and not results["config"]["ok"]


def test_old_settings_and_an_alerter_without_settings(tmp_path, hook):
    old = Alerter.for_settings(settings_for(tmp_path / "old", {}))  # email = [], webhook = "" as written before
    assert old.channels == []
    old.alert(repl_failed())
    assert [x["code"] for x in log_of(old)] == ["E-REPL-FAILED"]
    bare = Alerter.for_settings(settings_for(tmp_path / "url", {"webhook": hook.url}))  # a bare URL string
    bare.alert(low_space())
    assert [b["code"] for b in hook.bodies] == ["W-TIER-LOW-SPACE"]
    plain = Alerter(tmp_path / "plain/alerts.log")  # as in tests and scripts: no state, every raise logged
    plain.alert(repl_failed())
    plain.alert(repl_failed())
    assert len(read_alerts(tmp_path / "plain/alerts.log")) == 2 and len(plain.raised) == 2
    assert plain.open_problems() == [] and plain.resolve("E-REPL-FAILED") == []
    assert not (tmp_path / "plain/state").exists()


# ---------------------------------------------------------------------- two processes, one problem
RAISE = """
import sys, time
from pathlib import Path
from preserve.alerts import Alerter
from preserve.config import Settings
from preserve.findings import Finding
a = Alerter.for_settings(Settings.load(Path(sys.argv[1])))
while not Path(sys.argv[2]).exists():
    time.sleep(0.005)
a.alert(Finding("E-TIER-UNREACHABLE", "secondary", {"tier": "secondary", "detail": "absent"}), tier="secondary")
"""


def test_two_processes_raising_the_same_problem_send_it_once(repo_with_alerts, smtp, hook):
    root = repo_with_alerts(smtp, hook)
    go = root / "go"
    procs = [subprocess.Popen([sys.executable, "-c", RAISE, str(root), str(go)]) for _ in range(3)]
    time.sleep(0.8)
    go.touch()
    assert [p.wait(20) for p in procs] == [0, 0, 0]
    assert len(smtp.messages) == 1 and len(hook.bodies) == 1
    kinds = sorted(x["kind"] for x in read_alerts(root / "alerts.log"))
    assert kinds == ["alert", "repeat", "repeat"]
    (p,) = json.loads((root / STATE_FILE).read_text())["problems"].values()
    assert p["count"] == 3


# ---------------------------------------------------------------------- the CLI
def run(*args):
    return subprocess.run([PRESERVE, *map(str, args)], capture_output=True, text=True)


@pytest.fixture
def repo_with_alerts(tmp_path):
    from preserve.repository import Repository

    def make(smtp, hook) -> Path:
        r = Repository.init(tmp_path / "repo", ORG, offsite=False)
        r.close()
        cfg = r.root / "preserve.toml"
        data = tomllib.loads(cfg.read_text(encoding="utf-8"))
        data["alerts"].update(alerts_table(smtp, hook))
        cfg.write_text(tomli_w.dumps(data), encoding="utf-8")
        return r.root

    return make


def test_cli_alerts_test_and_list(repo_with_alerts, smtp, hook):
    root = repo_with_alerts(smtp, hook)
    p = run("alerts", "test", "--repo", root, "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    data = json.loads(p.stdout)
    assert data["ok"] and [(c["channel"], c["ok"]) for c in data["channels"]] == \
        [("log", True), ("mail", True), ("webhook", True)]
    (msg,) = smtp.messages
    assert msg["Subject"].startswith("[preserve] THỬ / TEST I-ALERT-TEST: Tin thử"), msg["Subject"]
    assert ORG in msg.get_content()
    (body,) = hook.bodies
    assert body["kind"] == "test" and body["code"] == "I-ALERT-TEST" and body["repository"] == ORG
    # an open problem, raised the way replication raises it
    a = Alerter.for_settings(Settings.load(root))
    a.alert(Finding("E-COPIES-BELOW-MIN", "policy", {"count": 1, "minimum": 2, "aips": "hs-01"}))
    p = run("alerts", "list", "--open", "--repo", root, "--json")
    assert p.returncode == 0 and [x["code"] for x in json.loads(p.stdout)] == ["E-COPIES-BELOW-MIN"]
    p = run("alerts", "list", "--open", "--repo", root)
    assert "E-COPIES-BELOW-MIN" in p.stdout and "bản sao" in p.stdout
    # the webhook service is stopped
    hook.stop()
    p = run("alerts", "test", "--repo", root, "--json")
    assert p.returncode == 1, p.stdout + p.stderr
    failed = [c for c in json.loads(p.stdout)["channels"] if not c["ok"]]
    assert [c["channel"] for c in failed] == ["webhook"] and "refused" in failed[0]["error"].lower()
    assert hook.url in failed[0]["check_en"] and "đang chạy" in failed[0]["check_vi"], "says what to check"
    assert len(smtp.messages) == 3, "mail still delivered (the problem's alert, and the second test)"
    p = run("alerts", "test", "--repo", root)
    assert p.returncode == 1 and "webhook" in p.stdout and "lỗi / failed" in p.stdout and "Kiểm tra" in p.stdout
    p = run("alerts", "list", "--repo", root, "--json")
    rows = json.loads(p.stdout)
    assert [(x["code"], x["kind"]) for x in rows] == [
        ("I-ALERT-TEST", "test"), ("E-COPIES-BELOW-MIN", "alert"), ("I-ALERT-TEST", "test"),
        ("W-ALERT-CHANNEL-FAILED", "delivery-failed"), ("I-ALERT-TEST", "test"),
        ("W-ALERT-CHANNEL-FAILED", "delivery-failed")], "newest last"
    p = run("alerts", "list", "--repo", root)
    assert p.returncode == 0 and "W-ALERT-CHANNEL-FAILED" in p.stdout
    p = run("alerts", "test", "--repo", root / "nowhere")
    assert p.returncode == 2 and "preserve init" in p.stderr


def test_a_new_repository_takes_alert_tables_as_the_docs_show(tmp_path):
    """`init` writes no bare `email`/`webhook` keys, so adding the documented tables keeps preserve.toml valid."""
    from preserve.config import Settings
    from preserve.repository import Repository

    r = Repository.init(tmp_path / "r", offsite=False)
    r.close()
    with open(tmp_path / "r" / "preserve.toml", "a", encoding="utf-8") as f:
        f.write('\n[alerts.webhook]\nurl = "http://127.0.0.1:9/hook"\n\n[alerts.mail]\nhost = "127.0.0.1"\n'
                'from = "preserve@example.org"\nto = ["luutru@example.org"]\n')
    s = Settings.load(tmp_path / "r")
    assert s.data["alerts"]["webhook"]["url"] == "http://127.0.0.1:9/hook"
    assert s.data["alerts"]["mail"]["to"] == ["luutru@example.org"]
