"""Repair: replace a damaged or missing replica from another replica verified in the same run.

For each replica that the latest audits marked damaged or missing (or the ones named):
  1. verify the other replicas of that AIP now, local ones first, until one is intact (each verification is a
     fixity-check event; a copy verified earlier is never trusted: "never repair from a copy that was not
     verified in the same run");
  2. remove the bad copy and write the good one in its place (staged and published by the tier, hashed while
     copying, compared with the good copy's own manifests), so that the repaired copy equals the good one
     exactly: extra files are gone too;
  3. verify the repaired copy like an audit would (a second fixity-check event) and record a replication event.
When no intact copy exists anywhere, a critical alert names the AIP and the damaged files.

A restic replica cannot be repaired by writing it again: restic would re-use its own damaged blobs. Such a
replica is reported (E-REPAIR-FAILED) with the restic commands that rebuild the repository's index first.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..aip.inventory import add_unlisted, compare, expected_inventory, root_digests
from ..aip.model import Event
from ..errors import StorageError
from ..findings import Finding
from ..storage.base import Tier
from .audit import AGENT, Auditor, ReplicaAudit


@dataclass
class RepairResult:
    repairs: list[dict[str, Any]] = field(default_factory=list)  # {aip, fileCode, tier, status, source, detail}

    @property
    def ok(self) -> bool:
        return all(r["status"] == "repaired" for r in self.repairs)

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(1 for r in self.repairs if r["status"] == s) for s in ("repaired", "failed", "no-source")}
        return {"ok": self.ok, **counts, "repairs": self.repairs}


class Repairer:
    def __init__(self, auditor: Auditor, scratch: Path):
        """Repairs see the repository as `auditor` does (catalog, policy, tiers, alerter, clock) and verify
        through it; `scratch` holds copies downloaded from network tiers."""
        self.auditor = auditor
        self.catalog, self.policy, self.tiers = auditor.catalog, auditor.policy, auditor.tiers
        self.alerter, self.now = auditor.alerter, auditor.now
        self.scratch = Path(scratch)

    def targets(self, aip_ids: list[str] | None, tier: str | None) -> list[dict[str, Any]]:
        tiers = [tier] if tier else list(self.policy.copy_tiers)
        self.catalog.require_aips(aip_ids)
        rows = self.catalog.audit_candidates(tiers, aip_ids)
        if aip_ids is None:
            rows = [r for r in rows if r["status"] in ("damaged", "missing")]
        return rows

    def run(self, aip_ids: list[str] | None = None, tier: str | None = None) -> RepairResult:
        result = RepairResult()
        for row in self.targets(aip_ids, tier):
            if aip_ids is not None and row["status"] == "ok":
                # named explicitly: verify it first, repair only if it is bad now
                now = self.auditor.check_replica(row)
                if now is None or now.outcome == "intact":
                    continue
            self._repair_one(row, result)
        return result

    def _repair_one(self, row: dict[str, Any], result: RepairResult) -> None:
        base = {"aip": row["aip"], "fileCode": row["fileCode"], "tier": row["tier"], "source": None}
        target = self.tiers[row["tier"]]
        if target.kind == "restic" and row["status"] != "missing":
            self._fail(row, result, base, f"tier '{row['tier']}' is a restic repository: writing the AIP again "
                       "would re-use restic's damaged blobs; run `restic check`, remove the damaged packs it "
                       "names, `restic rebuild-index`, then `preserve replicate --tier " + row["tier"] + "`")
            return
        source = self._verified_source(row)
        if source is None:
            self._no_source(row, result, base)
            return
        src_row, src_base, release = source
        base["source"] = src_row["tier"]
        try:
            self._replace(row, target, src_base, src_row)
        except (StorageError, OSError) as e:
            self._fail(row, result, base, f"writing the good copy from tier '{src_row['tier']}' failed: "
                       f"{str(e).splitlines()[0]}")
            return
        finally:
            release()
        after = self.auditor.check_replica({**row, "status": "damaged"})
        if after is None or after.outcome != "intact":
            codes = ", ".join(f.code for f in (after.findings if after else [])[:5]) or "unreachable"
            self._fail(row, result, base, f"the repaired copy does not verify ({codes})")
            return
        when = self.now()
        ev = Event(f"uuid-{uuid.uuid4()}", "replication", when, "success",
                   f"repair: the damaged copy on tier '{row['tier']}' was replaced from tier '{src_row['tier']}' "
                   "(verified in the same run), then verified", [AGENT], [row["aip"]])
        self.catalog.append_event(ev, row["aip"])
        resolve = getattr(self.alerter, "resolve", None)
        if resolve is not None:
            resolve("E-REPAIR-FAILED", tier=row["tier"], aip=row["aip"])
            resolve("C-REPAIR-NO-GOOD-COPY", aip=row["aip"])
        result.repairs.append({**base, "status": "repaired",
                               "detail": f"replaced from tier '{src_row['tier']}' and verified"})

    def _verified_source(self, row: dict[str, Any]) -> tuple[dict[str, Any], Path, Callable[[], None]] | None:
        """(the replica row, a local folder holding <folder>/<rel>, a release function) of another copy verified
        intact right now. A copy on a network tier is downloaded to scratch space after its verification; what
        is written from it is checked against its manifests, which the catalog vouches for."""
        others = [r for r in self.catalog.audit_candidates(list(self.tiers), [row["aip"]])
                  if r["tier"] != row["tier"] and self.tiers[r["tier"]].kind != "restic"]
        others.sort(key=lambda r: getattr(self.tiers[r["tier"]], "root_path", None) is None)
        for other in others:
            audit: ReplicaAudit | None = self.auditor.check_replica(other)
            if audit is None or audit.outcome != "intact":
                continue
            tier = self.tiers[other["tier"]]
            root = getattr(tier, "root_path", None)
            if root is not None:
                return other, Path(root), lambda: None
            folder = self.scratch / f"repair-{uuid.uuid4().hex}"
            try:
                tier.get_tree(other["rel"], folder)
            except (StorageError, OSError):
                shutil.rmtree(folder, ignore_errors=True)
                continue
            return other, folder, lambda f=folder: shutil.rmtree(f, ignore_errors=True)
        return None

    def _replace(self, row: dict[str, Any], target: Tier, src_base: Path, src_row: dict[str, Any]) -> None:
        """Remove the bad copy, write the good one; check what was written against the good copy's manifests."""
        rel = row["rel"]
        inv = expected_inventory(lambda p: (src_base / rel / p).read_bytes(), src_row["tagmanifest_sha256"])
        add_unlisted(inv, root_digests(src_base / rel))
        target.check()
        if target.exists(rel):
            target.delete(rel)
        written = target.put_tree(src_base, rel, ("sha256",))
        diffs = compare(inv.expected, ((d.path, d.digests["sha256"]) for d in written))
        if diffs:
            target.delete(rel)
            raise StorageError(f"the copy written does not match the good copy: {diffs[0]['path']} "
                               f"{diffs[0]['problem']}")

    def _fail(self, row: dict[str, Any], result: RepairResult, base: dict, detail: str) -> None:
        self.catalog.append_event(Event(f"uuid-{uuid.uuid4()}", "replication", self.now(), "failure",
                                        f"repair of the copy on tier '{row['tier']}' failed: {detail}", [AGENT],
                                        [row["aip"]]), row["aip"])
        self.alerter.alert(Finding("E-REPAIR-FAILED", f"{row['tier']}:{row['rel']}", {
            "aip": row["aip"], "fileCode": row["fileCode"], "tier": row["tier"], "detail": detail}),
            tier=row["tier"], aip=row["aip"])
        result.repairs.append({**base, "status": "failed", "detail": detail})

    def _no_source(self, row: dict[str, Any], result: RepairResult, base: dict) -> None:
        damaged = sorted({f"{r['tier']}" for r in self.catalog.audit_candidates(list(self.tiers), [row["aip"]])})
        files = self._damaged_files(row)
        detail = f"no intact copy of AIP {row['aip']} on any tier ({', '.join(damaged)}); damaged files: {files}"
        self.alerter.alert(Finding("C-REPAIR-NO-GOOD-COPY", row["aip"], {
            "aip": row["aip"], "fileCode": row["fileCode"], "tiers": ", ".join(damaged), "files": files}),
            aip=row["aip"])
        self.catalog.append_event(Event(f"uuid-{uuid.uuid4()}", "replication", self.now(), "failure",
                                        f"repair impossible: {detail}", [AGENT], [row["aip"]]), row["aip"])
        result.repairs.append({**base, "status": "no-source", "detail": detail})

    def _damaged_files(self, row: dict[str, Any]) -> str:
        """The files the latest audit of this replica named (from its replica detail)."""
        for r in self.catalog.replicas(row["aip"], row["tier"]):
            if r.get("detail"):
                return r["detail"].split(": ", 1)[-1][:400]
        return "(see the latest audit)"

