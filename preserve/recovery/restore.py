"""Restore: bring AIPs back from any tier into another tier (rebuilding a lost one) or into a plain folder,
verifying every byte of each one before it counts.

For each AIP, one at a time (disk use is one AIP, never a second copy of the source; a restic tier streams
the AIP out of one `restic dump`):
  1. copy it from the source into scratch space, hashing every file as it is written (SHA-256 and SHA-512);
  2. judge what was written as an audit would: the bag's own tag and payload manifests, the CMS signature over
     the tag manifest (with the repository's trusted certificates), and the catalog's digests when the catalog
     knows the AIP (restore works without a catalog: then the manifests and the signature decide);
  3. publish it: into a tier with put_tree (staged, published in one step, hashed again while written and
     compared), or into the folder by a rename; a copy already there that verifies is left as it is;
  4. record a PREMIS `recovery` event: in the catalog when it knows the AIP (with the new replica), else in
     state/recovery-events.jsonl, which `preserve catalog rebuild` appends to the rebuilt chain.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..aip.model import SOFTWARE_AGENT, Event
from ..errors import StorageError, UsageError
from ..findings import Finding
from ..fixity.verify import ALGORITHMS, Expected, Throttle, hash_local_file, is_tag_file, judge, local_files
from ..progress import NullProgress
from ..storage.base import FileDigest, Tier, TierConflict

JOURNAL = "state/recovery-events.jsonl"


def aip_id_of(rel: str) -> str:
    """aips/ab/cd/<uuid>/v1 → uuid-<uuid> (the AIP's id is its folder's name)."""
    parts = rel.split("/")
    if len(parts) != 5 or parts[0] != "aips":
        raise UsageError(f"{rel!r} is not the path of an AIP on a tier.", hint="AIPs live at aips/ab/cd/<uuid>/vN.")
    return f"uuid-{parts[3]}"


@dataclass
class RestoreResult:
    source: str
    target: str
    aips: list[dict[str, Any]] = field(default_factory=list)  # {aip, path, status, files, bytes, detail, findings}

    @property
    def ok(self) -> bool:
        return bool(self.aips) and all(a["status"] in ("restored", "present") for a in self.aips)

    def to_dict(self) -> dict[str, Any]:
        count = {s: sum(1 for a in self.aips if a["status"] == s) for s in ("restored", "present", "failed")}
        return {"ok": self.ok, "from": self.source, "into": self.target, **count,
                "bytes": sum(a["bytes"] for a in self.aips), "aips": self.aips}


@dataclass
class Restorer:
    source: Tier
    catalog: Any
    verify_signature: Callable[[bytes, bytes], Any]
    now: Callable[[], str]
    scratch: Path
    journal: Path
    into: Tier | None = None        # a tier, or
    to: Path | None = None          # a plain folder
    progress: Any = None
    label: str = "restore"          # how its events begin ("restore drill" for a drill)

    def select(self, aip_ids: list[str] | None) -> list[str]:
        """The AIP paths on the source: every one (aip_ids None), or the versions of the AIPs named."""
        held = sorted(self.source.aip_paths())
        if aip_ids is None:
            return held
        out, unknown = [], []
        for aid in dict.fromkeys(aip_ids):
            mine = [r for r in held if aip_id_of(r) == aid]
            (out.extend(mine) if mine else unknown.append(aid))
        if unknown:
            raise UsageError(f"Tier '{self.source.name}' holds no AIP {', '.join(unknown)}.",
                             hint="List what it holds with `preserve tiers status`, or restore from another tier.")
        return out

    def run(self, rels: list[str]) -> RestoreResult:
        progress = self.progress or NullProgress()
        target = self.into.name if self.into is not None else str(self.to)
        result = RestoreResult(self.source.name, target)
        progress.start(f"Khôi phục / restoring from {self.source.name}", len(rels))
        try:
            todo = []
            for rel in rels:
                exp, known = self._expected(rel)
                present = self._present(exp)
                if present is None:
                    todo.append((exp, known))
                    continue
                result.aips.append({"aip": exp.aip_id, "path": rel, "status": "present", "files": present.files,
                                    "bytes": present.bytes, "findings": [], "catalog": known,
                                    "detail": "already there and verified intact; left as it is"})
                progress.advance(1)
            for group in self._groups(todo):
                for row in self._restore_group(group):
                    result.aips.append(row)
                    progress.advance(1)
        finally:
            progress.done()
        return result

    def _groups(self, todo: list[tuple[Expected, bool]]) -> list[list[tuple[Expected, bool]]]:
        """One AIP at a time, except from restic: the AIPs of one snapshot together (one `restic dump`)."""
        snapshot_of = getattr(self.source, "snapshot_of", None)
        if snapshot_of is None:
            return [[item] for item in todo]
        groups: dict[str | None, list[tuple[Expected, bool]]] = {}
        for item in todo:
            groups.setdefault(snapshot_of(item[0].rel), []).append(item)
        return list(groups.values())

    def _restore_group(self, group: list[tuple[Expected, bool]]) -> list[dict[str, Any]]:
        base = self._work_dir()
        try:
            fetched: dict[str, list[FileDigest]] | None = None
            if len(group) > 1:
                try:
                    fetched = self.source.fetch_trees(self.source.snapshot_of(group[0][0].rel),
                                                      [e.rel for e, _ in group], base, ALGORITHMS, keep=is_tag_file)
                except (StorageError, OSError):
                    shutil.rmtree(base, ignore_errors=True)  # one at a time instead: each says what went wrong
                    base.mkdir(parents=True)
                    fetched = None
            return [self._one(exp, known, base, (fetched or {}).get(exp.rel) or None) for exp, known in group]
        finally:
            shutil.rmtree(base, ignore_errors=True)
            if self.to is not None:
                try:
                    base.parent.rmdir()  # .preserve-restore, when no other restore is using it
                except OSError:
                    pass

    # ---------------------------------------------------------------------------------------------------------
    def _expected(self, rel: str) -> tuple[Expected, bool]:
        aip_id = aip_id_of(rel)
        info = self.catalog.aip_row(aip_id)
        if info is None or info["path"] != rel:
            return Expected(aip_id, rel, None, {}), False
        return Expected(aip_id, rel, info["tagmanifest_sha256"] or None, self.catalog.file_digests(aip_id)), True

    def _one(self, exp: Expected, known: bool, base: Path, got: list[FileDigest] | None) -> dict[str, Any]:
        """Verify and publish one AIP, fetched already (`got`, under base/rel) or fetched now."""
        rel = exp.rel
        row = {"aip": exp.aip_id, "path": rel, "status": "failed", "files": 0, "bytes": 0, "detail": "",
               "findings": [], "catalog": known}
        try:
            if got is None:
                got = self.source.fetch_tree(rel, base / rel, ALGORITHMS, keep=is_tag_file)
            verdict = judge(exp, self.source.name, got, self.verify_signature)
            row.update(files=verdict.files, bytes=verdict.bytes)
            if not verdict.intact:
                row.update(detail=f"{self.label}: the copy on tier '{self.source.name}' does not verify; nothing "
                                  "was written",
                           findings=[f.to_dict() for f in verdict.findings])
            else:
                self._publish(base, rel, got)
                row.update(status="restored", detail=self._what(exp, known, verdict))
        except (StorageError, OSError) as e:
            row["detail"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        finally:
            shutil.rmtree(base / rel, ignore_errors=True)  # this AIP's scratch copy, as soon as it is done
        if row["status"] == "failed":
            row["problem"] = Finding("E-RESTORE-FAILED", f"{self.source.name}:{rel}", {
                "aip": exp.aip_id, "tier": self.source.name,
                "detail": row["detail"] + (f" ({row['findings'][0]['code']} …)" if row["findings"] else "")}).to_dict()
        self._record(row, known)
        return row

    def _what(self, exp: Expected, known: bool, verdict) -> str:
        where = f"tier '{self.into.name}'" if self.into is not None else f"folder {self.to}"
        checks = "manifests, signature" + (" and catalog digests" if known else " (no catalog entry)")
        return (f"{self.label}: restored from tier '{self.source.name}' into {where}: {verdict.files} files, "
                f"{verdict.bytes} bytes; {checks} verified")

    def _work_dir(self) -> Path:
        """Scratch space for one AIP: inside the target folder (the final step is a rename), else staging."""
        parent = (self.to / ".preserve-restore") if self.to is not None else self.scratch
        d = parent / f"restore-{uuid.uuid4().hex}"
        d.mkdir(parents=True)
        return d

    def _present(self, exp: Expected):
        """The verdict on a copy already at the target, when there is one and it verifies; else None (a damaged
        or partial copy in a folder is refused rather than overwritten; on a tier it is replaced)."""
        if self.into is not None:
            if not self.into.exists(exp.rel):
                return None
            verdict = judge(exp, self.into.name, self.into.read_tree(exp.rel, ALGORITHMS, keep=is_tag_file),
                            self.verify_signature)
            if verdict.intact:
                return verdict
            self.into.delete(exp.rel)
            return None
        folder = self.to / exp.rel
        if not folder.exists():
            return None
        got = [hash_local_file(p, name, Throttle(None)) for p, name in local_files(folder)]
        verdict = judge(exp, "folder", got, self.verify_signature)
        if verdict.intact:
            return verdict
        raise UsageError(f"{folder} exists and does not verify as AIP {exp.aip_id}.",
                         hint="Move it away (it is not overwritten), then restore again.")

    def _publish(self, base: Path, rel: str, got: list[FileDigest]) -> None:
        if self.into is not None:
            written = self.into.put_tree(base, rel, ALGORITHMS)
            want = {d.path: d.digests for d in got}
            if {d.path: d.digests for d in written} != want:
                self.into.delete(rel)
                raise StorageError(f"Tier '{self.into.name}': the copy written of {rel} differs from what was "
                                   "verified; it was removed.", hint="Check the disk of that tier, then restore again.")
            return
        final = self.to / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            raise TierConflict(f"{final} appeared during the restore.", hint="Restore again.")
        os.rename(base / rel, final)

    def _record(self, row: dict[str, Any], known: bool) -> None:
        ok = row["status"] == "restored"
        shown = "; ".join(f"{f['code']} {f['params'].get('path') or ''}".strip() for f in row["findings"][:5])
        detail = row["detail"] + (f": {shown}" if shown else "")
        ev = Event(f"uuid-{uuid.uuid4()}", "recovery", self.now(), "success" if ok else "failure", detail,
                   [SOFTWARE_AGENT], [row["aip"]])
        if known and self.into is not None and ok:
            self.catalog.set_replica(row["aip"], self.into.name, self.into.url(row["path"]), "ok", ev.datetime,
                                     [ev], detail=None)
        elif known:
            self.catalog.append_event(ev, row["aip"])
        else:
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            entry = {"aip": row["aip"], "tier": self.into.name if (self.into is not None and ok) else None,
                     "path": row["path"], "event": ev.__dict__}
            with open(self.journal, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
