"""DIP packages: watermarked access copies of one AIP version, for one request, as an E-ARK-shaped .zip.

Layout of `<out_dir>/<request_id>.zip` (a second build for the same request becomes `<request_id>-2.zip`, …):

    <request_id>/README.txt                                    what this is, for whom, the rules (vi, then en)
    <request_id>/representations/access/data/<doc_code>.pdf    watermarked copies, in document order
    <request_id>/representations/access/images/<doc_code>-p0001.jpg …   page images (when images_dpi is set)
    <request_id>/METS.xml                                      written last: it holds every other entry's SHA-256

METS.xml points back to the source: altRecordID AIP / AIP-VERSION / REQUEST / fileCode in the header, and per
document a digiprovMD wrapping a PREMIS dissemination event that links the AIP, the source path in it (with its
SHA-256) and the copy; the copy's mets:file refers to that event by ADMID.

Each entry is hashed as it is streamed into the zip (one read), so METS's checksums are those of the bytes in the
zip. Work happens in a temporary folder under `scratch` that is removed whatever happens; the zip is written to
`<request_id>.zip.part`, fsynced, and published under a name no earlier copy has. Sources are only read.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from lxml import etree

import preserve
from preserve.aip.mets import (CONTENT_CATEGORY, CSIP_PROFILE, NSMAP, SCHEMA_LOCATION, XSI_NS, XmlIds, csip_name,
                                mets_name, xlink_name)
from preserve.aip.premis import ID_FILEPATH, ID_UUID, PREMIS_NS, add_identifier, sub_element
from preserve.aip.xmlschemas import xml_text
from preserve.atomic import fsync_dir
from preserve.digest import CHUNK, hash_file
from preserve.dip.watermark import RENDER_DPI, image_to_pdf, render_pages, watermark_pdf
from preserve.errors import UsageError
from preserve.progress import NullProgress, Progress

ACCESS_DATA = "representations/access/data"
ACCESS_IMAGES = "representations/access/images"
USE_DOCUMENTATION = "Documentation"
USE_ACCESS = "Representations/access"
USE_IMAGES = "Representations/access/images"
MIME = {".pdf": "application/pdf", ".jpg": "image/jpeg", ".txt": "text/plain", ".xml": "text/xml"}
DEFLATED = (".txt", ".xml")  # PDF and JPEG are compressed already
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")
IMAGE_MAGIC = (b"II*\x00", b"MM\x00*", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
REPAIR_HINT = "audit the AIP (preserve audit) and repair it from another tier (preserve repair)"


@dataclass
class DipDocument:
    doc_code: str            # e.g. "H36.01.1.001"
    title: str               # trích yếu: METS LABEL and README
    source: Path             # local path to the verified original (PDF, TIFF, JPEG or PNG)
    source_path: str         # its path in the AIP, e.g. "representations/original/data/H36.01.1.001.pdf"
    source_sha256: str


@dataclass
class DipSpec:
    dip_id: str              # "uuid-<uuid4>"
    request_id: str
    requester: str           # display text, e.g. "Nguyễn Văn A (reader1)"
    purpose: str
    created: str             # ISO 8601 with offset, e.g. 2026-12-01T18:30:00+07:00
    organisation: str        # the archive (METS agent)
    aip_id: str
    aip_version: int
    file_code: str
    dossier_title: str
    tier: str                # the tier the AIP was read from (after it verified)
    strong: bool             # secret record → strong watermark
    documents: list[DipDocument]
    images_dpi: int | None = None


@dataclass
class DipResult:
    zip_path: Path
    files: list[dict]        # {"path" (zip entry), "size", "sha256", "use"} for every entry but METS.xml
    pages: int
    dip_id: str
    size: int                # bytes of the zip

    def to_dict(self) -> dict:
        return {"zip": str(self.zip_path), "dip_id": self.dip_id, "files": self.files, "pages": self.pages,
                "bytes": self.size}


@dataclass
class _Entry:
    """One file of the package: where it is in the package, where it is now, and what it is."""

    path: str                # relative to the package root (= METS href)
    local: Path
    use: str
    doc: int | None = None   # index in spec.documents
    size: int = 0
    sha256: str = ""


@dataclass
class _Copy:
    """What was made for one document."""

    pages: int
    entries: list[_Entry] = field(default_factory=list)


# --- checks -----------------------------------------------------------------------------------------------


def _created(spec: DipSpec) -> datetime:
    try:
        when = datetime.fromisoformat(spec.created)
    except (TypeError, ValueError):
        when = None
    if when is None or when.tzinfo is None:
        raise UsageError(f"created {spec.created!r} is not an ISO 8601 time with an offset",
                         hint="e.g. 2026-12-01T18:30:00+07:00")
    return when


def _check_spec(spec: DipSpec) -> None:
    """Refuse, before any work, what would make a bad or unsafe package (names become paths in the zip)."""
    _created(spec)
    if not spec.documents:
        raise UsageError(f"yêu cầu {spec.request_id} không có tài liệu nào / the DIP has no documents",
                         hint="name at least one document of the dossier")
    codes = [spec.request_id] + [d.doc_code for d in spec.documents]
    for name in codes:
        if not SAFE_NAME.fullmatch(name):
            raise UsageError(f"{name!r} cannot name a file in the package",
                             hint="request ids and document codes use letters, digits, '.', '_' and '-'")
    if len({code.casefold() for code in codes[1:]}) != len(codes) - 1:  # casefold: zips go to Windows too
        raise UsageError("a document is listed twice in the DIP", hint="list each document once")
    if spec.images_dpi is not None and not RENDER_DPI[0] <= spec.images_dpi <= RENDER_DPI[1]:
        raise UsageError(f"DPI {spec.images_dpi} ngoài khoảng / is out of range {RENDER_DPI[0]}..{RENDER_DPI[1]}",
                         hint="200 dpi is usual for reading, 300 for maps and drawings")


def _check_source(doc: DipDocument) -> str:
    """'pdf' or 'image'. The bytes must still be those the AIP records: a copy of anything else is refused."""
    try:
        with open(doc.source, "rb") as f:
            head = f.read(1024)
    except OSError as exc:
        raise UsageError(f"Không đọc được tệp gốc / The original cannot be read: {doc.source}: {exc}",
                         hint=REPAIR_HINT) from None
    if hash_file(doc.source, ("sha256",))["sha256"] != doc.source_sha256.lower():
        raise UsageError(f"Tệp gốc không khớp SHA-256 / The original does not match its SHA-256: {doc.source_path}",
                         hint=REPAIR_HINT)
    if head.startswith(IMAGE_MAGIC):
        return "image"
    if b"%PDF-" in head:  # the header may follow some junk bytes; readers accept it within the first 1 KiB
        return "pdf"
    raise UsageError(f"Định dạng không hỗ trợ / Unsupported format for an access copy: {doc.source_path}",
                     hint="access copies are made from PDF, TIFF, JPEG or PNG originals")


# --- content ----------------------------------------------------------------------------------------------


def watermark_lines(spec: DipSpec) -> list[str]:
    """The watermark text: the large first line, then who it is for, when, and under which request."""
    return ["BẢN SAO – TÀI LIỆU MẬT" if spec.strong else "BẢN SAO",
            f"Cấp cho / Issued to: {spec.requester}",
            f"Ngày / Date: {_created(spec):%d/%m/%Y}",
            f"Yêu cầu / Request: {spec.request_id}"]


def _make_copy(spec: DipSpec, index: int, pkg: Path, work: Path, lines: list[str]) -> _Copy:
    """The watermarked PDF of one document (image masters converted first) and, if asked, its page images."""
    doc = spec.documents[index]
    source = doc.source
    if _check_source(doc) == "image":
        source = work / "converted" / f"{doc.doc_code}.pdf"
        image_to_pdf(doc.source, source)
    pdf_path = f"{ACCESS_DATA}/{doc.doc_code}.pdf"
    pages = watermark_pdf(source, pkg / pdf_path, lines, spec.strong)
    made = _Copy(pages, [_Entry(pdf_path, pkg / pdf_path, USE_ACCESS, index)])
    if spec.images_dpi:
        for image in render_pages(pkg / pdf_path, pkg / ACCESS_IMAGES, spec.images_dpi, doc.doc_code):
            made.entries.append(_Entry(f"{ACCESS_IMAGES}/{image.name}", image, USE_IMAGES, index))
    return made


def _image_range(entries: list[_Entry]) -> str:
    names = [e.path.rsplit("/", 1)[-1] for e in entries]
    return names[0] if len(names) == 1 else f"{names[0]} … {names[-1]}"


def _readme(spec: DipSpec, copies: list[_Copy]) -> str:
    """README.txt: what the package is and the rules that come with it, in Vietnamese and then in English."""
    day = f"{_created(spec):%d/%m/%Y}"
    listing_vi, listing_en = [], []
    for doc, made in zip(spec.documents, copies):
        pdf, images = made.entries[0], made.entries[1:]
        listing_vi.append(f"  {pdf.path} — {doc.doc_code}: {doc.title} ({made.pages} trang)")
        listing_en.append(f"  {pdf.path} — {doc.doc_code}: {doc.title} ({made.pages} pages)")
        if images:
            listing_vi.append(f"  {ACCESS_IMAGES}/{_image_range(images)} — ảnh từng trang, {spec.images_dpi} dpi")
            listing_en.append(f"  {ACCESS_IMAGES}/{_image_range(images)} — page images, {spec.images_dpi} dpi")
    secret_vi = ["", ("Tài liệu mật: bản sao mang dấu mật dày đặc; bảo quản và sử dụng theo quy định bảo vệ bí "
                      "mật nhà nước.")] if spec.strong else []
    secret_en = ["", ("Secret record: the copy carries a dense secrecy watermark; keep and use it under the rules "
                      "for protecting state secrets.")] if spec.strong else []
    text = [
        "BẢN SAO PHỤC VỤ KHAI THÁC", "=" * 25, "",
        "Đây là bản sao tài liệu lưu trữ, có đóng dấu \"BẢN SAO\", cấp theo yêu cầu khai thác.", "",
        f"Cấp cho:          {spec.requester}",
        f"Mục đích:         {spec.purpose}",
        f"Ngày cấp:         {day} ({spec.created})",
        f"Mã yêu cầu:       {spec.request_id}",
        f"Hồ sơ nguồn:      {spec.file_code} — {spec.dossier_title}",
        f"Gói lưu trữ AIP:  {spec.aip_id}, phiên bản {spec.aip_version}",
        f"Cơ quan lưu trữ:  {spec.organisation}", "",
        "Bản gốc vẫn được bảo quản tại cơ quan lưu trữ; các tệp dưới đây chỉ là bản sao.", *secret_vi, "",
        "Danh sách tệp:", *listing_vi, "  METS.xml — mô tả gói, mã kiểm tra SHA-256 của từng tệp", "",
        "Bản sao chỉ được sử dụng cho mục đích đã nêu; không được sao chép lại, phát tán hoặc chuyển cho người khác.",
        "", "",
        "ACCESS COPY", "=" * 11, "",
        "This is an access copy of archival records, watermarked \"BẢN SAO\" (copy), issued on request.", "",
        f"Issued to:        {spec.requester}",
        f"Purpose:          {spec.purpose}",
        f"Date:             {day} ({spec.created})",
        f"Request:          {spec.request_id}",
        f"Source dossier:   {spec.file_code} — {spec.dossier_title}",
        f"AIP:              {spec.aip_id}, version {spec.aip_version}",
        f"Archive:          {spec.organisation}", "",
        "The originals stay in the archive; the files below are copies only.", *secret_en, "",
        "Files:", *listing_en, "  METS.xml — package description, with the SHA-256 of every file", "",
        ("The copies may be used for the stated purpose only; they must not be copied on, re-distributed or passed "
         "to anyone else."), ""]
    return "\n".join(xml_text(line) for line in text)


# --- METS -------------------------------------------------------------------------------------------------


def _header(root: etree._Element, spec: DipSpec) -> None:
    hdr = etree.SubElement(root, mets_name("metsHdr"), CREATEDATE=spec.created, RECORDSTATUS="NEW")
    hdr.set(csip_name("OAISPACKAGETYPE"), "DIP")
    agent = etree.SubElement(hdr, mets_name("agent"), ROLE="CREATOR", TYPE="ORGANIZATION")
    etree.SubElement(agent, mets_name("name")).text = xml_text(spec.organisation)
    agent = etree.SubElement(hdr, mets_name("agent"), ROLE="CREATOR", TYPE="OTHER", OTHERTYPE="SOFTWARE")
    etree.SubElement(agent, mets_name("name")).text = preserve.SOFTWARE_NAME
    note = etree.SubElement(agent, mets_name("note"))
    note.set(csip_name("NOTETYPE"), "SOFTWARE VERSION")
    note.text = preserve.__version__
    agent = etree.SubElement(hdr, mets_name("agent"), ROLE="OTHER", OTHERROLE="REQUESTER", TYPE="INDIVIDUAL")
    etree.SubElement(agent, mets_name("name")).text = xml_text(spec.requester)
    for kind, value in (("AIP", spec.aip_id), ("AIP-VERSION", str(spec.aip_version)),
                        ("REQUEST", spec.request_id), ("fileCode", spec.file_code)):
        etree.SubElement(hdr, mets_name("altRecordID"), TYPE=kind).text = xml_text(value)


def _event(amd: etree._Element, spec: DipSpec, doc: DipDocument, made: _Copy, ident: str) -> None:
    """A PREMIS dissemination event: this copy (and its images) came from that file of that AIP version."""
    md = etree.SubElement(amd, mets_name("digiprovMD"), ID=ident, CREATED=spec.created, STATUS="CURRENT")
    wrap = etree.SubElement(md, mets_name("mdWrap"), MDTYPE="PREMIS:EVENT", MDTYPEVERSION="3.0")
    event = sub_element(etree.SubElement(wrap, mets_name("xmlData")), "event")
    add_identifier(event, "event", ID_UUID, f"uuid-{uuid.uuid5(uuid.NAMESPACE_URL, f'{spec.dip_id}/{doc.doc_code}')}")
    sub_element(event, "eventType", "dissemination")
    sub_element(event, "eventDateTime", spec.created)
    kind = "strong watermark (secret record)" if spec.strong else "watermark"
    sub_element(sub_element(event, "eventDetailInformation"), "eventDetail",
         f"Access copy with a '{watermark_lines(spec)[0]}' {kind} for request {spec.request_id} "
         f"(purpose: {spec.purpose}), made from "
         f"{doc.source_path} (SHA-256 {doc.source_sha256.lower()}) of AIP {spec.aip_id} version "
         f"{spec.aip_version}, read from tier {spec.tier} after it verified")
    outcome = sub_element(event, "eventOutcomeInformation")
    sub_element(outcome, "eventOutcome", "success")
    sub_element(sub_element(outcome, "eventOutcomeDetail"), "eventOutcomeDetailNote", f"{made.pages} pages")
    links = [(ID_UUID, spec.aip_id, "source"), (ID_FILEPATH, doc.source_path, "source")]
    links += [(ID_FILEPATH, e.path, "outcome") for e in made.entries]
    for id_type, value, role in links:
        sub_element(add_identifier(event, "linkingObject", id_type, value), "linkingObjectRole", role)


def _file(grp: etree._Element, e: _Entry, ident: str, created: str, admid: str | None) -> None:
    el = etree.SubElement(grp, mets_name("file"), ID=ident, MIMETYPE=MIME[Path(e.path).suffix], SIZE=str(e.size),
                          CREATED=created, CHECKSUM=e.sha256, CHECKSUMTYPE="SHA-256")
    if admid:
        el.set("ADMID", admid)
    loc = etree.SubElement(el, mets_name("FLocat"), LOCTYPE="URL")
    loc.set(xlink_name("type"), "simple")
    loc.set(xlink_name("href"), e.path)


def _mets(spec: DipSpec, copies: list[_Copy], readme: _Entry) -> bytes:
    """METS.xml of the DIP (UTF-8), valid against the METS 1.12 schema; entries must carry size and SHA-256."""
    ids = XmlIds()
    root = etree.Element(mets_name("mets"), nsmap={**NSMAP, "premis": PREMIS_NS})
    root.set("OBJID", spec.dip_id)
    root.set("LABEL", xml_text(spec.dossier_title or spec.file_code))
    root.set("TYPE", CONTENT_CATEGORY)
    root.set("PROFILE", CSIP_PROFILE)
    root.set(f"{{{XSI_NS}}}schemaLocation", SCHEMA_LOCATION)
    _header(root, spec)
    amd = etree.SubElement(root, mets_name("amdSec"))
    admids = [ids.make("digiprov", doc.doc_code) for doc in spec.documents]
    for doc, made, admid in zip(spec.documents, copies, admids):
        _event(amd, spec, doc, made, admid)

    file_sec = etree.SubElement(root, mets_name("fileSec"))
    file_ids: dict[str, str] = {}
    groups = {USE_DOCUMENTATION: [readme], USE_ACCESS: [], USE_IMAGES: []}
    for made in copies:
        for e in made.entries:
            groups[e.use].append(e)
    for use, entries in groups.items():
        if not entries:
            continue
        grp = etree.SubElement(file_sec, mets_name("fileGrp"), ID=ids.make("grp", use), USE=use)
        for e in entries:
            file_ids[e.path] = ids.make("file", e.path.rsplit("/", 1)[-1])
            _file(grp, e, file_ids[e.path], spec.created, None if e.doc is None else admids[e.doc])

    smap = etree.SubElement(root, mets_name("structMap"), TYPE="PHYSICAL", LABEL="CSIP")
    top = etree.SubElement(smap, mets_name("div"), ID=ids.make("div", "root"), LABEL=spec.dip_id)
    div = etree.SubElement(top, mets_name("div"), ID=ids.make("div", USE_DOCUMENTATION), LABEL=USE_DOCUMENTATION)
    etree.SubElement(div, mets_name("fptr"), FILEID=file_ids[readme.path])
    rep = etree.SubElement(top, mets_name("div"), ID=ids.make("div", USE_ACCESS), LABEL=USE_ACCESS)
    for n, (doc, made) in enumerate(zip(spec.documents, copies), start=1):
        ddiv = etree.SubElement(rep, mets_name("div"), ID=ids.make("div", doc.doc_code), TYPE="document", ORDER=str(n),
                                LABEL=xml_text(f"{doc.doc_code} — {doc.title}" if doc.title else doc.doc_code))
        for e in made.entries:
            etree.SubElement(ddiv, mets_name("fptr"), FILEID=file_ids[e.path])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


# --- zip --------------------------------------------------------------------------------------------------


def _zip_info(name: str, when: datetime, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(max(when.year, 1980), when.month, when.day, when.hour, when.minute,
                                            when.second))
    info.compress_type = zipfile.ZIP_DEFLATED if name.endswith(DEFLATED) else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    info.file_size = size  # lets zipfile choose ZIP64 up front for large entries
    return info


def _add(zf: zipfile.ZipFile, root: str, e: _Entry, when: datetime) -> None:
    """Stream one file into the zip, recording its size and SHA-256 from the bytes written."""
    digest = hashlib.sha256()
    with open(e.local, "rb") as src, zf.open(_zip_info(f"{root}/{e.path}", when, e.local.stat().st_size),
                                             "w") as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            e.size += len(chunk)
    e.sha256 = digest.hexdigest()


def _write_zip(part: Path, spec: DipSpec, copies: list[_Copy], readme: _Entry) -> None:
    when = _created(spec)
    with open(part, "wb") as raw:
        with zipfile.ZipFile(raw, "w") as zf:
            for e in [readme] + [e for made in copies for e in made.entries]:
                _add(zf, spec.request_id, e, when)
            mets = _mets(spec, copies, readme)
            zf.writestr(_zip_info(f"{spec.request_id}/METS.xml", when, len(mets)), mets)
        raw.flush()
        os.fsync(raw.fileno())


def _publish(part: Path, out_dir: Path, request_id: str) -> Path:
    """Give the finished zip the first free name: <id>.zip, <id>-2.zip, … — never over an earlier copy.

    A hard link claims the name atomically; on file systems without hard links the name is checked, then
    the part renamed.
    """
    n = 1
    while True:
        target = out_dir / (f"{request_id}.zip" if n == 1 else f"{request_id}-{n}.zip")
        n += 1
        try:
            os.link(part, target)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            if target.exists():
                continue
            os.replace(part, target)
        else:
            part.unlink()
        fsync_dir(out_dir)
        return target


def build_dip(spec: DipSpec, out_dir: Path, scratch: Path, progress: Progress | None = None) -> DipResult:
    """Make the DIP zip of `spec` in out_dir; UsageError (and nothing left behind) when it cannot be made."""
    _check_spec(spec)
    progress = progress or NullProgress()
    out_dir, scratch = Path(out_dir), Path(scratch)
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"dip-{spec.request_id}-", dir=scratch))
    part = out_dir / f"{spec.request_id}.zip.part"
    lines = watermark_lines(spec)
    progress.start(f"DIP {spec.request_id}", len(spec.documents))
    try:
        pkg = work / spec.request_id
        copies = []
        for index in range(len(spec.documents)):
            copies.append(_make_copy(spec, index, pkg, work, lines))
            progress.advance(1)
        readme = _Entry("README.txt", pkg / "README.txt", USE_DOCUMENTATION)
        readme.local.write_text(_readme(spec, copies), encoding="utf-8")
        _write_zip(part, spec, copies, readme)
        zip_path = _publish(part, out_dir, spec.request_id)
    finally:
        part.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        progress.done()
    entries = [readme] + [e for made in copies for e in made.entries]
    files = [{"path": f"{spec.request_id}/{e.path}", "size": e.size, "sha256": e.sha256, "use": e.use}
             for e in entries]
    return DipResult(zip_path, files, sum(made.pages for made in copies), spec.dip_id, zip_path.stat().st_size)
