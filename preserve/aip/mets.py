"""METS.xml of an AIP, shaped after E-ARK CSIP (METS 1.12 with the DILCIS extension attributes).

What it describes (paths relative to the bag's data/, as in AipFile.path):
- dmdSec per descriptive file (metadata/descriptive/*): DC, EAD, or the profile XML (MDTYPE OTHER);
- amdSec/digiprovMD per preservation file (metadata/preservation/premis.xml: MDTYPE PREMIS);
- fileSec: one fileGrp per representation ("Representations/original", "Representations/ocr" for the OCR
  PDF/A derivatives) and one for "Submission";
- structMap PHYSICAL "CSIP": Metadata, Representations/<rep> (a div per document, in docOrdinal order),
  Submission.

METS.xml is not listed in itself (it cannot hold its own checksum); the bag manifests cover it. premis.xml
must be written before METS.xml so that its AipFile (role preservation) carries its checksum; without one the
mdRef is still written, without SIZE/CHECKSUM.
"""

from __future__ import annotations

import re

from lxml import etree

import preserve
from preserve.aip.model import (ROLE_DERIVATIVE, ROLE_DESCRIPTIVE, ROLE_ORIGINAL, ROLE_PRESERVATION, ROLE_SUBMISSION,
                                Aip, AipFile)
from preserve.aip.xmlschemas import xml_text

METS_NS = "http://www.loc.gov/METS/"
XLINK_NS = "http://www.w3.org/1999/xlink"
CSIP_NS = "https://DILCIS.eu/XML/METS/CSIPExtensionMETS"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {"mets": METS_NS, "xlink": XLINK_NS, "csip": CSIP_NS, "xsi": XSI_NS}
SCHEMA_LOCATION = (
    f"{METS_NS} https://www.loc.gov/standards/mets/mets.xsd "
    f"{XLINK_NS} https://www.loc.gov/standards/mets/xlink.xsd "
    f"{CSIP_NS} https://earkcsip.dilcis.eu/schema/DILCISExtensionMETS.xsd"
)
CSIP_PROFILE = "https://earkcsip.dilcis.eu/profile/E-ARK-CSIP.xml"
CONTENT_CATEGORY = "Text"  # CSIP content category vocabulary (Dublin Core type "Text")
PREMIS_PATH = "metadata/preservation/premis.xml"
SUBMISSION_USE = "Submission"


def mets_name(tag: str) -> str:
    return f"{{{METS_NS}}}{tag}"


def csip_name(attr: str) -> str:
    return f"{{{CSIP_NS}}}{attr}"


def xlink_name(attr: str) -> str:
    return f"{{{XLINK_NS}}}{attr}"


