"""Ingest: validate a batch, then build, verify, publish and register one AIP per accepted dossier.

Write ordering (crash-safe; see docs/aip-format.md):
  1. build the bag in staging/<uuid>/v1, every file fsynced;
  2. read it back and verify;
  3. write a publish journal staging/<uuid>.publish naming the target;
  4. rename staging/<uuid> → <tier>/aips/ab/cd/<uuid> (atomic), fsync the parent;
  5. register everything in the catalog in one transaction;
  6. remove the journal.
`recover()` runs before every ingest, under the ingest lock: a journal whose AIP is not in the catalog is
rolled back (the published folder is removed), stray staging folders are removed. So a crash at any instant
leaves either no trace of the AIP or the whole AIP, registered.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .aip.build import BuildRefused, aip_rel_path, build_aip, new_aip_id, verify_staged
from .aip.model import SOFTWARE_AGENT, Event
from .atomic import JOURNAL_SUFFIX, fsync_dir, publish_dir, write_text
from .clock import now_iso
from .errors import StorageError, UsageError
from .findings import Finding
from .sip.validate import Validation

CRASHPOINT_ENV = "PRESERVE_CRASHPOINT"  # fault injection for the crash tests: SIGKILL ourselves at a named point


def _crashpoint(name: str) -> None:
    if os.environ.get(CRASHPOINT_ENV) == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class IngestResult:
    aips: list[dict] = field(default_factory=list)        # {"id", "fileCode", "path"}
    refused: list[dict] = field(default_factory=list)     # {"fileCode", "findings", "quarantine"}
    findings: list[Finding] = field(default_factory=list)
    quarantine: list[str] = field(default_factory=list)
    replication: Any = None                               # ReplicationResult of the new AIPs, or None

    def to_dict(self) -> dict:
        d = {"aips": self.aips, "refused": self.refused, "findings": [f.to_dict() for f in self.findings]}
        if self.replication is not None:
            d["replication"] = self.replication.to_dict()
        return d


@contextmanager
def ingest_lock(staging: Path) -> Iterator[None]:
    staging.mkdir(parents=True, exist_ok=True)
    fd = os.open(staging / ".ingest.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError("Another ingest is running in this repository.",
                             hint="Wait for it to finish, then run this command again.") from None
        yield
    finally:
        os.close(fd)


def recover(staging: Path, tier_root: Path, catalog) -> list[str]:
    """Undo what a killed ingest left. Returns what was done, for the log. Call under the ingest lock."""
    done: list[str] = []
    if not staging.is_dir():
        return done
    for journal in staging.glob(f"*{JOURNAL_SUFFIX}"):
        try:
            entry = json.loads(journal.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            entry = None
        if entry and catalog.get_aip(entry["id"]) is None:
            target = tier_root / entry["path"]
            aip_dir = target.parent  # aips/ab/cd/<uuid>
            if aip_dir.exists():
                trash = staging / f".rollback-{aip_dir.name}"
                os.rename(aip_dir, trash)
                fsync_dir(aip_dir.parent)
                shutil.rmtree(trash)
                done.append(f"rolled back unregistered AIP {entry['id']}")
        journal.unlink()
        done.append(f"cleared journal {journal.name}")
    for p in staging.iterdir():
        if not p.is_dir():
            continue
        if p.name.startswith(("sip-", "replicate-", "repair-", "eventlog-")):
            # a zip extracted for reading, or a copy downloaded by replication or repair: another command may
            # be using a fresh one
            if time.time() - p.stat().st_mtime > 86400:
                shutil.rmtree(p, ignore_errors=True)
            continue
        shutil.rmtree(p, ignore_errors=True)
        done.append(f"removed unfinished staging {p.name}")
    if done:
        fsync_dir(staging)
    return done


def publish(built_dir: Path, staging: Path, tier_root: Path, aip_id: str) -> str:
    """Move staging/<uuid> into the tier atomically; returns the AIP's path on the tier (…/v1)."""
    rel = aip_rel_path(aip_id)
    target_uuid_dir = tier_root / Path(rel).parent
    write_text(staging / f"{aip_id.removeprefix('uuid-')}{JOURNAL_SUFFIX}", json.dumps({"id": aip_id, "path": rel}))
    src = built_dir.parent  # staging/<uuid>
    _crashpoint("after-journal")
    try:
        publish_dir(src, target_uuid_dir)
    except OSError as e:
        if e.errno != 18:  # EXDEV: the tier is on another filesystem
            if not target_uuid_dir.exists():  # else the journal stays: recovery rolls the AIP back
                shutil.rmtree(src, ignore_errors=True)
                (staging / f"{aip_id.removeprefix('uuid-')}{JOURNAL_SUFFIX}").unlink(missing_ok=True)
            raise StorageError(f"Cannot publish AIP {aip_id} to {target_uuid_dir}: {e}",
                               hint="Check that the tier is mounted and writable, then ingest again.") from e
        partial = target_uuid_dir.parent / f".{target_uuid_dir.name}.partial"
        from .atomic import fsync_tree

        try:
            shutil.copytree(src, partial)
            fsync_tree(partial)
            publish_dir(partial, target_uuid_dir)
        except OSError as e2:
            shutil.rmtree(partial, ignore_errors=True)
            shutil.rmtree(src, ignore_errors=True)
            (staging / f"{aip_id.removeprefix('uuid-')}{JOURNAL_SUFFIX}").unlink(missing_ok=True)
            raise StorageError(f"Cannot publish AIP {aip_id} to {target_uuid_dir}: {e2}",
                               hint="Free space on the tier or fix the disk, then ingest the batch again.") from e2
        shutil.rmtree(src)
    return rel


