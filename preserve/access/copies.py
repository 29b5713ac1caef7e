"""Access copies: the DIP of an approved request, made from a replica of the AIP verified in the same run.

1. The request must be approved and not expired, and its requester still allowed (the rules are applied again
   to the record as the catalog has it now); else an `access refusal` event and AccessRefused.
2. Replicas of the dossier's latest AIP version are verified, local tiers first (an audit's fixity check, with
   its event), until one is intact.
3. The documents asked for (their OCR derivative, which has a text layer, else the scan) are copied from that
   replica to scratch space, hashed while they
   are copied, and compared with the catalog's digests: the bytes used are the bytes just verified. The AIP is
   only read.
4. preserve.dip builds the watermarked copies, METS.xml and README.txt into one zip.
5. A PREMIS `dissemination` event is recorded for the AIP (requester, approver, maker, purpose, request id).
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..catalog.db import write_session
from ..catalog.models import AccessRequest
from ..errors import StorageError
from ..progress import NullProgress
from . import events
from .requests import AccessRefused, Requests
from .rules import SECRET, User, check_maker, is_expired

CHUNK = 1 << 20
OCR_DIR = "representations/ocr/data"


def _access_file(doc: dict[str, Any], digests: dict[str, dict[str, Any]]) -> str:
    """The file a copy of `doc` is made from: its OCR derivative when the AIP holds one, else the scan."""
    ocr = f"{OCR_DIR}/{doc['docCode']}.pdf"
    return ocr if f"data/{ocr}" in digests else doc["file"]


@dataclass
class CopyMaker:
    requests: Requests
    catalog: Any
    tiers: dict[str, Any]
    tier_order: list[str]            # the policy's copy tiers, primary first
    auditor: Any                     # preserve.fixity.audit.Auditor: verifies a replica and records it
    organisation: str
    scratch: Path
    now: Callable[[], str]

    def make(self, request_id: str, out_dir: Path, *, by: str | None = None, images_dpi: int | None = None,
             progress=None) -> dict[str, Any]:
        from ..dip import DipDocument, DipSpec, build_dip

        progress = progress or NullProgress()
        users = self.requests.users
        row = self.requests.row(request_id)
        requester = users.require(row.user_name)
        maker = users.require(by) if by else None
        record, where = self.requests.resolve_row(row)
        problem = check_maker(maker, requester, record, row.status, is_expired(row.expires, self.now()))
        if problem is not None:
            self.requests.log_refusal(maker or requester, row, "make a copy", problem)
            raise AccessRefused(problem, self.requests.get(request_id))
        work = self.scratch / f"dip-{uuid.uuid4().hex}"
        work.mkdir(parents=True)
        try:
            tier, sources = self._verified_sources(where, work)
            docs = [DipDocument(d["docCode"], d["subject"], path, file, sha)
                    for d, (path, sha, file) in zip(where["documents"], sources)]
            when = self.now()
            spec = DipSpec(dip_id=f"uuid-{uuid.uuid4()}", request_id=row.id, requester=requester.display,
                           purpose=row.purpose, created=when, organisation=self.organisation,
                           aip_id=where["aip_id"], aip_version=where["aip_version"], file_code=record.file_code,
                           dossier_title=where["title"], tier=tier, strong=record.level == SECRET,
                           documents=docs, images_dpi=images_dpi)
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            result = build_dip(spec, Path(out_dir), work / "build", progress=progress)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self._record(row, requester, maker, record, where, tier, result, spec)
        out = result.to_dict()
        out.update(request=row.id, user=requester.name, aip=where["aip_id"], aipVersion=where["aip_version"],
                   tier=tier, watermark="strong" if spec.strong else "normal")
        return out

    def _verified_sources(self, where: dict[str, Any], work: Path) -> tuple[str, list[tuple[Path, str, str]]]:
        """(tier, [(local copy, sha256, path in the AIP)] per document) from the first replica that verifies
        intact now. A document's OCR derivative (two-layer PDF/A, searchable) is used when the AIP has one,
        else its scan."""
        aip_id = where["aip_id"]
        digests = self.catalog.file_digests(aip_id)
        rows = self.catalog.audit_candidates(list(self.tiers), [aip_id])
        rank = {t: i for i, t in enumerate(self.tier_order)}
        rows.sort(key=lambda r: (self.tiers[r["tier"]].kind == "restic",
                                 getattr(self.tiers[r["tier"]], "root_path", None) is None,
                                 rank.get(r["tier"], len(rank))))
        tried = []
        for row in rows:
            if not self.tiers[row["tier"]].reachable()[0]:
                tried.append(f"{row['tier']}: unreachable")
                continue
            audit = self.auditor.check_replica(row)
            if audit is None or audit.outcome != "intact":
                tried.append(f"{row['tier']}: {audit.outcome if audit else 'unreachable'}")
                continue
            try:
                return row["tier"], [self._fetch(row, _access_file(d, digests), digests, work)
                                     for d in where["documents"]]
            except (StorageError, OSError, ValueError) as e:
                tried.append(f"{row['tier']}: {e}")
        raise StorageError(f"Không có bản sao nào của AIP {aip_id} vừa kiểm tra nguyên vẹn / No copy of AIP "
                           f"{aip_id} verified intact now ({'; '.join(tried) or 'no replicas'}).",
                           hint=f"Run `preserve audit --aip {aip_id}` and `preserve repair --aip {aip_id}`, then "
                                "make the copy again.")

    def _fetch(self, row: dict[str, Any], file: str, digests: dict[str, dict[str, Any]],
               work: Path) -> tuple[Path, str, str]:
        """One original copied to scratch and hashed while copied; it must equal the catalog's digest."""
        name = f"data/{file}"
        want = digests.get(name)
        if want is None:
            raise ValueError(f"the catalog lists no file {name}")
        dest = work / "src" / Path(file).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        with self.tiers[row["tier"]].open(f"{row['rel']}/{name}") as src, open(dest, "xb") as out:
            while chunk := src.read(CHUNK):
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != want["sha256"]:
            raise ValueError(f"{name} changed after it was verified (sha256 {h.hexdigest()})")
        return dest, want["sha256"], file

    def _record(self, row: AccessRequest, requester: User, maker: User | None, record, where: dict[str, Any],
                tier: str, result, spec) -> None:
        when = self.now()
        zip_sha = _sha256(result.zip_path)
        with write_session(self.requests.engine) as s:
            live = s.get(AccessRequest, row.id)
            live.copies += 1
            s.add(live)
            agents = [(events.user_agent(requester.name), "recipient")]
            if row.decided_by and row.decided_by != "rules":
                agents.append((events.user_agent(row.decided_by), "authorizer"))
            if maker is not None and maker.name != requester.name:
                events.upsert_person(s, events.user_agent(maker.name), maker.full_name or maker.name, maker.role)
                agents.append((events.user_agent(maker.name), "implementer"))
            docs = ", ".join(d.doc_code for d in spec.documents)
            events.record(s, events.DISSEMINATION, when, "success",
                          f"access copy {spec.dip_id} for request {row.id} of {requester.name}, purpose: "
                          f"{row.purpose}; {record.kind} {record.code} (documents {docs}) from AIP "
                          f"{where['aip_id']} version {where['aip_version']} read on tier '{tier}' after it "
                          f"verified; {'strong' if spec.strong else 'normal'} watermark; "
                          f"{result.zip_path.name} sha256 {zip_sha}", agents,
                          [where["aip_id"], f"request:{row.id}", *(d.source_path for d in spec.documents)],
                          where["aip_id"])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
