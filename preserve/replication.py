"""Replication: give every AIP a verified copy on each tier its storage policy names.

For each AIP and each copy tier without a verified ("ok") replica:
  1. choose a source: a tier holding a verified copy whose manifests still match the catalog's digest of the
     tag manifest (a damaged source is never copied; the next good one is used);
  2. write the copy (`Tier.put_tree`: staged, published in one step where the kind allows, hashed while
     copying) and check that every byte written matches the AIP's own manifests;
  3. read the copy back from the tier (`Tier.read_tree`) and compare every file with what was written;
  4. record a replica row (tier, location, status, when verified) and a PREMIS replication event.
A failure never touches the AIP elsewhere: the partial copy is removed, the replica is marked failed (the AIP
is under-replicated for that tier), an alert is raised, and `preserve replicate` catches it up later.

Restic tiers take all the AIPs a run sends them in one backup (one snapshot, tagged per AIP), then each is read
back from the snapshot.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .aip.inventory import Inventory, add_unlisted, compare, expected_inventory, root_digests
from .aip.model import SOFTWARE_AGENT, Event
from .alerts import Alert, Alerter
from .errors import StorageError, UsageError
from .findings import Finding
from .policy import format_bytes
from .progress import NullProgress
from .storage.base import Tier, TierConflict, TierFull, TierUnreachable

RESTIC_BATCH = 100  # AIPs per restic snapshot
AGENT = SOFTWARE_AGENT


@contextmanager
def replication_lock(staging: Path, wait: bool) -> Iterator[None]:
    """One replication at a time per repository. `wait`: block (ingest), else refuse (the command)."""
    staging.mkdir(parents=True, exist_ok=True)
    fd = os.open(staging / ".replicate.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError("Another replication is running in this repository.",
                             hint="Wait for it to finish, then run `preserve replicate` again.") from None
        yield
    finally:
        os.close(fd)


@dataclass
class ReplicationResult:
    copies: list[dict[str, Any]] = field(default_factory=list)  # {aip, fileCode, tier, status, detail, location}
    alerts: list[Alert] = field(default_factory=list)
    under_replicated: list[dict[str, Any]] = field(default_factory=list)  # {aip, fileCode, copies, missing}

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.copies if c["status"] == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(1 for c in self.copies if c["status"] == s) for s in ("copied", "adopted", "failed")}
        return {**counts, "copies": self.copies, "under_replicated": self.under_replicated,
                "alerts": [a.to_dict() for a in self.alerts]}


def local_root(tier: Tier) -> Path | None:
    """The folder of a local tier (its files can be read in place), else None."""
    root = getattr(tier, "root_path", None)
    return Path(root) if root is not None else None


class Replicator:
    def __init__(self, *, catalog, policy, tiers: dict[str, Tier], alerter: Alerter, now: Callable[[], str],
                 scratch: Path, progress=None):
        self.catalog = catalog
        self.policy = policy
        self.tiers = tiers
        self.alerter = alerter
        self.now = now
        self.scratch = scratch
        self.progress = progress or NullProgress()
        self._reach: dict[str, str | None] = {}    # tier -> None (reachable) or why not
        self._resolved_tiers: set[str] = set()
        self._alerted: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ public
    def run(self, aip_ids: list[str] | None = None, tier: str | None = None) -> ReplicationResult:
        if tier is not None and tier not in self.policy.copy_tiers:
            raise UsageError(f"Tier '{tier}' does not hold copies under the storage policy "
                             f"'{self.policy.name}' ({', '.join(self.policy.copy_tiers)}).",
                             hint="Name one of the policy's copy tiers, or add the tier to the policy.")
        self.catalog.require_aips(aip_ids)
        state = self.catalog.replication_state(aip_ids)
        result = ReplicationResult()
        wanted = [t for t in self.policy.copy_tiers if tier is None or t == tier]
        for t in wanted:  # leftovers of a run that was cut off (we hold the replication lock)
            clean = getattr(self.tiers.get(t), "clean_staging", None)
            if clean is not None and self._reachable_quiet(t):
                clean()
        todo = [(a, [t for t in wanted if a["replicas"].get(t) != "ok"]) for a in state]
        todo = [(a, ts) for a, ts in todo if ts]
        total = sum(a["bytes"] * len(ts) for a, ts in todo)
        self.progress.start("Sao lưu bản sao / replicating", total or None, "bytes")
        # restic tiers take AIPs in batches (one snapshot each), flushed as they fill: memory stays bounded
        restic_jobs: dict[str, list[tuple[dict, Path, Inventory, Callable[[], None]]]] = {}
        try:
            for aip, targets in todo:
                self._replicate_one(aip, targets, result, restic_jobs)
                for tname, jobs in restic_jobs.items():
                    if len(jobs) >= RESTIC_BATCH:
                        self._flush_restic(tname, jobs, result)
            for tname, jobs in restic_jobs.items():
                self._flush_restic(tname, jobs, result)
        finally:
            for jobs in restic_jobs.values():
                for job in jobs:
                    job[3]()
            self.progress.done()
        self._check_capacity(result)
        self._check_minimum(result, aip_ids)
        result.alerts = list(self.alerter.raised)
        return result

    def _flush_restic(self, tname: str, jobs: list, result: ReplicationResult) -> None:
        """Back up the queued AIPs to a restic tier, then release their sources (and empty the queue)."""
        try:
            self._replicate_restic(tname, jobs, result)
        finally:
            for job in jobs:
                job[3]()
            jobs.clear()

    # ------------------------------------------------------------------ one AIP
    def _replicate_one(self, aip: dict, targets: list[str], result: ReplicationResult,
                       restic_jobs: dict[str, list]) -> None:
        reachable = [t for t in targets if self._reachable(t, aip, result)]
        if not reachable:
            return
        source = self._source(aip)
        if source is None:
            for t in reachable:
                self._fail(aip, t, "E-REPL-NO-SOURCE", "no tier holds an intact copy to copy from", result,
                           params={"detail": "no intact source"})
            return
        src_tier, base, inv, release_source = source
        holders = 1 + sum(1 for t in reachable if self.tiers[t].kind == "restic")
        release = _shared_release(release_source, holders)  # the source goes when its last user is done
        try:
            for t in reachable:
                tier = self.tiers[t]
                if tier.kind == "restic":
                    restic_jobs.setdefault(t, []).append((aip, base, inv, release))
                    continue
                self._copy_fs(aip, tier, base, inv, result, src_tier)
        finally:
            release()

    def _copy_fs(self, aip: dict, tier: Tier, base: Path, inv: Inventory, result: ReplicationResult,
                 src_tier: str) -> None:
        rel = aip["path"]
        try:
            if tier.exists(rel):
                # a copy from an earlier run that was cut off before the catalog heard of it: adopt it if intact
                found = {d.path: d.digests["sha256"] for d in tier.read_tree(rel)}
                diffs = compare(inv.expected, found.items())
                if not diffs:
                    self._ok(aip, tier, "adopted", f"existing copy on tier '{tier.name}' read back and verified: "
                             f"{len(found)} files (SHA-256)", result)
                    return
                tier.delete(rel)
            written = tier.put_tree(base, rel, ("sha256",), progress=self.progress)
            wrote = {d.path: d.digests["sha256"] for d in written}
            diffs = compare(inv.expected, wrote.items())
            if diffs:
                tier.delete(rel)
                # the bytes read from the source do not match its own manifests: the source is damaged
                detail = _diff_text(diffs, f"read from tier '{src_tier}'")
                self._alert_once(Finding("E-REPL-SOURCE-DAMAGED", f"{src_tier}:{rel}",
                                         {"aip": aip["id"], "tier": src_tier, "detail": detail}),
                                 tier=src_tier, aip=aip["id"])
                self._fail(aip, tier.name, "E-REPL-NO-SOURCE", detail, result)
                return
            if self.policy.verify_after_write:
                back = {d.path: d.digests["sha256"] for d in tier.read_tree(rel)}
                diffs = compare(wrote, back.items(), frozenset())
                if diffs:
                    tier.delete(rel)
                    self._fail(aip, tier.name, "E-REPL-VERIFY", _diff_text(diffs, "read back from the tier"), result)
                    return
                how = f"read back from tier '{tier.name}' and verified"
            else:
                how = "verified while writing (read-back disabled by the policy)"
            nbytes = sum(d.size for d in written)
            self._ok(aip, tier, "copied", f"copied {len(written)} files ({nbytes} bytes) to tier '{tier.name}'; "
                     f"{how} (SHA-256)", result)
        except TierFull as e:
            self._fail(aip, tier.name, "E-TIER-FULL", _first_line(e), result)
        except TierUnreachable as e:
            self._reach[tier.name] = _first_line(e)
            self._fail(aip, tier.name, "E-REPL-UNREACHABLE", _first_line(e), result)
        except TierConflict as e:
            self._fail(aip, tier.name, "E-REPL-FAILED", _first_line(e), result)
        except (StorageError, OSError) as e:
            self._cleanup(tier, rel)
            self._fail(aip, tier.name, "E-REPL-FAILED", _first_line(e), result)

    def _replicate_restic(self, tname: str, jobs: list, result: ReplicationResult) -> None:
        tier = self.tiers[tname]
        pending = []
        for job in jobs:
            aip = job[0]
            try:
                held = tier.exists(aip["path"])
            except StorageError as e:
                self._fail(aip, tname, "E-REPL-FAILED", _first_line(e), result)
                continue
            if held:  # a snapshot from a run cut off before the catalog heard of it: adopt it only if intact
                try:
                    found = {d.path: d.digests["sha256"] for d in tier.read_tree(aip["path"])}
                except (StorageError, OSError) as e:
                    self._fail(aip, tname, "E-REPL-VERIFY", f"existing snapshot cannot be read back: "
                               f"{_first_line(e)}", result)
                    continue
                diffs = compare(job[2].expected, found.items())
                if not diffs:
                    self._ok(aip, tier, "adopted", f"snapshot on tier '{tname}' read back and verified: "
                             f"{len(found)} files (SHA-256)", result)
                    continue
                self._fail(aip, tname, "E-REPL-VERIFY", _diff_text(diffs, "existing snapshot"), result)
                continue
            pending.append(job)
        # group by source folder: restic backs up paths relative to one working directory
        by_base: dict[Path, list] = {}
        for job in pending:
            by_base.setdefault(job[1], []).append(job)
        for base, group in by_base.items():
            for i in range(0, len(group), RESTIC_BATCH):
                chunk = group[i:i + RESTIC_BATCH]
                rels = [j[0]["path"] for j in chunk]
                try:
                    back = tier.put_trees(base, rels, ("sha256",), progress=self.progress)
                except TierFull as e:
                    for j in chunk:
                        self._fail(j[0], tname, "E-TIER-FULL", _first_line(e), result)
                    continue
                except TierUnreachable as e:
                    for j in chunk:
                        self._fail(j[0], tname, "E-REPL-UNREACHABLE", _first_line(e), result)
                    continue
                except StorageError as e:
                    for j in chunk:
                        self._fail(j[0], tname, "E-REPL-FAILED", _first_line(e), result)
                    continue
                for aip, _b, inv, _r in chunk:
                    got = {d.path: d.digests["sha256"] for d in back.get(aip["path"], [])}
                    diffs = compare(inv.expected, got.items())
                    if diffs:
                        self._fail(aip, tname, "E-REPL-VERIFY", _diff_text(diffs, "read back from the snapshot"),
                                   result)
                    else:
                        self._ok(aip, tier, "copied", f"backed up to tier '{tname}' (restic snapshot); read back "
                                 f"from the snapshot and verified: {len(got)} files (SHA-256)", result)

    # ------------------------------------------------------------------ sources
    def _source(self, aip: dict) -> tuple[str, Path, Inventory, Callable[[], None]] | None:
        """(tier name, base folder holding base/<aip path>, the AIP's inventory, a release function) from the first tier
        with a verified copy whose manifests match the catalog; None if there is none."""
        order = sorted((t for t, s in aip["replicas"].items() if s == "ok" and t in self.tiers),
                       key=lambda t: (self.tiers[t].kind == "restic", local_root(self.tiers[t]) is None,
                                      t not in self.policy.copy_tiers[:1]))
        rel = aip["path"]
        for t in order:
            tier = self.tiers[t]
            if tier.kind == "restic" or not self._reachable_quiet(t):
                continue
            root = local_root(tier)
            if root is not None:
                base, release = root, (lambda: None)
            else:
                base = self.scratch / f"replicate-{uuid.uuid4().hex}"
                try:
                    tier.get_tree(rel, base)
                except (StorageError, OSError):
                    shutil.rmtree(base, ignore_errors=True)
                    continue
                release = (lambda b=base: shutil.rmtree(b, ignore_errors=True))
            inv = expected_inventory(lambda p, b=base: (b / rel / p).read_bytes(), aip["tagmanifest_sha256"])
            if inv.ok:
                add_unlisted(inv, root_digests(base / rel))
            if inv.ok:
                return t, base, inv, release
            release()
            self._alert_once(Finding("E-REPL-SOURCE-DAMAGED", f"{t}:{rel}",
                                     {"aip": aip["id"], "tier": t, "detail": "; ".join(inv.problems)}),
                             tier=t, aip=aip["id"])
        return None

    # ------------------------------------------------------------------ reachability
    def _reachable_quiet(self, name: str) -> bool:
        if name not in self._reach:
            ok, why = self.tiers[name].reachable()
            self._reach[name] = None if ok else why
        return self._reach[name] is None

    def _reachable(self, name: str, aip: dict, result: ReplicationResult) -> bool:
        if name not in self.tiers:
            self._fail(aip, name, "E-REPL-UNREACHABLE", "the tier is not declared in preserve.toml", result)
            return False
        if self._reachable_quiet(name):
            return True
        self._fail(aip, name, "E-REPL-UNREACHABLE", self._reach[name] or "unreachable", result)
        return False

    # ------------------------------------------------------------------ outcomes
    def _ok(self, aip: dict, tier: Tier, status: str, detail: str, result: ReplicationResult) -> None:
        when = self.now()
        location = tier.url(aip["path"])
        ev = Event(f"uuid-{uuid.uuid4()}", "replication", when, "success", detail, [AGENT], [aip["id"]])
        self.catalog.set_replica(aip["id"], tier.name, location, "ok", when, [ev])
        for code in ("E-REPL-FAILED", "E-REPL-VERIFY", "E-REPL-NO-SOURCE"):
            self._resolve(code, tier=tier.name, aip=aip["id"])
        if tier.name not in self._resolved_tiers:  # the tier took a copy: it is reachable and has room
            self._resolved_tiers.add(tier.name)
            for code in ("E-TIER-UNREACHABLE", "E-TIER-FULL"):
                self._resolve(code, tier=tier.name)
        result.copies.append({"aip": aip["id"], "fileCode": aip["fileCode"], "tier": tier.name, "status": status,
                              "detail": detail, "location": location})

    def _fail(self, aip: dict, tier: str, code: str, detail: str, result: ReplicationResult,
              params: dict | None = None) -> None:
        when = self.now()
        t = self.tiers.get(tier)
        location = t.url(aip["path"]) if t is not None else aip["path"]
        events = [Event(f"uuid-{uuid.uuid4()}", "replication", when, "failure",
                        f"copy to tier '{tier}' failed: {detail}", [AGENT], [aip["id"]])]
        unreachable = code == "E-REPL-UNREACHABLE"
        if unreachable:
            events = []  # one alert per tier and run says it; no event per AIP while a tier is down
        self.catalog.set_replica(aip["id"], tier, location, "failed", None, events, detail=detail)
        result.copies.append({"aip": aip["id"], "fileCode": aip["fileCode"], "tier": tier, "status": "failed",
                              "code": code, "detail": detail, "location": location})
        if unreachable:  # one problem per tier, whatever AIP met it first
            self._alert_once(Finding("E-TIER-UNREACHABLE", tier, {"tier": tier, "detail": detail}), tier=tier,
                             aip=None, key=(code, tier))
            return
        if code == "E-TIER-FULL":
            self._alert_once(Finding(code, tier, {"aip": aip["id"], "tier": tier, "detail": detail}), tier=tier,
                             aip=None, key=(code, tier))
            return
        self._alert_once(Finding(code, f"{tier}:{aip['path']}", {"aip": aip["id"], "tier": tier, "detail": detail,
                                                                 **(params or {})}),
                         tier=tier, aip=aip["id"], key=(code, f"{tier}/{aip['id']}"))

    def _resolve(self, code: str, **where) -> None:
        resolve = getattr(self.alerter, "resolve", None)
        if resolve is not None:
            resolve(code, **where)

    def _alert_once(self, finding: Finding, *, tier: str | None, aip: str | None,
                    key: tuple[str, str] | None = None) -> None:
        key = key or (finding.code, finding.where)
        if key in self._alerted:
            return
        self._alerted.add(key)
        self.alerter.alert(finding, tier=tier, aip=aip)

    @staticmethod
    def _cleanup(tier: Tier, rel: str) -> None:
        """put_tree removes its own staging; a copy that failed afterwards (read-back) is removed here."""
        try:
            tier.delete(rel)
        except (StorageError, OSError):
            pass

    # ------------------------------------------------------------------ after the run
    def _check_capacity(self, result: ReplicationResult) -> None:
        """After a run, every reachable copy tier's free space against the policy's threshold (the ingest's
        primary tier included)."""
        for name in self.policy.copy_tiers:
            if name in self.tiers and self._reachable_quiet(name):
                check_free_space(self.tiers[name], self.policy, self._alert_once, self._resolve)

    def _check_minimum(self, result: ReplicationResult, aip_ids: list[str] | None) -> None:
        low = []
        for a in self.catalog.replication_state(aip_ids):
            good = [t for t in self.policy.copy_tiers if a["replicas"].get(t) == "ok"]
            missing = [t for t in self.policy.copy_tiers if t not in good]
            if missing:
                result.under_replicated.append({"aip": a["id"], "fileCode": a["fileCode"], "copies": len(good),
                                                "missing": missing})
            if len(good) < self.policy.copies_minimum:
                low.append(a["id"])
        if not low:
            self._resolve("E-COPIES-BELOW-MIN")
        if low:
            self._alert_once(Finding("E-COPIES-BELOW-MIN", "", {
                "count": len(low), "minimum": self.policy.copies_minimum,
                "aips": ", ".join(low[:5]) + (" …" if len(low) > 5 else "")}), tier=None, aip=None)


def check_free_space(tier: Tier, policy, alert: Callable[..., None],
                     resolve: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Compare a tier's free space with the policy's threshold; alert when below, resolve the alert when not.
    Returns the figures."""
    tp = policy.tier(tier.name)
    try:
        free = tier.free_space()
    except (StorageError, OSError):
        free = None
    total = getattr(tier, "total_space", lambda: None)()
    threshold = tp.min_free_bytes
    if tp.min_free_percent is not None and total:
        pct = int(total * tp.min_free_percent / 100)
        threshold = max(threshold or 0, pct)
    low = free is not None and threshold is not None and free < threshold
    if free is not None and not low and resolve is not None:
        resolve("W-TIER-LOW-SPACE", tier=tier.name)
    if low:
        alert(Finding("W-TIER-LOW-SPACE", tier.name, {"tier": tier.name, "free": format_bytes(free),
                                                      "threshold": format_bytes(threshold)}), tier=tier.name, aip=None)
    return {"free": free, "total": total, "threshold": threshold, "low": low}


def _shared_release(release: Callable[[], None], holders: int) -> Callable[[], None]:
    """A release function that runs `release` once, on its `holders`-th call."""
    left = [holders]

    def once() -> None:
        left[0] -= 1
        if left[0] == 0:
            release()
    return once


def _diff_text(diffs: list[dict[str, str]], context: str) -> str:
    parts = [f"{d['path']}: {d['problem']}" for d in diffs[:5]]
    more = f" (+{len(diffs) - 5} more)" if len(diffs) > 5 else ""
    return f"{context}: " + "; ".join(parts) + more


def _first_line(e: BaseException) -> str:
    return str(e).split("\n")[0]