AIP_METADATA_MARGIN = 4 << 20  # METS, PREMIS, descriptive XML, manifests, submission copy of the workbook


def ensure_room(plan, staging: Path, tier_root: Path) -> None:
    """Refuse (TierFull) before building an AIP that cannot fit in staging or on the primary tier: a write that
    cannot fit is never started. Dossiers already stored stay stored."""
    import psutil

    from .storage.base import TierFull

    need = sum(d.path.stat().st_size for d in plan.documents if d.path is not None) + AIP_METADATA_MARGIN
    for where in {staging, tier_root}:
        free = psutil.disk_usage(str(where)).free
        if need > free:
            raise TierFull(f"Not enough free space for dossier {plan.file_code}: it needs about {need:,} bytes and "
                           f"{where} has {free:,} free; nothing was written for it.",
                           hint="Free space or add capacity, then ingest the batch again: dossiers already stored "
                                "are refused as duplicates, the rest are ingested.")


def check_tier(tier_root: Path) -> Path:
    """A local tier must be there and writable. An absent folder is an unmounted disk, never created here."""
    from .storage.local import check_local_root

    check_local_root("primary", tier_root)
    return tier_root


def _new_quarantine_dir(quarantine: Path, name: str) -> Path:
    """A new folder quarantine/<name>[-N] with a file-system-safe name."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    dest, n = quarantine / safe, 1
    while dest.exists():
        n += 1
        dest = quarantine / f"{safe}-{n}"
    dest.mkdir(parents=True)
    return dest


def quarantine_dossier(quarantine: Path, validation: Validation, file_code: str, findings: list[Finding],
                       stamp: str) -> Path:
    """Copy a refused dossier (its scans, the workbook) with its report into quarantine/. Nothing else changes."""
    dest = _new_quarantine_dir(quarantine, f"{stamp}-{file_code}")
    plan = validation.dossiers.get(file_code)
    if plan is not None:
        for doc in plan.documents:
            if doc.path is not None and doc.path.is_file():
                (dest / "files" / doc.rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(doc.path, dest / "files" / doc.rel)
    if validation.workbook:
        for wbf in validation.workbook.files:
            shutil.copy2(wbf, dest / wbf.name)
    if validation.package.root is not None and (validation.package.root / "checksums.sha256").is_file():
        shutil.copy2(validation.package.root / "checksums.sha256", dest / "checksums.sha256")
    _write_report(dest, validation, file_code, findings)
    return dest


def quarantine_batch(quarantine: Path, validation: Validation, stamp: str) -> Path:
    """A batch refused as a whole: copy what was received, as received (links are not followed)."""
    src = validation.package.source
    dest = _new_quarantine_dir(quarantine, f"{stamp}-batch-{src.stem}")
    if src.is_file():
        shutil.copy2(src, dest / src.name)
    else:
        shutil.copytree(src, dest / src.name, symlinks=True, ignore_dangling_symlinks=True,
                        copy_function=_copy_regular)
    _write_report(dest, validation, None, validation.report.findings)
    return dest


def _copy_regular(src: str, dst: str) -> None:
    if os.path.isfile(src) and not os.path.islink(src):
        shutil.copy2(src, dst)


def _write_report(dest: Path, validation: Validation, file_code: str | None, findings: list[Finding]) -> None:
    report = {"source": str(validation.package.source), "fileCode": file_code, "refused": True,
              "findings": [f.to_dict() for f in findings]}
    write_text(dest / "report.json", json.dumps(report, ensure_ascii=False, indent=2))


def ingest_validated(validation: Validation, *, settings, catalog, signer, officer: str,
                     progress=None, ocr: bool = False) -> IngestResult:
    """Build and store the accepted dossiers of a validated batch. Refused dossiers go to quarantine.
    With `ocr`, each scan also gets a two-layer PDF/A-2 made by OCR (representations/ocr/)."""
    from .progress import NullProgress

    progress = progress or NullProgress()
    result = IngestResult(findings=list(validation.report.findings))
    stamp = time.strftime("%Y%m%dT%H%M%S")
    staging = settings.staging
    tier_root = check_tier(settings.tier_path(settings.primary_tier))

    if validation.batch_refused:
        q = quarantine_batch(settings.quarantine, validation, stamp)
        result.quarantine.append(str(q))
        for fc in validation.dossiers or ["*"]:
            result.refused.append({"fileCode": fc, "findings": [f.to_dict() for f in validation.report.errors
                                                               if f.dossier in (None, fc)], "quarantine": str(q)})
        catalog.append_event(_refusal_event(validation, None, settings, officer), None)
        return result

    accepted = validation.accepted()
    for fc in validation.refused():
        fs = [f for f in validation.report.findings if f.dossier == fc]
        q = quarantine_dossier(settings.quarantine, validation, fc, fs, stamp)
        result.quarantine.append(str(q))
        result.refused.append({"fileCode": fc, "findings": [f.to_dict() for f in fs], "quarantine": str(q)})
        catalog.append_event(_refusal_event(validation, fc, settings, officer), None)

    if ocr and accepted:
        from .ocr.engine import ocr_tools

        ocr_tools()  # UsageError before anything is built when ocrmypdf or the Vietnamese language is missing
    label = "Đóng gói AIP, OCR / packaging AIPs with OCR" if ocr else "Đóng gói AIP / packaging AIPs"
    progress.start(f"{label} (tài liệu / documents)", sum(len(p.documents) for p in accepted))
    for plan in accepted:
        ensure_room(plan, staging, tier_root)
        aip_id = new_aip_id()
        now = now_iso(settings.timezone)
        try:
            built = build_aip(plan, validation, staging, officer=officer, organisation=settings.organisation,
                              signer=signer, now=now, profile_name=settings.profile, aip_id=aip_id, ocr=ocr,
                              on_document=progress.advance,
                              ocr_page_seconds=settings.ocr_page_seconds if ocr else None)
        except OSError as e:  # disk full, I/O error: nothing was published; the staging copy goes
            shutil.rmtree(staging / aip_id.removeprefix("uuid-"), ignore_errors=True)
            raise StorageError(f"Could not write the AIP for {plan.file_code} in {staging}: {e}",
                               hint="Free space or fix the disk, then ingest the batch again; dossiers already "
                                    "stored are refused as duplicates, the rest are ingested.") from e
        except BuildRefused as e:
            shutil.rmtree(staging / aip_id.removeprefix("uuid-"), ignore_errors=True)
            result.findings.extend(e.findings)
            fs = [f for f in validation.report.findings if f.dossier == plan.file_code] + e.findings
            q = quarantine_dossier(settings.quarantine, validation, plan.file_code, fs, stamp)
            result.quarantine.append(str(q))
            result.refused.append({"fileCode": plan.file_code, "findings": [f.to_dict() for f in fs],
                                   "quarantine": str(q)})
            catalog.append_event(_refusal_event(validation, plan.file_code, settings, officer, e.findings), None)
            progress.advance(len(plan.documents))
            continue
        _crashpoint("after-build")
        problems = verify_staged(built)
        if problems:
            shutil.rmtree(built.bag_dir.parent, ignore_errors=True)
            raise StorageError(f"AIP for {plan.file_code} did not verify after writing to staging: {problems[:3]}",
                               hint="Check the disk under staging/ (space, errors in the system log), then ingest again.")
        rel = publish(built.bag_dir, staging, tier_root, aip_id)
        _crashpoint("after-publish")
        catalog.register_aip(built.aip, rel, settings.primary_tier, built.tagmanifest_sha256, now_iso(settings.timezone))
        _crashpoint("after-register")
        (staging / f"{aip_id.removeprefix('uuid-')}{JOURNAL_SUFFIX}").unlink()
        result.findings.extend(built.findings)
        result.aips.append({"id": aip_id, "fileCode": plan.file_code, "path": str(tier_root / rel),
                            "ocr": len(built.aip.derivatives())})
    progress.done()
    return result


def _refusal_event(validation: Validation, file_code: str | None, settings, officer: str,
                   extra: list[Finding] | None = None) -> Event:
    errors = [f for f in validation.report.errors if file_code is None or f.dossier in (None, file_code)]
    errors += extra or []
    codes = sorted({f.code for f in errors})
    what = f"dossier {file_code}" if file_code else "whole batch"
    return Event(new_aip_id(), "validation", now_iso(settings.timezone), "failure",
                 f"Refused {what} of {validation.package.source.name}: {', '.join(codes)}",
                 [SOFTWARE_AGENT, (f"agent-person-{officer}", "implementer")],
                 [file_code or validation.package.source.name])
