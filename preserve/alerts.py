"""Alerts: problems a person must see (a copy failed, a tier is down or filling up, copies below the minimum).

Each alert is a coded finding (bilingual message from preserve/data/codes.yaml). Channels:

* log — one JSON line per raise in the repository's alert log (preserve.toml [alerts] log, default alerts.log),
  always on, every severity, repeats included: it is the record of what happened. Also the `preserve.alerts`
  logger.
* mail ([alerts.mail]) and webhook ([alerts.webhook]) — see preserve.alerting.channels; each has a minimum
  severity (default: [alerts] min_severity, itself default "warning").

A problem is keyed by (code, tier, aip, where). The first raise is sent on every channel whose minimum it meets;
raising it again with the same params only counts it (count, last_seen) until [alerts] remind_every (default
24h; "off" disables) has passed since it was last sent, then a reminder goes out; changed params are a new alert.
`resolve()` closes open problems and tells the channels that got them. This bookkeeping lives in
<repository>/state/alerts-state.json (format in `AlertState`). An Alerter made without settings (log_path
only) has no state file and no mail/webhook: it logs every raise, as before.

A channel that fails never stops the caller or the other channels: the failure is logged as its own line
(W-ALERT-CHANNEL-FAILED, with what to check) and the channel is retried at the next raise of that problem.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

from .alerting.channels import (DEFAULT_MIN_SEVERITY, Channel, ChannelError, build_channels, hint_text, meets,
                                parse_min, parse_remind, payload)
from .findings import Finding, bilingual

log = logging.getLogger("preserve.alerts")

STATE_FILE = "state/alerts-state.json"
STATE_VERSION = 1

__all__ = ["Alert", "Alerter", "AlertState", "ChannelError", "STATE_FILE", "read_alerts"]


@dataclass
class Alert:
    finding: Finding
    at: str
    tier: str | None = None
    aip: str | None = None
    kind: str = "alert"                      # what this raise did: alert | reminder | repeat (only counted)
    delivered: dict[str, str | None] = field(default_factory=dict)  # channel -> None (delivered) or the error

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "tier": self.tier, "aip": self.aip, **self.finding.to_dict()}


def problem_key(code: str, tier: str | None, aip: str | None, where: str) -> str:
    """The state file's key for a problem: a JSON list, so no separator can be ambiguous."""
    return json.dumps([code, tier, aip, where], ensure_ascii=False)


class AlertState:
    """The open problems, shared by every process that alerts for a repository (scheduler, CLI commands).

    File: {"version": 1, "problems": {problem_key: {"code", "tier", "aip", "where", "severity", "message_vi",
    "message_en", "params", "first_seen", "last_seen", "last_sent", "count", "sent": {channel: time},
    "failed": {channel: {"at", "error"}}}}}. Every read-modify-write holds an exclusive fcntl.flock on
    `<file>.lock` and rewrites the file atomically (preserve.atomic.write_text), so two processes never lose
    each other's updates and a reader never sees half a file. The lock is never held while a message is sent.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def read(self) -> dict[str, Any]:
        """A snapshot without the lock (the file is replaced atomically, so it is always whole)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": STATE_VERSION, "problems": {}}
        except ValueError as e:  # damaged by hand: start again rather than stop alerting
            log.error("alert state %s is not valid JSON (%s); starting with no open problems", self.path, e)
            return {"version": STATE_VERSION, "problems": {}}
        data.setdefault("problems", {})
        return data

    @contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """Lock, load, let the caller change the data, write it back (not written if the caller raised)."""
        from .atomic import write_text

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self.read()
            yield data
            data["version"] = STATE_VERSION
            write_text(self.path, json.dumps(data, ensure_ascii=False, indent=2) + "\n", 0o640)
        finally:
            os.close(fd)  # releases the lock


@dataclass
class _Plan:
    """What one raise will send: (channel, kind) pairs and the problem's counters for the messages."""

    sends: list[tuple[Channel, str]]
    status: str                    # new | changed | repeat
    problem: dict[str, Any]
    previous_sent: dict[str, str]  # channel -> time before this raise (to undo a failed reminder)
    previous_last_sent: str | None


