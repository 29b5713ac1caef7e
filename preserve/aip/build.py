"""Build one AIP (a BagIt bag) for one validated dossier, in a staging folder.

Each payload byte is read once: scans are hashed (SHA-256 and SHA-512) while they are copied, and compared
with checksums.sha256 at that moment. Metadata files are hashed from the bytes written. The tag manifest is
signed (detached CMS, DER) last. Publishing and the catalog are the ingest's job (preserve/ingest.py).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .. import SOFTWARE_NAME, __version__
from ..digest import copy_and_hash, hash_bytes, hash_file
from ..findings import Finding, Report
from ..sip.validate import DossierPlan, Validation, check_sum
from .model import (ROLE_DERIVATIVE, ROLE_DESCRIPTIVE, ROLE_ORIGINAL, ROLE_PACKAGE, ROLE_PRESERVATION,
                    ROLE_SUBMISSION, SOFTWARE_AGENT, Agent, Aip, AipFile, Event)

ALGORITHMS = ("sha256", "sha512")
ORIGINAL_DIR = "representations/original/data"
OCR_DIR = "representations/ocr/data"
METS_NAME = "METS.xml"
PREMIS_PATH = "metadata/preservation/premis.xml"
PROFILE_XML_PATH = "metadata/descriptive/hoso.xml"
DC_PATH = "metadata/descriptive/dc.xml"
SIGNATURE_NAME = "tagmanifest-sha256.txt.p7s"
BAGIT_TXT = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"


def new_aip_id() -> str:
    return f"uuid-{uuid.uuid4()}"


def aip_rel_path(aip_id: str, version: int = 1) -> str:
    """Fanned-out location on a tier: aips/ab/cd/<uuid>/v1."""
    u = aip_id.removeprefix("uuid-")
    return f"aips/{u[:2]}/{u[2:4]}/{u}/v{version}"


@dataclass
class Built:
    aip: Aip
    bag_dir: Path            # staging/<uuid>/v1
    tagmanifest_sha256: str
    payload_bytes: int
    findings: list[Finding] = field(default_factory=list)  # warnings found while building (OCR that failed)


class BuildRefused(Exception):
    """The dossier cannot be packaged (e.g. a scan changed since validation); findings say why."""

    def __init__(self, findings: list[Finding]):
        super().__init__("; ".join(f.code for f in findings))
        self.findings = findings


def _agents(officer: str, organisation: str) -> list[Agent]:
    return [
        Agent("agent-software-preserve", f"{SOFTWARE_NAME} {__version__}", "software", __version__),
        Agent(f"agent-person-{officer}", officer, "person", "preservation officer / cán bộ lưu trữ"),
        Agent("agent-organization", organisation, "organization", "custodian / cơ quan lưu trữ"),
    ]


class _Writer:
    """Writes payload files under data/, hashing each from the bytes written, remembering them for manifests."""

    def __init__(self, bag: Path):
        self.bag = bag
        self.files: list[AipFile] = []

    def write(self, rel: str, data: bytes, role: str, mime: str, **kw) -> AipFile:
        p = self.bag / "data" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        d = hash_bytes(data, ALGORITHMS)
        af = AipFile(rel, d.size, d["sha256"], d["sha512"], role, mime, **kw)
        self.files.append(af)
        return af

    def copy(self, src: Path, rel: str, role: str, mime: str, **kw) -> AipFile:
        p = self.bag / "data" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        d = copy_and_hash(src, p, ALGORITHMS)
        af = AipFile(rel, d.size, d["sha256"], d["sha512"], role, mime, **kw)
        self.files.append(af)
        return af


def build_aip(plan: DossierPlan, validation: Validation, staging: Path, *, officer: str, organisation: str,
              signer, now: str, profile_name: str, aip_id: str | None = None, ocr: bool = False,
              on_document=None, ocr_page_seconds: float | None = None) -> Built:
    """`ocr`: add a two-layer PDF/A-2 of each scan (representations/ocr/). `on_document()` is called once per
    document as its part of the work is done (for progress)."""
    from .descriptive import build_dc, build_profile_xml
    from .mets import build_mets
    from .premis import build_premis
    from .sign import sign_detached

    aip_id = aip_id or new_aip_id()
    bag = staging / aip_id.removeprefix("uuid-") / "v1"
    bag.mkdir(parents=True)
    w = _Writer(bag)
    agents = _agents(officer, organisation)
    sw, person, org = (a.id for a in agents)

    # 1. scans: copy + hash in one pass, checked against checksums.sha256 at once
    problems = Report()
    for doc in plan.documents:
        ext = doc.path.suffix.lower()
        scan = doc.scan
        af = w.copy(doc.path, f"{ORIGINAL_DIR}/{doc.doc_code}{ext}", ROLE_ORIGINAL,
                    (scan.mime if scan and scan.mime else "application/octet-stream"),
                    puid=scan.puid if scan else None, format_name=scan.format_name if scan else None,
                    format_version=scan.format_version if scan else None, original_name=doc.rel,
                    doc_code=doc.doc_code, pages=scan.pages if scan else None)
        if validation.checksums and doc.rel in validation.checksums:
            check_sum(problems, doc.rel, validation.checksums[doc.rel], af.sha256, plan.file_code)
    if problems.errors:
        raise BuildRefused(problems.errors)
    originals = [f for f in w.files if f.role == ROLE_ORIGINAL]

    # 1b. OCR: from the copies just written and checked (the received files are only read once)
    ocr_events: list[Event] = []
    ocr_findings: list[Finding] = []
    texts: dict[str, str] = {}
    if ocr and originals:
        ocr_agent, ocr_events, ocr_findings, texts = _add_ocr(w, originals, plan.file_code, now, person,
                                                              on_document, ocr_page_seconds)
        agents.append(ocr_agent)
    elif on_document:
        for _ in plan.documents:
            on_document()

    # 2. what was received: the workbook, checksums, a received bag's bag-info, and the validation report
    root = validation.package.root
    for wbf in validation.workbook.files:
        w.copy(wbf, f"submission/{wbf.name}", ROLE_SUBMISSION, _mime(wbf.name), original_name=wbf.name)
    if validation.checksums is not None:
        w.copy(root / "checksums.sha256", "submission/checksums.sha256", ROLE_SUBMISSION, "text/plain",
               original_name="checksums.sha256")
    if validation.package.bag_root is not None and (validation.package.bag_root / "bag-info.txt").is_file():
        w.copy(validation.package.bag_root / "bag-info.txt", "submission/bag-info.txt", ROLE_SUBMISSION,
               "text/plain", original_name="bag-info.txt")
    findings = [f for f in validation.report.findings if f.dossier in (None, plan.file_code)]
    report = {"fileCode": plan.file_code, "source": validation.package.source.name, "validated": now,
              "software": f"{SOFTWARE_NAME} {__version__}", "valid": not any(f.is_error for f in findings),
              "findings": [f.to_dict() for f in findings]}
    w.write("submission/validation-report.json", json.dumps(report, ensure_ascii=False, indent=2).encode(),
            ROLE_SUBMISSION, "application/json")

    # 3. events
    warnings = [f for f in findings if f.severity == "warning"]
    puids = sorted({f"{f.puid} ({f.format_name})" for f in originals if f.puid})
    ev = lambda t, outcome, detail, objs: Event(new_aip_id(), t, now, outcome, detail,  # noqa: E731
                                                 [(sw, "executing program"), (person, "implementer")], objs)
    aip_objs = [aip_id]
    events = [
        ev("validation", "success" if not warnings else "warning",
           f"Validated against profile {profile_name}: 0 errors, {len(warnings)} warnings"
           + (" (" + ", ".join(sorted({f.code for f in warnings})) + ")" if warnings else ""), aip_objs),
        ev("format identification", "success", "Siegfried/PRONOM: " + "; ".join(puids),
           [f.path for f in originals]),
        ev("message digest calculation", "success", "SHA-256 and SHA-512 computed while copying"
           + ("; checksums.sha256 verified" if validation.checksums else ""), [f.path for f in originals]),
        ev("ingestion", "success", f"Dossier {plan.file_code} ingested from {validation.package.source.name}", aip_objs),
        *ocr_events,
        ev("creation", "success", f"AIP {aip_id} version 1 created as a signed BagIt bag", aip_objs),
    ]

    documents = []
    for doc in plan.documents:
        rec = dict(doc.record)
        rec["file"] = f"{ORIGINAL_DIR}/{doc.doc_code}{doc.path.suffix.lower()}"
        rec["pages"] = doc.scan.pages if doc.scan else None
        documents.append(rec)
    aip = Aip(aip_id, 1, now, profile_name, dict(plan.record), documents, w.files, events, agents, organisation,
              {k: v if isinstance(v, str) else "; ".join(v) for k, v in validation.package.bag_info.items()},
              texts)

    # 4. descriptive metadata, PREMIS, then METS (which lists them all with their checksums)
    w.write(PROFILE_XML_PATH, build_profile_xml(aip), ROLE_DESCRIPTIVE, "application/xml")
    w.write(DC_PATH, build_dc(aip), ROLE_DESCRIPTIVE, "application/xml")
    w.write(PREMIS_PATH, build_premis(aip), ROLE_PRESERVATION, "application/xml")
    w.write(METS_NAME, build_mets(aip), ROLE_PACKAGE, "application/xml")  # listed in the catalog, not in itself

    # 5. the bag: manifests, bag-info with Payload-Oxum, tag manifests, signature
    entries = [(f"data/{f.path}", f.sha256, f.sha512, f.size) for f in w.files]
    entries.sort()
    payload_bytes = sum(e[3] for e in entries)
    tags: dict[str, bytes] = {"bagit.txt": BAGIT_TXT.encode()}
    for i, alg in enumerate(ALGORITHMS, start=1):
        tags[f"manifest-{alg}.txt"] = "".join(f"{e[i]}  {_enc(e[0])}\n" for e in entries).encode()
    info = {
        "Source-Organization": organisation,
        "Bagging-Date": now[:10],
        "Bag-Software-Agent": f"{SOFTWARE_NAME} {__version__}",
        "External-Identifier": plan.file_code,
        "Internal-Sender-Identifier": aip_id,
        "External-Description": str(plan.record.get("title") or "").replace("\n", " "),
        "Payload-Oxum": f"{payload_bytes}.{len(entries)}",
        "Bag-Size": _human(payload_bytes),
        "Bag-Group-Identifier": str(plan.record.get("fondsCode") or ""),
    }
    tags["bag-info.txt"] = "".join(f"{k}: {v}\n" for k, v in info.items()).encode()
    for name, data in tags.items():
        _write_new(bag / name, data)
    for alg in ALGORITHMS:
        lines = "".join(f"{hash_bytes(tags[n], (alg,))[alg]}  {n}\n" for n in sorted(tags))
        _write_new(bag / f"tagmanifest-{alg}.txt", lines.encode())
        if alg == "sha256":
            tm256 = lines.encode()
    key, cert = signer
    _write_new(bag / SIGNATURE_NAME, sign_detached(tm256, key, cert))
    fsync_tree_dirs(bag.parent)  # files were fsynced as written; now the folders that name them
    return Built(aip, bag, hash_bytes(tm256, ("sha256",))["sha256"], payload_bytes, ocr_findings)


def _add_ocr(w: _Writer, originals: list[AipFile], file_code: str, now: str, person: str, on_document,
             page_seconds: float | None = None):
    """OCR every original into representations/ocr/data/<docCode>.pdf (PDF/A-2, `-l vie`), in parallel.

    A document whose OCR fails keeps its original and gets no derivative: the dossier is still ingested, with a
    W-OCR-FAILED warning and a creation event with outcome failure, so the gap is on record."""
    from ..ocr.engine import OcrJob, ocr_tools, run_ocr
    from ..sip.scan import identify

    tools = ocr_tools()
    agent = Agent("agent-software-ocrmypdf", f"ocrmypdf {tools.get('ocrmypdf')} with Tesseract "
                  f"{tools.get('tesseract')} (vie)", "software",
                  f"ocrmypdf {tools.get('ocrmypdf')}; Tesseract {tools.get('tesseract')}; "
                  f"Ghostscript {tools.get('ghostscript')}")
    jobs = []
    for f in originals:
        dest = w.bag / "data" / OCR_DIR / f"{f.doc_code}.pdf"
        dest.parent.mkdir(parents=True, exist_ok=True)
        jobs.append(OcrJob(w.bag / "data" / f.path, dest, str(f.doc_code), f.pages))
    results = run_ocr(jobs, on_done=(lambda _r: on_document()) if on_document else None, page_seconds=page_seconds)
    events: list[Event] = []
    findings: list[Finding] = []
    texts: dict[str, str] = {}
    made: list[AipFile] = []
    for f, r in zip(originals, results):
        if not r.ok:
            findings.append(Finding("W-OCR-FAILED", f.path, {"docCode": f.doc_code, "detail": r.error or "?"},
                                    file_code))
            events.append(Event(new_aip_id(), "creation", now, "failure",
                                f"OCR of {f.path} failed: {r.error}", [(agent.id, "executing program"),
                                                                        (person, "implementer")], [f.path]))
            continue
        rel = f"{OCR_DIR}/{f.doc_code}.pdf"
        d = hash_file(r.dest, ALGORITHMS)
        puid, fmt, version, mime = identify(r.dest)
        af = AipFile(rel, d.size, d["sha256"], d["sha512"], ROLE_DERIVATIVE, mime or "application/pdf",
                     puid=None if puid == "UNKNOWN" else puid, format_name=fmt, format_version=version,
                     doc_code=f.doc_code, pages=f.pages, derived_from=f.path)
        w.files.append(af)
        made.append(af)
        texts[str(f.doc_code)] = r.text
    if not made:  # no empty folders in the bag: it would differ from its own METS
        for d in (w.bag / "data" / OCR_DIR, (w.bag / "data" / OCR_DIR).parent):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
    else:
        by_options: dict[str, list[str]] = {}  # a crooked scan gets --deskew: the options differ per document
        # (OcrResult.options: the ocrmypdf arguments that decide the result, without --jobs or the paths)
        for r in results:
            if r.ok:
                by_options.setdefault(" ".join(r.options), []).append(r.key)
        options = "; ".join(f"{o} ({', '.join(keys)})" if len(by_options) > 1 else o
                            for o, keys in by_options.items())
        objs = [x for af in made for x in (af.derived_from, af.path)]
        sw = [(agent.id, "executing program"), (person, "implementer")]
        events.append(Event(new_aip_id(), "creation", now, "success",
                            f"Two-layer PDF/A-2 (scan image and Vietnamese text) made by OCR from {len(made)} "
                            f"original(s): {agent.note}; ocrmypdf options: {options}", sw, objs))
        puids = sorted({f"{af.puid} ({af.format_name})" for af in made if af.puid}) or ["not identified"]
        events.append(Event(new_aip_id(), "format identification", now, "success",
                            "Siegfried/PRONOM: " + "; ".join(puids), [SOFTWARE_AGENT, (person, "implementer")],
                            [af.path for af in made]))
        events.append(Event(new_aip_id(), "message digest calculation", now, "success",
                            "SHA-256 and SHA-512 of the OCR derivatives", [SOFTWARE_AGENT, (person, "implementer")],
                            [af.path for af in made]))
    return agent, events, findings, texts


def verify_staged(built: Built) -> list[str]:
    """Read the staged bag back: every payload file's SHA-256 against the manifest. Returns problems."""
    problems = []
    manifest = (built.bag_dir / "manifest-sha256.txt").read_text(encoding="utf-8")
    for line in manifest.splitlines():
        digest, rel = line.split("  ", 1)
        p = built.bag_dir / rel
        if not p.is_file():
            problems.append(f"{rel}: missing")
        elif hash_file(p, ("sha256",))["sha256"] != digest:
            problems.append(f"{rel}: SHA-256 differs after writing")
    return problems


def fsync_tree_dirs(root: Path) -> None:
    from ..atomic import fsync_dir

    for dirpath, _dirs, _files in os.walk(root, topdown=False):
        fsync_dir(dirpath)


def _write_new(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _enc(path: str) -> str:
    """RFC 8493 §2.1.3: percent-encode CR, LF and % in manifest paths."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _mime(name: str) -> str:
    n = name.lower()
    if n.endswith(".xlsx"):
        return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    if n.endswith(".csv"):
        return "text/csv"
    return "application/octet-stream"


def _human(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
