"""Audits: plan which replicas to check, re-read them at close to the machine's hashing limit, record one PREMIS
fixity-check event per replica, update the replica's status, and raise alerts.

Planning: `--due` takes the replicas whose last verification is older than their tier's audit interval (never
verified first, then oldest first), so that over time every replica on every tier is verified within its
cycle; `--all` takes every replica. A time limit stops starting new replicas once it has passed; in-flight ones
finish. The next `--due` run resumes naturally (audited replicas carry a fresh verification time); an `--all`
run that stopped leaves a marker (state/audit-resume.json) so the next `--all` takes only what it had not done.

Speed: local replicas are hashed in a thread pool (one worker per core; hashlib releases the GIL on large
buffers), several AIPs at once, each file read once for both SHA-256 and SHA-512; at most a few AIPs are in
flight, so memory does not grow with the number of files. Other kinds stream through `Tier.read_tree`
(restic: one `restic dump` per AIP). Each tier's I/O budget (policy `io_budget`) throttles its reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives import hashes

from ..aip.model import SOFTWARE_AGENT, Event
from ..aip.sign import SignatureCheck, verify_detached
from ..atomic import write_text
from ..errors import CatalogError, UsageError
from ..findings import Finding
from ..progress import NullProgress
from ..storage.base import Tier, TierUnreachable
from .verify import Expected, Throttle, Verdict, judge, read_local, read_tier

AGENT = SOFTWARE_AGENT
RESUME_FILE = "state/audit-resume.json"


@dataclass
class ReplicaAudit:
    aip: str
    fileCode: str
    tier: str
    rel: str
    outcome: str                       # intact | damaged | missing
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"aip": self.aip, "fileCode": self.fileCode, "tier": self.tier, "path": self.rel,
                "outcome": self.outcome, "files": self.files, "bytes": self.bytes,
                "seconds": round(self.seconds, 3), "findings": [f.to_dict() for f in self.findings]}


@dataclass
class AuditResult:
    audits: list[ReplicaAudit] = field(default_factory=list)
    unreachable: list[dict[str, str]] = field(default_factory=list)    # {tier, reason}
    offsite_checks: list[dict[str, Any]] = field(default_factory=list)
    remaining: int = 0                  # replicas planned but not started (time limit)
    stopped_early: bool = False
    seconds: float = 0.0

    @property
    def damaged(self) -> list[ReplicaAudit]:
        return [a for a in self.audits if a.outcome != "intact"]

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.unreachable and all(c.get("ok") for c in self.offsite_checks)

    def totals(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for a in self.audits:
            t = out.setdefault(a.tier, {"replicas": 0, "intact": 0, "damaged": 0, "missing": 0, "files": 0,
                                        "bytes": 0})
            t["replicas"] += 1
            t[a.outcome] += 1
            t["files"] += a.files
            t["bytes"] += a.bytes
        return out

    def to_dict(self) -> dict[str, Any]:
        total_bytes = sum(a.bytes for a in self.audits)
        return {"ok": self.ok, "replicas": len(self.audits), "intact": len(self.audits) - len(self.damaged),
                "damaged": len(self.damaged), "bytes": total_bytes, "seconds": round(self.seconds, 3),
                "throughput_mib_s": round(total_bytes / 2**20 / self.seconds, 1) if self.seconds else None,
                "remaining": self.remaining, "stopped_early": self.stopped_early, "unreachable": self.unreachable,
                "tiers": self.totals(), "offsite_checks": self.offsite_checks,
                "problems": [a.to_dict() for a in self.damaged]}


class Auditor:
    def __init__(self, *, catalog, policy, tiers: dict[str, Tier], alerter, now: Callable[[], str],
                 trusted_certs: list, state_dir: Path, workers: int | None = None, progress=None):
        self.catalog = catalog
        self.policy = policy
        self.tiers = tiers
        self.alerter = alerter
        self.now = now
        self.trusted_certs = trusted_certs
        self.state_dir = state_dir
        self.workers = workers or max(2, os.cpu_count() or 2)
        self.progress = progress or NullProgress()
        self._serial: dict[str, threading.Lock] = {}
        self._sig_cache: dict[tuple[bytes, bytes], object] = {}
        self._sig_lock = threading.Lock()

    # ------------------------------------------------------------------ planning
    def plan(self, tier: str | None, aip_ids: list[str] | None, due: bool) -> list[dict[str, Any]]:
        tiers = [tier] if tier else list(self.policy.copy_tiers)
        for t in tiers:
            if t not in self.tiers:
                raise UsageError(f"No tier named '{t}' in preserve.toml.",
                                 hint=f"Declared tiers: {', '.join(self.tiers)}.")
        self.catalog.require_aips(aip_ids)
        rows = self.catalog.audit_candidates(tiers, aip_ids)
        if due:
            now = datetime.fromisoformat(self.now())
            rows = [r for r in rows if r["last_verified"] is None
                    or now - datetime.fromisoformat(r["last_verified"]) >= self.policy.tier(r["tier"]).audit_interval]
        return rows

    # ------------------------------------------------------------------ running
    def run(self, tier: str | None = None, aip_ids: list[str] | None = None, *, due: bool = True,
            time_limit: float | None = None) -> AuditResult:
        started = time.monotonic()
        result = AuditResult()
        rows = self.plan(tier, aip_ids, due)
        scope = {"tier": tier, "aips": sorted(aip_ids) if aip_ids else None}
        marker = None if due else self._resume_marker(scope)
        if marker is not None:
            rows = [r for r in rows if (r["last_verified"] or "") < marker]
        run_started = marker or self.now()
        reachable = self._reachability({r["tier"] for r in rows}, result)
        rows = [r for r in rows if r["tier"] in reachable]
        deadline = started + time_limit if time_limit else None
        self.progress.start("Kiểm tra toàn vẹn / auditing", len(rows))
        throttles = {t: Throttle(self.policy.tier(t).io_budget) for t in reachable}
        in_flight: list[tuple[dict, Future]] = []
        with ThreadPoolExecutor(self.workers, thread_name_prefix="audit-file") as files, \
                ThreadPoolExecutor(min(4, self.workers), thread_name_prefix="audit-aip") as aips:
            for i, row in enumerate(rows):
                if deadline is not None and time.monotonic() >= deadline:
                    result.remaining = len(rows) - i
                    result.stopped_early = True
                    break
                in_flight.append((row, aips.submit(self._read_one, row, files, throttles[row["tier"]])))
                while len(in_flight) >= self.workers:  # bounded: a few AIPs at a time
                    self._finish(*in_flight.pop(0), result)
            for item in in_flight:
                self._finish(*item, result)
        self.progress.done()
        if not due:
            self._save_resume_marker(scope, run_started if result.stopped_early else None)
        result.seconds = time.monotonic() - started
        return result

    def check_replica(self, row: dict[str, Any], result: AuditResult | None = None) -> ReplicaAudit | None:
        """Verify one replica now (recording its event and status, as an audit does); None if its tier is
        unreachable. Used by repair, which must use a source verified in the same run."""
        result = result if result is not None else AuditResult()
        before = len(result.audits)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="audit-file") as files:
            fut: Future = Future()
            try:
                fut.set_result(self._read_one(row, files, Throttle(None)))
            except Exception as e:  # noqa: BLE001 - recorded as that replica's finding by _finish
                fut.set_exception(e)
            self._finish(row, fut, result)
        return result.audits[-1] if len(result.audits) > before else None

    def _reachability(self, names: set[str], result: AuditResult) -> set[str]:
        ok = set()
        for name in sorted(names):
            reach, why = self.tiers[name].reachable()
            if reach:
                ok.add(name)
                resolve = getattr(self.alerter, "resolve", None)
                if resolve is not None:
                    resolve("E-TIER-UNREACHABLE", tier=name)
                continue
            result.unreachable.append({"tier": name, "reason": why})
            self.alerter.alert(Finding("E-TIER-UNREACHABLE", name, {"tier": name, "detail": why}), tier=name)
        return ok

    def _read_one(self, row: dict, files: ThreadPoolExecutor, throttle: Throttle):
        """(what was read, seconds), or (None, seconds) when the replica is gone. Tier errors propagate."""
        t0 = time.monotonic()
        tier = self.tiers[row["tier"]]
        root = getattr(tier, "root_path", None)
        if root is not None:
            bag = Path(root) / row["rel"]
            if not bag.is_dir():
                tier.check()  # the whole disk gone is unreachable, not 1,000 missing replicas
                return None, time.monotonic() - t0
            return read_local(bag, files, throttle), time.monotonic() - t0
        with self._serial.setdefault(row["tier"], threading.Lock()):  # one connection per network tier
            try:
                return read_tier(tier, row["rel"], throttle), time.monotonic() - t0
            except FileNotFoundError:
                return None, time.monotonic() - t0

    def _finish(self, row: dict, fut: Future, result: AuditResult) -> None:
        exp = Expected(row["aip"], row["rel"], row["tagmanifest_sha256"], self.catalog.file_digests(row["aip"]))
        try:
            got, seconds = fut.result()
        except TierUnreachable as e:  # the tier went away during the audit: its replicas are unknown, not damaged
            if row["tier"] not in {u["tier"] for u in result.unreachable}:
                why = str(e).split("\n")[0]
                result.unreachable.append({"tier": row["tier"], "reason": why})
                self.alerter.alert(Finding("E-TIER-UNREACHABLE", row["tier"], {"tier": row["tier"], "detail": why}),
                                   tier=row["tier"])
            return
        except Exception as e:  # noqa: BLE001 - one replica's read, whatever a storage library raises, must
            # not end the audit and leave every other replica unrecorded: it is that replica's finding
            detail = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            verdict = Verdict([Finding("E-AUDIT-UNREADABLE", f"{row['tier']}:{row['rel']}",
                                       {"aip": row["aip"], "tier": row["tier"], "path": "", "detail": detail})])
            self._record(row, "damaged", verdict, 0.0, result)
            return
        if got is None:
            verdict = Verdict([Finding("E-AUDIT-REPLICA-MISSING", f"{row['tier']}:{row['rel']}",
                                       {"aip": row["aip"], "tier": row["tier"], "path": ""})])
            self._record(row, "missing", verdict, seconds, result)
            return
        verdict = judge(exp, row["tier"], got, self.verify_signature)
        self._record(row, "intact" if verdict.intact else "damaged", verdict, seconds, result)

    def verify_signature(self, data: bytes, signature: bytes):
        """Intact, and made with one of this repository's certificates (current or retired).

        `openssl cms -verify` costs about 17 ms of CPU, as much as hashing 20 MiB. The bytes are re-read from
        every replica each time; the verification of the same bytes (same SHA-256 of tag manifest and signature)
        with a certificate still trusted is computed once: memoised in this run and in the catalog
        (signature_verified). Identical inputs cannot verify differently."""
        key = (hashlib.sha256(data).digest(), hashlib.sha256(signature).digest())
        with self._sig_lock:
            if key in self._sig_cache:
                return self._sig_cache[key]
        tm_hex, sig_hex = key[0].hex(), key[1].hex()
        trusted = {c.fingerprint(hashes.SHA256()).hex(): c for c in self.trusted_certs}
        known = self.catalog.signature_verified_with(tm_hex, sig_hex)
        if known is not None and known in trusted:
            check = SignatureCheck(True, "signature verified before over these very bytes, with a certificate "
                                         "still trusted", trusted[known].subject.rfc4514_string())
        else:
            check = None
            for fp, cert in trusted.items() or [(None, None)]:
                check = verify_detached(data, signature, cert)
                if check.ok:
                    if fp is not None:
                        try:
                            self.catalog.remember_signature(tm_hex, sig_hex, fp, self.now())
                        except CatalogError:
                            pass  # a memo only: another thread or process recorded it first
                    break
        with self._sig_lock:
            if len(self._sig_cache) > 10000:
                self._sig_cache.clear()
            self._sig_cache[key] = check
        return check

    # ------------------------------------------------------------------ recording
    def _record(self, row: dict, outcome: str, verdict: Verdict, seconds: float, result: AuditResult) -> None:
        when = self.now()
        audit = ReplicaAudit(row["aip"], row["fileCode"], row["tier"], row["rel"], outcome, verdict.findings,
                             verdict.files, verdict.bytes, seconds)
        result.audits.append(audit)
        tier = self.tiers[row["tier"]]
        if outcome == "intact":
            detail = (f"fixity check of the copy on tier '{row['tier']}': {verdict.files} files, {verdict.bytes} "
                      "bytes re-read; SHA-256 and SHA-512 match the manifests and the catalog; tag manifests and "
                      "signature verified")
            status, verified = "ok", when
        else:
            shown = "; ".join(f"{f.code} {f.params.get('path') or ''}".strip() for f in verdict.findings[:10])
            more = f" (+{len(verdict.findings) - 10} more)" if len(verdict.findings) > 10 else ""
            detail = f"fixity check of the copy on tier '{row['tier']}' found {outcome}: {shown}{more}"
            status, verified = ("missing" if outcome == "missing" else "damaged"), when  # when last checked
        ev = Event(f"uuid-{uuid.uuid4()}", "fixity check", when, "success" if outcome == "intact" else "failure",
                   detail, [AGENT], [row["aip"]])
        self.catalog.set_replica(row["aip"], row["tier"], tier.url(row["rel"]), status, verified, [ev],
                                 detail=None if outcome == "intact" else detail[:1000])
        if outcome == "intact":
            self._resolve(row)
        else:
            self.alerter.alert(Finding("E-AUDIT-DAMAGE", f"{row['tier']}:{row['rel']}", {
                "aip": row["aip"], "fileCode": row["fileCode"], "tier": row["tier"], "count": len(verdict.findings),
                "detail": "; ".join(f"{f.code} {f.params.get('path') or ''}".strip()
                                    for f in verdict.findings[:5])}), tier=row["tier"], aip=row["aip"])
        self.progress.advance(1)

    def _resolve(self, row: dict) -> None:
        resolve = getattr(self.alerter, "resolve", None)
        if resolve is not None:
            resolve("E-AUDIT-DAMAGE", tier=row["tier"], aip=row["aip"])

    # ------------------------------------------------------------------ resume marker (--all)
    def _resume_marker(self, scope: dict) -> str | None:
        try:
            data = json.loads((self.state_dir / "audit-resume.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data.get("started") if data.get("scope") == scope else None

    def _save_resume_marker(self, scope: dict, started: str | None) -> None:
        p = self.state_dir / "audit-resume.json"
        if started is None:
            p.unlink(missing_ok=True)
            return
        p.parent.mkdir(parents=True, exist_ok=True)
        write_text(p, json.dumps({"scope": scope, "started": started}))
