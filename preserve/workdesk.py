"""What the officers' desk of the web app needs besides the façade's own operations: uploaded batches kept in
staging until they are ingested, access copies kept per request, and an overview of audits (HTML reports,
damaged replicas, repairs, the scheduler). Knows nothing of the web layer.

Uploads live in <staging>/sip-upload-<id>/ (the "sip-" prefix: ingest recovery leaves a fresh one alone) with
the zip as batch.zip, meta.json (who uploaded it, its name and size) and report.json (the validation report).
Access copies live in <repository>/dip/<request id>/. Audit reports are the HTML files in <repository>/reports/
(`preserve audit --report <repository>/reports/audit-….html`, or Repository.write_audit_report)."""

from __future__ import annotations

import json
import re
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Any

from .errors import UsageError

UPLOAD_PREFIX = "sip-upload-"
_ID = re.compile(r"^[0-9a-f]{32}$")
_REPORT = re.compile(r"^[\w.-]+\.html$")


class Uploads:
    """Uploaded batches in the repository's staging folder."""

    def __init__(self, staging: Path, max_bytes: int):
        self.staging = Path(staging)
        self.max_bytes = max_bytes

    def folder(self, upload_id: str) -> Path:
        if not _ID.match(upload_id or ""):
            raise UsageError(f"Không có tệp tải lên / no upload '{upload_id}'.", hint="Upload the batch again.")
        return self.staging / f"{UPLOAD_PREFIX}{upload_id}"

    def begin(self, filename: str, owner: str) -> UploadWriter:
        """A new upload to write chunk by chunk as it arrives (refused at once when not named .zip)."""
        return UploadWriter(self, filename, owner)

    def zip_path(self, upload_id: str) -> Path:
        path = self.folder(upload_id) / "batch.zip"
        if not path.is_file():
            raise UsageError(f"Không có tệp tải lên / no upload '{upload_id}' (already ingested or removed).",
                             hint="Upload the batch again.")
        return path

    def meta(self, upload_id: str) -> dict[str, Any]:
        self.zip_path(upload_id)
        return json.loads((self.folder(upload_id) / "meta.json").read_text(encoding="utf-8"))

    def save_report(self, upload_id: str, report: dict[str, Any]) -> None:
        (self.folder(upload_id) / "report.json").write_text(json.dumps(report, ensure_ascii=False), encoding="utf-8")

    def report(self, upload_id: str) -> dict[str, Any] | None:
        path = self.folder(upload_id) / "report.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def remove(self, upload_id: str) -> None:
        shutil.rmtree(self.folder(upload_id), ignore_errors=True)

    def list(self, owner: str | None = None) -> list[dict[str, Any]]:
        out = []
        if not self.staging.is_dir():
            return out
        for p in sorted(self.staging.glob(f"{UPLOAD_PREFIX}*")):
            try:
                meta = json.loads((p / "meta.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if owner is None or meta.get("owner") == owner:
                out.append(meta)
        return out


class UploadWriter:
    """One upload being received: write() each chunk (refused past the size limit), then finish() (checks it is
    a zip, records who sent it) or abort() (removes everything)."""

    def __init__(self, uploads: Uploads, filename: str, owner: str):
        self.name = Path((filename or "").replace("\\", "/")).name
        if not self.name.lower().endswith(".zip"):
            raise UsageError(f"Tệp '{self.name or '?'}' không phải tệp .zip / '{self.name or '?'}' is not a .zip "
                             "file.", hint="Nén thư mục lô hồ sơ thành một tệp .zip rồi tải lên / zip the batch "
                                           "folder and upload the .zip.")
        self.uploads, self.owner, self.size = uploads, owner, 0
        self.id = uuid.uuid4().hex
        self.folder = uploads.folder(self.id)
        self.folder.mkdir(parents=True)
        self.path = self.folder / "batch.zip"
        self._out = open(self.path, "xb")  # noqa: SIM115 - closed by finish() or abort()

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.uploads.max_bytes:
            raise UsageError(f"Tệp quá lớn (hơn {self.uploads.max_bytes:,} byte) / the file is larger than the "
                             f"limit of {self.uploads.max_bytes:,} bytes.",
                             hint="Chia lô thành các lô nhỏ hơn / split the batch, or raise [limits] zip_max_bytes "
                                  "in preserve.toml.")
        self._out.write(data)

    def finish(self) -> str:
        self._out.close()
        if not zipfile.is_zipfile(self.path):
            raise UsageError(f"Tệp '{self.name}' không phải tệp zip hợp lệ / '{self.name}' is not a valid zip file.",
                             hint="Nén lại thư mục lô hồ sơ rồi tải lên lại / zip the batch folder again.")
        (self.folder / "meta.json").write_text(json.dumps({"id": self.id, "owner": self.owner, "filename": self.name,
                                                           "bytes": self.size}, ensure_ascii=False), encoding="utf-8")
        return self.id

    def abort(self) -> None:
        self._out.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def validation_report(validation) -> dict[str, Any]:
    """A Validation (preserve.sip.validate) as plain data: valid, findings, dossiers, accepted, refused."""
    return {"valid": not validation.batch_refused and not validation.refused(),
            "findings": [f.to_dict() for f in validation.report.findings],
            "dossiers": len(validation.dossiers), "accepted": [d.file_code for d in validation.accepted()],
            "refused": validation.refused()}


# ---- access copies ---------------------------------------------------------------------------------------------
def copy_dir(root: Path, request_id: str) -> Path:
    rid = (request_id or "").strip().upper()
    if not re.match(r"^[A-Z0-9-]{1,64}$", rid):
        raise UsageError(f"Không có yêu cầu / No request with id '{request_id}'.", hint="List requests.")
    return Path(root) / "dip" / rid


def latest_copy(root: Path, request_id: str) -> Path | None:
    """The newest zip made for a request, or None."""
    folder = copy_dir(root, request_id)
    zips = sorted(folder.glob("*.zip"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return zips[-1] if zips else None


# ---- audits ----------------------------------------------------------------------------------------------------
def reports_dir(root: Path) -> Path:
    return Path(root) / "reports"


def audit_reports(root: Path, limit: int = 20) -> list[dict[str, Any]]:
    """The newest HTML audit reports: name, bytes, modified (ISO)."""
    from datetime import UTC, datetime

    folder = reports_dir(root)
    if not folder.is_dir():
        return []
    files = sorted((p for p in folder.glob("*.html") if p.is_file()), key=lambda p: p.stat().st_mtime, reverse=True)
    return [{"name": p.name, "bytes": p.stat().st_size,
             "modified": datetime.fromtimestamp(p.stat().st_mtime, UTC).astimezone().isoformat(
                 timespec="seconds")} for p in files[:limit]]


def audit_report_path(root: Path, name: str) -> Path:
    path = reports_dir(root) / name
    if not _REPORT.match(name or "") or not path.is_file():
        raise FileNotFoundError(name)
    return path


def damaged_replicas(catalog) -> list[dict[str, Any]]:
    return catalog.replicas(statuses=("damaged", "missing"), limit=500)


def repairs(events: list[dict[str, Any]], limit: int = 20) -> list[dict[str, Any]]:
    """The latest repair events (replication events whose detail speaks of a repair), newest first."""
    out = [e for e in reversed(events) if e.get("type") == "replication" and "repair" in (e.get("detail") or "")]
    return out[:limit]
