"""The off-site copy: incremental restic backups of AIPs and of the event log, and rotating `restic check`s.

- `backup`: replicate to every restic tier of the policy what it lacks (one snapshot per run, tagged per AIP
  version, each AIP read back from the snapshot), then back up an export of the event log (tag `eventlog`) so
  that events kept only in the catalog survive the loss of the catalog.
- `check`: `restic check --read-data-subset n/t`, where n rotates through 1..t over successive runs
  (t = the tier's `check_parts` in the policy): after t runs every pack has been read once.
State (the next part per tier) is kept in state/offsite-check.json in the repository.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from typing import Any

from .aip.model import SOFTWARE_AGENT, Event
from .atomic import write_text
from .errors import StorageError, UsageError
from .findings import Finding

EVENTLOG_TAG = "eventlog"
STATE_FILE = "state/offsite-check.json"
AGENT = SOFTWARE_AGENT


def restic_tiers(repo) -> list[str]:
    names = [t for t in repo.policy().copy_tiers if repo.tier(t).kind == "restic"]
    if not names:
        raise UsageError("The storage policy names no restic (off-site) tier.",
                         hint="Declare one in preserve.toml ([tiers.offsite] kind = \"restic\") and add it to the "
                              "policy's copy tiers.")
    return names


def backup(repo, progress=None) -> dict[str, Any]:
    from .clock import now_iso

    names = restic_tiers(repo)
    for name in names:
        _reachable_or_raise(repo, name)
    out: dict[str, Any] = {"tiers": names, "replication": None, "eventlog": [], "ok": True}
    results = [repo.replicate(None, name, progress=progress) for name in names]
    merged = results[0].to_dict()
    for r in results[1:]:
        d = r.to_dict()
        for k in ("copied", "adopted", "failed"):
            merged[k] += d[k]
        merged["copies"] += d["copies"]
        merged["alerts"] += d["alerts"]
    out["replication"] = merged
    out["ok"] = all(r.ok for r in results)
    for name in names:
        # the backup's own event first, so that the event log exported next holds every event, its own too
        copied = sum(1 for c in merged["copies"] if c["tier"] == name and c["status"] == "copied")
        failed = sum(1 for c in merged["copies"] if c["tier"] == name and c["status"] == "failed")
        detail = (f"off-site backup to tier '{name}': {copied} AIP(s) copied and verified, {failed} failed; the "
                  "event log and the access tables follow in a snapshot tagged eventlog")
        repo.catalog.append_event(Event(f"uuid-{uuid.uuid4()}", "replication", now_iso(repo.settings.timezone),
                                        "success" if failed == 0 else "failure", detail, [AGENT], [name]), None)
        tier = repo.tier(name)
        try:
            snap = backup_eventlog(repo, tier)
            out["eventlog"].append({"tier": name, **snap})
        except StorageError as e:
            why = str(e).split("\n")[0]
            out["ok"] = False
            out["eventlog"].append({"tier": name, "error": why})
            repo.alerter().alert(Finding("E-REPL-FAILED", name, {"aip": "event log", "tier": name, "detail": why}),
                                 tier=name)
            repo.catalog.append_event(Event(f"uuid-{uuid.uuid4()}", "replication", now_iso(repo.settings.timezone),
                                            "failure", f"off-site backup of the event log to tier '{name}' failed: "
                                            f"{why}", [AGENT], [name]), None)
    return out


def backup_eventlog(repo, tier) -> dict[str, Any]:
    """Export the catalog's event log (JSON lines, chain order, with the chain head) and the access tables
    (users with their argon2 hashes, grants, requests: rows no AIP holds) and back them up as one snapshot
    tagged `eventlog`. `preserve catalog rebuild` reads the newest one back."""
    work = repo.settings.staging / f"eventlog-{uuid.uuid4().hex}"
    folder = work / "eventlog"
    folder.mkdir(parents=True)
    try:
        n = 0
        with open(folder / "events.jsonl", "w", encoding="utf-8") as f:
            for ev in repo.catalog.iter_events():
                f.write(json.dumps(ev, ensure_ascii=False, sort_keys=True) + "\n")
                n += 1
        (folder / "chain-head.json").write_text(json.dumps(repo.catalog.chain_head()), encoding="utf-8")
        (folder / "access.json").write_text(json.dumps(repo.catalog.export_access(), ensure_ascii=False),
                                            encoding="utf-8")
        summary = tier.restic.backup(work, ["eventlog"], ["preserve", EVENTLOG_TAG])
        return {"snapshot": summary.get("snapshot_id"), "events": n}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _reachable_or_raise(repo, name: str) -> None:
    try:
        repo.tier(name).check()
    except StorageError as e:
        repo.alerter().alert(Finding("E-TIER-UNREACHABLE", name, {"tier": name, "detail": str(e).split("\n")[0]}),
                             tier=name)
        raise


def _load_state(repo) -> dict[str, Any]:
    p = repo.root / STATE_FILE
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _save_state(repo, state: dict[str, Any]) -> None:
    p = repo.root / STATE_FILE
    p.parent.mkdir(parents=True, exist_ok=True)
    write_text(p, json.dumps(state, indent=2))


def check(repo, subset: str | None = None) -> dict[str, Any]:
    from .clock import now_iso

    if subset is not None and not re.fullmatch(r"[1-9][0-9]*/[1-9][0-9]*", subset):
        raise UsageError(f"--read-data-subset {subset!r} is not of the form n/t (e.g. 3/12).",
                         hint="Give the part n (1…t) of t parts, or leave it out to take the next part of the cycle.")
    if subset is not None:
        n, t = (int(x) for x in subset.split("/"))
        if n > t:
            raise UsageError(f"--read-data-subset {subset}: part {n} is beyond {t} parts.",
                             hint="n must be between 1 and t.")
    policy = repo.policy()
    state = _load_state(repo)
    out: dict[str, Any] = {"checks": [], "ok": True}
    for name in restic_tiers(repo):
        tier = repo.tier(name)
        parts = policy.tier(name).check_parts
        st = state.setdefault(name, {"next": 1, "parts": parts, "done": []})
        if st.get("parts") != parts:  # the policy changed the cycle: start a new one
            st.update(next=1, parts=parts, done=[])
        use = subset or f"{st['next']}/{parts}"
        when = now_iso(repo.settings.timezone)
        try:
            res = tier.restic.check(use)
        except StorageError as e:  # restic could not run: wrong password, locked, missing … → exit 2
            repo.alerter().alert(Finding("E-TIER-UNREACHABLE", name, {"tier": name,
                                                                      "detail": str(e).split("\n")[0]}), tier=name)
            _save_state(repo, state)
            raise
        ok = bool(res.get("ok"))
        if subset is None and ok:
            if not st.get("done"):
                st["cycle_started"] = when
            done = set(st.get("done", [])) | {st["next"]}
            st["done"] = sorted(done) if len(done) < parts else []
            st["next"] = st["next"] % parts + 1
            if len(done) >= parts:
                st["last_full_cycle"] = when
                st.pop("cycle_started", None)
        st["last"] = {"at": when, "subset": use, "ok": ok}
        interval = policy.tier(name).audit_interval
        late = _cycle_late(st, when, interval)
        row = {"tier": name, "subset": use, "ok": ok, "errors": res.get("errors", []), "parts": parts,
               "parts_done": len(st.get("done", [])), "next": f"{st['next']}/{parts}",
               "last_full_cycle": st.get("last_full_cycle"), "cycle_started": st.get("cycle_started"),
               "check_every_seconds": int(interval.total_seconds() // parts), "cycle_late": late}
        if late:
            repo.alerter().alert(Finding("W-OFFSITE-CYCLE-LATE", name, {
                "tier": name, "started": st["cycle_started"], "done": len(st["done"]), "parts": parts,
                "interval": f"{interval.days}d", "every": f"{interval.total_seconds() / parts / 86400:.1f}"}),
                tier=name)
        out["checks"].append(row)
        out["ok"] &= ok
        detail = (f"restic check --read-data-subset {use} on tier '{name}': "
                  + ("no errors" if ok else "; ".join(row["errors"][:5]) or "errors"))
        repo.catalog.append_event(Event(f"uuid-{uuid.uuid4()}", "fixity check", when, "success" if ok else "failure",
                                        detail, [AGENT], [name]), None)
        if ok:
            repo.alerter().resolve("E-OFFSITE-CHECK", tier=name)
        if not late:
            repo.alerter().resolve("W-OFFSITE-CYCLE-LATE", tier=name)
        if not ok:
            repo.alerter().alert(Finding("E-OFFSITE-CHECK", name, {"tier": name, "subset": use,
                                                                   "detail": "; ".join(row["errors"][:3])}),
                                 tier=name)
    _save_state(repo, state)
    return out



def _cycle_late(st: dict[str, Any], now: str, interval) -> bool:
    """The current cycle began longer ago than the tier's audit interval and is not complete."""
    from datetime import datetime

    started = st.get("cycle_started")
    if not started or not st.get("done"):
        return False
    return datetime.fromisoformat(now) - datetime.fromisoformat(started) > interval
