"""Rebuild the catalog from the AIPs on one tier, after the catalog was lost.

1. The catalog must be empty (a lost one is recreated empty when the repository opens).
2. The event log comes back first, from the newest `eventlog` snapshot of the off-site (restic) tiers, or from a
   folder given with --eventlog: every event re-verified against its hash as it is imported, so the rebuilt
   catalog continues the very chain the lost one had. The access tables (users, grants, requests) in the same
   snapshot come back with it.
3. Every AIP on the tier, versions in order, is read back (preserve.aip.read) after a check of what was read:
   its tag manifests, its CMS signature and the digests of its metadata files. The scans themselves are read
   by the audit that follows (`preserve audit --all`): a rebuild reads each AIP's metadata only, except from
   a restic tier, where one `restic dump` streams the whole AIP anyway and every byte is verified.
   Each AIP is registered as at ingest: fonds, dossier, documents, files, agents, and the PREMIS events inside
   the AIP that the imported log does not already hold.
4. The replicas on the other tiers are found by listing them (not yet verified: the audit does that).
5. The `recovery` events of restores made while there was no catalog (state/recovery-events.jsonl) are
   appended.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from ..aip.model import Event
from ..catalog import transfer
from ..errors import PreserveError, StorageError, UsageError
from ..findings import Finding
from ..fixity.verify import ALGORITHMS, Expected, is_tag_file, judge
from ..progress import NullProgress
from .restore import JOURNAL, aip_id_of

EVENTLOG_FILES = ("events.jsonl", "chain-head.json", "access.json")
SCANS = "data/representations/original/"  # the scans: read by the next audit (OCR derivatives are read now, for their text)


@dataclass
class RebuildResult:
    source: str
    aips: list[dict[str, Any]] = field(default_factory=list)   # {aip, path, status, detail}
    eventlog: dict[str, Any] | None = None
    events: dict[str, int] = field(default_factory=dict)
    replicas: dict[str, Any] = field(default_factory=dict)
    access: dict[str, int] = field(default_factory=dict)
    problems: list[Finding] = field(default_factory=list)
    tiers_set_up: list[str] = field(default_factory=list)   # lost local tiers made again, empty

    @property
    def ok(self) -> bool:
        return bool(self.aips) and all(a["status"] == "registered" for a in self.aips) and \
            not any(f.is_error for f in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "from": self.source,
                "registered": sum(1 for a in self.aips if a["status"] == "registered"),
                "failed": [a for a in self.aips if a["status"] != "registered"], "eventlog": self.eventlog,
                "events": self.events, "replicas": self.replicas, "access": self.access, "problems": [f.to_dict() for f in self.problems],
                "tiers_set_up": self.tiers_set_up}


@dataclass
class Rebuilder:
    repo: Any                       # the Repository (its catalog, tiers, settings)
    source: str
    verify_signature: Callable[[bytes, bytes], Any]
    progress: Any = None

    def run(self, eventlog: Path | None = None) -> RebuildResult:
        from ..aip.read import read_aip

        cat = self.repo.catalog
        if cat.counts()["aips"] or not transfer.chain_is_empty(cat.engine):
            raise UsageError("Danh mục không trống / The catalog is not empty: a rebuild makes a new one.",
                             hint="Move the old catalog aside (e.g. mv catalog.sqlite catalog.sqlite.old) or point "
                                  "[catalog] url at an empty database, then run it again; `preserve catalog "
                                  "compare --with URL` lists what differs between two catalogs.")
        tier = self.repo.tier(self.source)
        tier.check()
        result = RebuildResult(self.source)
        self._eventlog(result, eventlog)
        progress = self.progress or NullProgress()
        rels = sorted(tier.aip_paths(), key=lambda r: (_version(r), r))
        progress.start(f"Dựng lại danh mục / rebuilding the catalog from {self.source}", len(rels))
        registered: dict[str, str] = {}
        from_aips = 0
        newest_fonds: dict[str, tuple[str, str]] = {}    # code -> (created, name) of the newest AIP
        newest_agents: dict[str, tuple[str, Any]] = {}   # agent id -> (created, Agent)
        for rel in rels:
            row = {"aip": aip_id_of(rel), "path": rel, "status": "failed", "detail": ""}
            work = self.repo.settings.staging / f"rebuild-{uuid.uuid4().hex}"
            try:
                bag, tm_sha, full = self._read(tier, rel, work)
                aip = read_aip(bag)
                known = transfer.known_event_ids(cat.engine, [e.id for e in aip.events])
                fresh = [e for e in aip.events if e.id not in known]
                cat.register_aip(replace(aip, events=fresh), rel, self.source, tm_sha,
                                 self.repo.now() if full else None)
                from_aips += len(fresh)
                registered[row["aip"]] = rel
                code, name = str(aip.dossier["fondsCode"]), str(aip.dossier.get("fondsName") or "")
                if name and newest_fonds.get(code, ("",))[0] <= aip.created:
                    newest_fonds[code] = (aip.created, name)
                for agent in aip.agents:
                    if newest_agents.get(agent.id, ("",))[0] <= aip.created:
                        newest_agents[agent.id] = (aip.created, agent)
                row.update(status="registered", detail="every byte verified" if full else
                           "tag manifests, signature and metadata verified; the scans are read by the next audit")
            except (PreserveError, OSError, ValueError) as e:
                row["detail"] = str(e).splitlines()[0] if str(e) else type(e).__name__
                result.problems.append(Finding("E-REBUILD-AIP-FAILED", f"{self.source}:{rel}",
                                               {"aip": row["aip"], "tier": self.source, "detail": row["detail"]}))
            finally:
                shutil.rmtree(work, ignore_errors=True)
            result.aips.append(row)
            progress.advance(1)
        progress.done()
        cat.restore_latest({c: n for c, (_, n) in newest_fonds.items()}, [a for _, a in newest_agents.values()])
        result.events["from_aips"] = from_aips
        self._replicas(result, registered)
        result.events["recovery"] = self._journal()
        return result

    # --- the event log and the access tables ---------------------------------------------------------------
    def _eventlog(self, result: RebuildResult, folder: Path | None) -> None:
        cat = self.repo.catalog
        work = self.repo.settings.staging / f"eventlog-{uuid.uuid4().hex}"
        try:
            if folder is None:
                found = latest_eventlog(self.repo, work)
                if found is None:
                    result.problems.append(Finding("W-REBUILD-NO-EVENTLOG", self.source, {}))
                    result.events["imported"] = 0
                    return
                result.eventlog, folder = found
            else:
                result.eventlog = {"folder": str(folder)}
            n, problems = transfer.import_chain(cat.engine, _lines(Path(folder) / "events.jsonl"))
            result.events["imported"] = n
            result.problems.extend(Finding("E-REBUILD-EVENTLOG-BROKEN", str(folder),
                                           {"seq": n + 1, "imported": n, "detail": p}) for p in problems)
            try:
                head = json.loads((Path(folder) / "chain-head.json").read_text(encoding="utf-8"))
                result.eventlog["head"] = head
                if not problems and head.get("seq") != n:
                    result.problems.append(Finding("E-REBUILD-EVENTLOG-BROKEN", str(folder), {
                        "seq": n + 1, "imported": n,
                        "detail": f"the backup's chain head is at seq {head.get('seq')}: its last events are gone"}))
            except (OSError, ValueError):
                pass
            access = Path(folder) / "access.json"
            if access.is_file():
                result.access = transfer.import_access(cat.engine, json.loads(access.read_text(encoding="utf-8")))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # --- one AIP ---------------------------------------------------------------------------------------------
    def _read(self, tier, rel: str, work: Path) -> tuple[Path, str, bool]:
        """(a local folder holding the AIP's metadata, SHA-256 of its tag manifest, whether every byte was read)
        after checking what was read. Local tiers are read in place."""
        exp = Expected(aip_id_of(rel), rel, None, {})
        root = getattr(tier, "root_path", None)
        if root is not None:
            bag = Path(root) / rel
            got = [_digest(bag, name) for name in _metadata_names(bag)]
            full = False
        elif tier.kind == "restic":
            bag = work / rel
            got, full = tier.fetch_tree(rel, bag, ALGORITHMS, keep=is_tag_file), True
        else:
            bag = work / rel
            got = []
            for info in tier.list(rel):
                name = info.path[len(rel) + 1:]
                if not name.startswith(SCANS):
                    got.append(tier.copy_hashed(tier.open(info.path), name, bag, ALGORITHMS, is_tag_file))
            full = False
        verdict = judge(exp, tier.name, got, self.verify_signature)
        unread = {f.params.get("path") for f in verdict.findings
                  if f.code == "E-AUDIT-FILE-MISSING" and not full and str(f.params.get("path", "")).startswith(SCANS)}
        findings = [f for f in verdict.findings if f.params.get("path") not in unread]
        if findings:
            shown = "; ".join(f"{f.code} {f.params.get('path') or ''}".strip() for f in findings[:5])
            raise StorageError(f"AIP {exp.aip_id} on tier '{tier.name}' does not verify: {shown}",
                               hint=f"Rebuild from another tier, or restore this AIP from one "
                                    f"(preserve restore --from OTHER --aip {exp.aip_id} --into {tier.name}).")
        tm = next(d for d in got if d.path == "tagmanifest-sha256.txt")
        return bag, tm.digests["sha256"], full

    # --- replicas on the other tiers, and restores made without a catalog ---------------------------------
    def _replicas(self, result: RebuildResult, registered: dict[str, str]) -> None:
        cat = self.repo.catalog
        for name in self.repo.settings.tiers:
            if name == self.source:
                result.replicas[name] = len(registered)
                continue
            tier = self.repo.tier(name)
            try:
                held = tier.aip_paths()
            except StorageError as e:
                result.replicas[name] = f"unreachable: {str(e).splitlines()[0]}"
                continue
            n = 0
            for aip_id, rel in registered.items():
                if rel in held:
                    cat.set_replica(aip_id, name, tier.url(rel), "ok", None, [],
                                    detail="found by the catalog rebuild; not verified yet")
                    n += 1
            result.replicas[name] = n

    def _journal(self) -> int:
        """Append the recovery events of restores made while the catalog knew nothing of their AIPs. The file
        is kept (a second rebuild needs it too); an event already in the chain is not appended twice."""
        path = self.repo.root / JOURNAL
        if not path.is_file():
            return 0
        cat, n = self.repo.catalog, 0
        for line in _lines(path):
            ev = Event(**{**line["event"], "agents": [tuple(a) for a in line["event"]["agents"]]})
            if cat.aip_row(line["aip"]) is None or transfer.known_event_ids(cat.engine, [ev.id]):
                continue
            if line.get("tier"):
                cat.set_replica(line["aip"], line["tier"], self.repo.tier(line["tier"]).url(line["path"]), "ok",
                                ev.datetime, [ev])
            else:
                cat.append_event(ev, line["aip"])
            n += 1
        return n


def latest_eventlog(repo, work: Path) -> tuple[dict[str, Any], Path] | None:
    """The newest `eventlog` snapshot of the restic tiers, its files copied to work/: (about it, the folder)."""
    from ..offsite import EVENTLOG_TAG

    best = None
    for name, spec in repo.settings.tiers.items():
        if spec.get("kind") != "restic":
            continue
        tier = repo.tier(name)
        try:
            snaps = tier.restic.snapshots(["preserve", EVENTLOG_TAG])
        except StorageError:
            continue
        for snap in snaps:
            if best is None or snap.get("time", "") > best[1].get("time", ""):
                best = (tier, snap)
    if best is None:
        return None
    tier, snap = best
    work.mkdir(parents=True, exist_ok=True)
    for name in EVENTLOG_FILES:
        try:
            with tier.restic.dump(snap["id"], f"/eventlog/{name}") as src, open(work / name, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        except StorageError:
            if name == "events.jsonl":
                raise
            (work / name).unlink(missing_ok=True)
    return {"tier": tier.name, "snapshot": snap["id"], "time": snap.get("time")}, work


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _version(rel: str) -> int:
    try:
        return int(rel.rsplit("/v", 1)[1])
    except (IndexError, ValueError):
        return 0


def _metadata_names(bag: Path) -> list[str]:
    return sorted(p.relative_to(bag).as_posix() for p in bag.rglob("*")
                  if p.is_file() and not p.relative_to(bag).as_posix().startswith(SCANS))


def _digest(bag: Path, name: str):
    from ..fixity.verify import Throttle, hash_local_file

    return hash_local_file(bag / name, name, Throttle(None))