class XmlIds:
    """xsd:ID values from paths: readable, NCName-safe, unique within the document."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def make(self, prefix: str, text: str) -> str:
        base = f"{prefix}-{re.sub(r'[^A-Za-z0-9._-]', '_', text)}"
        ident, n = base, 2
        while ident in self.used:
            ident, n = f"{base}-{n}", n + 1
        self.used.add(ident)
        return ident


def representation_of(path: str) -> str | None:
    """'original' for representations/original/data/X.pdf; None for paths outside representations/."""
    parts = path.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "representations" else None


def _checksum_attrs(el: etree._Element, f: AipFile, created: str) -> None:
    el.set("MIMETYPE", f.mime)
    el.set("SIZE", str(f.size))
    el.set("CREATED", created)
    el.set("CHECKSUM", f.sha256)
    el.set("CHECKSUMTYPE", "SHA-256")


def _md_type(f: AipFile, profile: str) -> dict[str, str]:
    name = f.path.rsplit("/", 1)[-1].lower()
    if name == "dc.xml":
        return {"MDTYPE": "DC", "MDTYPEVERSION": "1.1"}
    if name.startswith("ead"):
        return {"MDTYPE": "EAD", "MDTYPEVERSION": "2002"}
    if name == "premis.xml":
        return {"MDTYPE": "PREMIS", "MDTYPEVERSION": "3.0"}
    # any other descriptive file is the profile's dossier/document XML (descriptive.build_profile_xml)
    other = profile if f.role == ROLE_DESCRIPTIVE else name.rsplit(".", 1)[0]
    return {"MDTYPE": "OTHER", "OTHERMDTYPE": other}


def _md_ref(parent: etree._Element, f: AipFile | None, path: str, md: dict[str, str], created: str) -> None:
    ref = etree.SubElement(parent, mets_name("mdRef"))
    ref.set("LOCTYPE", "URL")
    ref.set(xlink_name("type"), "simple")
    ref.set(xlink_name("href"), path)
    for k, v in md.items():
        ref.set(k, v)
    if f is not None:
        _checksum_attrs(ref, f, created)


def _header(root: etree._Element, aip: Aip) -> None:
    hdr = etree.SubElement(root, mets_name("metsHdr"), CREATEDATE=aip.created, LASTMODDATE=aip.created,
                           RECORDSTATUS="NEW")
    hdr.set(csip_name("OAISPACKAGETYPE"), "AIP")
    agent = etree.SubElement(hdr, mets_name("agent"), ROLE="CREATOR", TYPE="OTHER", OTHERTYPE="SOFTWARE")
    etree.SubElement(agent, mets_name("name")).text = preserve.SOFTWARE_NAME
    note = etree.SubElement(agent, mets_name("note"))
    note.set(csip_name("NOTETYPE"), "SOFTWARE VERSION")
    note.text = preserve.__version__
    if aip.organisation:
        agent = etree.SubElement(hdr, mets_name("agent"), ROLE="CUSTODIAN", TYPE="ORGANIZATION")
        etree.SubElement(agent, mets_name("name")).text = xml_text(aip.organisation)
    for a in aip.agents:
        if a.type == "person":
            agent = etree.SubElement(hdr, mets_name("agent"), ROLE="ARCHIVIST", TYPE="INDIVIDUAL")
            etree.SubElement(agent, mets_name("name")).text = xml_text(a.name)
    alt = etree.SubElement(hdr, mets_name("altRecordID"), TYPE="fileCode")
    alt.text = xml_text(aip.file_code)


def build_mets(aip: Aip) -> bytes:
    """The AIP's METS.xml (UTF-8 bytes), valid against metadata_schemas/xsd/mets1_12.xsd."""
    ids = XmlIds()
    root = etree.Element(mets_name("mets"), nsmap=NSMAP)
    root.set("OBJID", aip.id)
    root.set("LABEL", xml_text(aip.dossier.get("title", aip.file_code)))
    root.set("TYPE", CONTENT_CATEGORY)
    root.set(csip_name("CONTENTINFORMATIONTYPE"), "OTHER")
    root.set(csip_name("OTHERCONTENTINFORMATIONTYPE"), aip.profile)
    root.set("PROFILE", CSIP_PROFILE)
    root.set(f"{{{XSI_NS}}}schemaLocation", SCHEMA_LOCATION)
    _header(root, aip)

    # descriptive metadata
    dmd_ids: list[str] = []
    for f in [f for f in aip.files if f.role == ROLE_DESCRIPTIVE]:
        ident = ids.make("dmd", f.path.rsplit("/", 1)[-1])
        sec = etree.SubElement(root, mets_name("dmdSec"), ID=ident, CREATED=aip.created, STATUS="CURRENT")
        _md_ref(sec, f, f.path, _md_type(f, aip.profile), aip.created)
        dmd_ids.append(ident)

    # preservation metadata; premis.xml always referenced
    pres = [f for f in aip.files if f.role == ROLE_PRESERVATION]
    refs: list[tuple[AipFile | None, str]] = [(f, f.path) for f in pres]
    if not any(p == PREMIS_PATH for _f, p in refs):
        refs.insert(0, (None, PREMIS_PATH))
    amd = etree.SubElement(root, mets_name("amdSec"))
    amd_ids: list[str] = []
    for f, path in refs:
        ident = ids.make("digiprov", path.rsplit("/", 1)[-1])
        sec = etree.SubElement(amd, mets_name("digiprovMD"), ID=ident, CREATED=aip.created, STATUS="CURRENT")
        md = _md_type(f, aip.profile) if f else {"MDTYPE": "PREMIS", "MDTYPEVERSION": "3.0"}
        _md_ref(sec, f, path, md, aip.created)
        amd_ids.append(ident)

    # files
    file_ids: dict[str, str] = {}
    groups: dict[str, list[AipFile]] = {}
    for f in aip.files:
        if f.role in (ROLE_ORIGINAL, ROLE_DERIVATIVE):
            default = "original" if f.role == ROLE_ORIGINAL else "ocr"
            groups.setdefault(f"Representations/{representation_of(f.path) or default}", []).append(f)
        elif f.role == ROLE_SUBMISSION:
            groups.setdefault(SUBMISSION_USE, []).append(f)
    if groups:
        file_sec = etree.SubElement(root, mets_name("fileSec"))
        for use, files in groups.items():
            grp = etree.SubElement(file_sec, mets_name("fileGrp"), ID=ids.make("grp", use), USE=use)
            for f in files:
                file_ids[f.path] = ids.make("file", f.path)
                el = etree.SubElement(grp, mets_name("file"), ID=file_ids[f.path])
                _checksum_attrs(el, f, aip.created)
                loc = etree.SubElement(el, mets_name("FLocat"), LOCTYPE="URL")
                loc.set(xlink_name("type"), "simple")
                loc.set(xlink_name("href"), f.path)

    # structure
    smap = etree.SubElement(root, mets_name("structMap"), TYPE="PHYSICAL", LABEL="CSIP")
    top = etree.SubElement(smap, mets_name("div"), ID=ids.make("div", "root"), LABEL=aip.id)
    meta = etree.SubElement(top, mets_name("div"), ID=ids.make("div", "Metadata"), LABEL="Metadata")
    if dmd_ids:
        meta.set("DMDID", " ".join(dmd_ids))
    meta.set("ADMID", " ".join(amd_ids))
    for use, files in groups.items():
        div = etree.SubElement(top, mets_name("div"), ID=ids.make("div", use), LABEL=use)
        if use == SUBMISSION_USE:
            for f in files:
                etree.SubElement(div, mets_name("fptr"), FILEID=file_ids[f.path])
            continue
        _document_divs(div, aip, files, file_ids, ids)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _document_divs(div: etree._Element, aip: Aip, files: list[AipFile], file_ids: dict[str, str],
                   ids: XmlIds) -> None:
    """One div per document (LABEL docCode, ORDER docOrdinal) with its files.

    Files whose document is not listed are pointed to from the representation div itself (METS wants its
    fptr elements before the child divs), so that every original is in the structMap.
    """
    codes = {str(doc.get("docCode", "")) for doc in aip.documents}
    by_doc: dict[str, list[AipFile]] = {}
    for f in files:
        if f.doc_code and f.doc_code in codes:
            by_doc.setdefault(f.doc_code, []).append(f)
        else:
            etree.SubElement(div, mets_name("fptr"), FILEID=file_ids[f.path])
    for n, doc in enumerate(aip.documents, start=1):
        code = str(doc.get("docCode", ""))
        ddiv = etree.SubElement(div, mets_name("div"), ID=ids.make("div", code), LABEL=code, TYPE="document")
        ordinal = doc.get("docOrdinal")
        ddiv.set("ORDER", str(int(ordinal)) if ordinal not in (None, "") else str(n))
        for f in by_doc.get(code, []):
            etree.SubElement(ddiv, mets_name("fptr"), FILEID=file_ids[f.path])