@dataclass
class Alerter:
    """Raises alerts on the log and the configured channels; keeps those raised by this object (reports, tests)."""

    log_path: Path | None
    timezone: str = "+07:00"
    raised: list[Alert] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)
    state_path: Path | None = None
    remind_every: timedelta | None = None
    repository: str = ""
    root: str = ""
    config_errors: list[str] = field(default_factory=list)  # bad [alerts] values (defaults used instead)

    @classmethod
    def for_settings(cls, settings) -> "Alerter":
        """Never raises for a bad [alerts] table: a typo there must not stop replication. A channel that cannot
        be built fails at each delivery (logged, and shown by `preserve alerts test`)."""
        table = settings.data.get("alerts") or {}
        errors: list[str] = []
        base = parse_min(table, "[alerts]", DEFAULT_MIN_SEVERITY, errors)
        remind = parse_remind(table, errors)
        channels = build_channels(table, base, settings.path, errors)
        for e in errors:
            log.warning("preserve.toml %s", e)
        return cls(settings.path(table.get("log") or "alerts.log"), settings.timezone,
                   channels=channels, state_path=settings.path(STATE_FILE),
                   remind_every=remind, repository=settings.organisation, root=str(settings.root),
                   config_errors=errors)

    # ------------------------------------------------------------------ raising
    def alert(self, finding: Finding, *, tier: str | None = None, aip: str | None = None) -> Alert:
        """Log the alert, then send it where it is due. Returns once every channel was tried; never raises for a
        channel that failed (only for an alert log that cannot be written, as before)."""
        a = Alert(finding, self._now(), tier, aip)
        self.raised.append(a)
        log.warning("ALERT %s: %s / %s", finding.code, finding.message_vi, finding.message_en)
        plan = self._plan(a)
        a.kind = ("alert" if plan.status != "repeat" or any(k == "alert" for _, k in plan.sends)
                  else "reminder" if plan.sends else "repeat")
        self._write_log({**a.to_dict(), "kind": a.kind, "count": plan.problem["count"],
                         "first_seen": plan.problem["first_seen"], "channels": [c.name for c, _ in plan.sends]})
        for channel, kind in plan.sends:
            data = self._payload(kind, finding, tier, aip, a.at, plan.problem, finding.code)
            failure = self._send(channel, data, finding.code, tier, aip)
            a.delivered[channel.name] = failure.error if failure else None
        if plan.sends and self.state_path is not None:
            self._record(a, plan)
        return a

    def _plan(self, a: Alert) -> _Plan:
        """Decide under the state lock, and mark the sends as done before they happen, so a second process
        raising the same problem meanwhile does not send it too (`_record` undoes the marks of failed sends)."""
        f = a.finding
        eligible = [c for c in self.channels if meets(f.severity, c.min_severity)]
        fresh = {"code": f.code, "tier": a.tier, "aip": a.aip, "where": f.where, "severity": f.severity,
                 "message_vi": f.message_vi, "message_en": f.message_en, "params": f.to_dict()["params"],
                 "first_seen": a.at, "last_seen": a.at, "last_sent": None, "count": 1, "sent": {}, "failed": {}}
        if self.state_path is None:
            return _Plan([(c, "alert") for c in eligible], "new", fresh, {}, None)
        with AlertState(self.state_path).update() as data:
            problems = data["problems"]
            key = problem_key(f.code, a.tier, a.aip, f.where)
            p = problems.get(key)
            if p is None:
                status, p = "new", fresh
            elif p.get("params") != fresh["params"]:
                status = "changed"
                p = {**fresh, "first_seen": p.get("first_seen", a.at), "count": p.get("count", 0) + 1}
            else:
                status = "repeat"
                p.update(count=p.get("count", 0) + 1, last_seen=a.at)
                p.setdefault("sent", {})
            previous_sent, previous_last = dict(p["sent"]), p.get("last_sent")
            due = self._reminder_due(previous_last, a.at)
            sends = [(c, "alert") for c in eligible if c.name not in p["sent"]]
            sends += [(c, "reminder") for c in eligible if c.name in p["sent"] and due]
            for c, _ in sends:
                p["sent"][c.name] = a.at
            if sends:
                p["last_sent"] = a.at
            problems[key] = p
            return _Plan(sends, status, dict(p), previous_sent, previous_last)

    def _reminder_due(self, last_sent: str | None, now: str) -> bool:
        if self.remind_every is None or last_sent is None:
            return False
        return datetime.fromisoformat(now) - datetime.fromisoformat(last_sent) >= self.remind_every

    def _record(self, a: Alert, plan: _Plan) -> None:
        """After sending: a channel that failed is unmarked (retried at the next raise) and its error kept."""
        f = a.finding
        with AlertState(self.state_path).update() as data:
            p = data["problems"].get(problem_key(f.code, a.tier, a.aip, f.where))
            if p is None:  # resolved meanwhile
                return
            failed = p.setdefault("failed", {})
            for channel, kind in plan.sends:
                error = a.delivered.get(channel.name)
                if error is None:
                    failed.pop(channel.name, None)
                    continue
                failed[channel.name] = {"at": a.at, "error": error}
                if p["sent"].get(channel.name) == a.at:
                    if kind == "alert":
                        del p["sent"][channel.name]
                    else:
                        p["sent"][channel.name] = plan.previous_sent[channel.name]
            if all(a.delivered.get(c.name) is not None for c, _ in plan.sends) and p.get("last_sent") == a.at:
                p["last_sent"] = plan.previous_last_sent

    # ------------------------------------------------------------------ closing, listing, testing
    def resolve(self, code: str, *, tier: str | None = None, aip: str | None = None,
                where: str | None = None) -> list[dict[str, Any]]:
        """Close the open problems with this code (and tier/aip/where, None = any) and send I-ALERT-RESOLVED to
        the channels that got each one, whatever their minimum. Returns the problems closed. Without a state
        file nothing is known to be open: returns []."""
        if self.state_path is None:
            return []
        wanted = {"tier": tier, "aip": aip, "where": where}

        def matches(p: dict[str, Any]) -> bool:
            return p["code"] == code and all(v is None or p.get(n) == v for n, v in wanted.items())

        if not any(matches(p) for p in AlertState(self.state_path).read()["problems"].values()):
            return []  # the common case (nothing open): no lock, no rewrite
        with AlertState(self.state_path).update() as data:
            closed = {k: p for k, p in data["problems"].items() if matches(p)}
            for k in closed:
                del data["problems"][k]
        for p in closed.values():
            self._announce_resolved(p)
        return list(closed.values())

    def _announce_resolved(self, p: dict[str, Any]) -> None:
        f = Finding("I-ALERT-RESOLVED", p["where"],
                    {"code": p["code"], "message": bilingual(p["message_vi"], p["message_en"])})
        at = self._now()
        sends = [c for c in self.channels if c.name in p.get("sent", {})]
        log.info("RESOLVED %s: %s / %s", p["code"], f.message_vi, f.message_en)
        self._write_log({"at": at, "tier": p["tier"], "aip": p["aip"], **f.to_dict(), "kind": "resolved",
                         "problem": p["code"], "count": p["count"], "first_seen": p["first_seen"],
                         "channels": [c.name for c in sends]})
        for channel in sends:
            self._send(channel, self._payload("resolved", f, p["tier"], p["aip"], at, p, p["code"]), p["code"],
                       p["tier"], p["aip"])

    def open_problems(self) -> list[dict[str, Any]]:
        """The problems raised and not resolved, oldest first (each as stored: see AlertState)."""
        if self.state_path is None:
            return []
        problems = AlertState(self.state_path).read()["problems"].values()
        return sorted(problems, key=lambda p: (p.get("first_seen") or "", p["code"]))

    def test(self) -> list[dict[str, Any]]:
        """Send I-ALERT-TEST on every configured channel, whatever its minimum severity (no dedup, no state).
        One result per channel: {"channel", "target", "ok", "error", "check_vi", "check_en"} (what to look at
        when it failed); bad [alerts] values are a "config" row."""
        f = Finding("I-ALERT-TEST", "alerts", {"repository": self.repository or self.root})
        at = self._now()
        results = []
        if self.log_path is not None:
            self._write_log({"at": at, "tier": None, "aip": None, **f.to_dict(), "kind": "test",
                             "channels": [c.name for c in self.channels]})
            results.append({"channel": "log", "target": str(self.log_path), "ok": True, "error": None,
                            "check_vi": None, "check_en": None})
        for channel in self.channels:
            e = self._send(channel, self._payload("test", f, None, None, at, None, None), f.code, None, None)
            results.append({"channel": channel.name, "target": channel.target, "ok": e is None,
                            "error": e.error if e else None, "check_vi": e.check_vi if e else None,
                            "check_en": e.check_en if e else None})
        results += [{"channel": "config", "target": "preserve.toml [alerts]", "ok": False, "error": msg,
                     "check_vi": "bảng [alerts] trong preserve.toml", "check_en": "the [alerts] table in preserve.toml"}
                    for msg in self.config_errors]
        return results

    # ------------------------------------------------------------------ plumbing
    def _now(self) -> str:
        from .clock import now_iso

        return now_iso(self.timezone)

    def _payload(self, kind: str, f: Finding, tier: str | None, aip: str | None, at: str,
                 problem: dict[str, Any] | None, problem_code: str | None) -> dict[str, Any]:
        return payload(kind, f, tier=tier, aip=aip, at=at, problem=problem, problem_code=problem_code,
                       repository=self.repository, root=self.root)

    def _send(self, channel: Channel, data: dict[str, Any], code: str, tier: str | None,
              aip: str | None) -> ChannelError | None:
        """Deliver on one channel. Returns None, or the failure after logging it (log line and logger)."""
        try:
            channel.send(data)
            return None
        except ChannelError as e:
            self._delivery_failed(channel, e, code, tier, aip)
            return e

    def _delivery_failed(self, channel: Channel, e: ChannelError, code: str, tier: str | None,
                         aip: str | None) -> None:
        f = Finding("W-ALERT-CHANNEL-FAILED", f"alerts.{channel.name}",
                    {"channel": channel.name, "target": channel.target, "code": code, "error": e.error,
                     "check": bilingual(e.check_vi, e.check_en)})
        log.error("ALERT DELIVERY FAILED %s via %s (%s): %s — check: %s", code, channel.name, channel.target,
                  e.error, e.check_en)
        if self.log_path is not None:
            self._write_log({"at": self._now(), "tier": tier, "aip": aip, **f.to_dict(), "kind": "delivery-failed",
                             "channel": channel.name, "problem": code, "hint_vi": hint_text(f, "vi"),
                             "hint_en": hint_text(f, "en")})

    def _write_log(self, entry: dict[str, Any]) -> None:
        """Append one JSON line (O_APPEND + fsync: lines of concurrent processes never interleave)."""
        if self.log_path is None:
            return
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)


def read_alerts(path: Path) -> list[dict[str, Any]]:
    """Every line of an alert log, oldest first (a torn last line is skipped). Lines written before kinds were
    added have no "kind": they are alerts."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
