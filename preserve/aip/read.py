"""Read a stored AIP back into the `Aip` it was built from, so that the catalog can be rebuilt from a tier.

The catalog is an index, not the truth (DESIGN principle 1): `Catalog.register_aip(read_aip(bag), …)` must
recreate the rows the ingest wrote. Only metadata is read — bagit.txt, bag-info.txt, the payload manifests,
METS.xml, premis.xml, hoso.xml and the received workbook and bag-info in submission/ — never the scans, so
`read_aip_files` can read a tier file by file, by bag-relative name.

Where each part comes from:
- id, created, organisation: METS.xml (OBJID, metsHdr CREATEDATE, the CUSTODIAN agent);
- version, profile, dossier, documents: hoso.xml (`aipVersion`, `profile`, `parse_profile_xml`);
- files: paths, roles (fileGrp / dmdSec / digiprovMD), MIME and size from METS.xml, in PREMIS object order
  then premis.xml then METS.xml (the order ingest listed them); SHA-256 and SHA-512 from the bag manifests;
  PRONOM id, format name and version, original name from premis.xml; docCode from the METS structMap;
- events and agents: premis.xml, in document order; bag_info: submission/bag-info.txt;
- texts (for search): the text layer of each OCR derivative (representations/ocr/), the only payload files
  read besides metadata.

What the AIP does not record, and how it is derived:
- a workbook column that was there but empty (ingest keeps "" for text, None for codes and numbers) and a
  column that was not there (no key) look alike in hoso.xml, which leaves out empty values: the header of the
  workbook in submission/ tells them apart;
- pages counted in each scan (`AipFile.pages`, a document's "pages"): the document's numberOfPage, which
  validation required to equal the count (E-COUNT-PAGES-DOC is an error, so no accepted document differs);
- METS.xml's own size and MIME (METS cannot list itself): the bytes read, and "application/xml";
- format name: PREMIS writes the MIME type when a file has none, so a formatName equal to the MIME is None.

METS and PREMIS digests and sizes must agree with the manifests and Payload-Oxum; the caller verifies the
manifests against the bytes (`preserve.aip.inventory`).
"""

from __future__ import annotations

import re
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from ..errors import PreserveError
from ..sip.profile import Profile, Sheet, load_profile
from ..sip.safety import check_xml_bytes
from ..sip.workbook import read_workbook
from .build import METS_NAME, PREMIS_PATH, PROFILE_XML_PATH
from .descriptive import parse_profile_xml
from .inventory import parse_manifest
from .mets import CSIP_NS, METS_NS, SUBMISSION_USE, XLINK_NS
from .model import ROLE_DERIVATIVE, ROLE_DESCRIPTIVE, ROLE_ORIGINAL, ROLE_PACKAGE, ROLE_PRESERVATION, ROLE_SUBMISSION, \
    Agent, Aip, AipFile, Event
from .premis import PREMIS_NS, XSI_NS
from .xmlschemas import parse

Reader = Callable[[str], bytes]  # bag-relative name -> bytes; raises FileNotFoundError when absent

NS = {"mets": METS_NS, "xlink": XLINK_NS, "csip": CSIP_NS, "premis": PREMIS_NS}
METS_MIME = "application/xml"
WORKBOOK_NAMES = ("mucluc.xlsx", "hoso.csv", "tailieu.csv")
RECEIVED_BAG_INFO = "submission/bag-info.txt"
OCR_USE = "Representations/ocr"
_NEWLINES = re.compile(r"\r\n|\r|\n")
DAMAGED_HINT = ("Check this copy (`bagit.py --validate <folder>`, `preserve audit`); if it is damaged, read the AIP "
                "from another tier or the off-site copy.")
NOT_AIP_HINT = "Give the folder of one AIP version, e.g. tiers/primary/aips/ab/cd/<uuid>/v1."


class AipReadError(PreserveError):
    """A stored AIP cannot be read back: the message names the AIP and the file and says what is wrong."""


def read_aip(bag: Path) -> Aip:
    """The Aip a stored AIP folder was built from (payload files' digests from the bag's manifests, which the
    caller has verified or will verify)."""
    bag = Path(bag)
    return read_aip_files(lambda name: (bag / name).read_bytes(), str(bag))


def read_aip_files(read: Reader, where: str = "AIP") -> Aip:
    """As read_aip, reading each file by its bag-relative name through `read` (e.g. from a remote tier);
    `where` names the AIP in error messages. Only metadata files are read, never the scans."""
    bag = _Bag(read, where)
    bag.bytes("bagit.txt", missing=f"{where} is not an AIP: it has no bagit.txt")
    digests = _digests(bag)
    mets_bytes = bag.checked(f"data/{METS_NAME}")
    mets = _read_mets(_Xml(bag, f"data/{METS_NAME}", parse(mets_bytes)))
    premis = _read_premis(bag.xml(f"data/{PREMIS_PATH}"))
    version, profile, dossier, documents = _read_profile_xml(bag, mets.aip_id)
    pages = {str(doc.get("docCode")): doc.get("numberOfPage") for doc in documents}
    files = _files(bag, digests, mets, premis, pages, len(mets_bytes))
    _check_oxum(bag, files)
    given = _given_columns(bag, [f.path for f in files], profile)
    _restore_empty(dossier, profile.dossier, given[profile.dossier.name])
    for doc in documents:
        _restore_empty(doc, profile.document, given[profile.document.name])
        doc["pages"] = doc.get("numberOfPage")
    return Aip(mets.aip_id, version, mets.created, profile.name, dossier, documents, files, premis.events,
               premis.agents, mets.organisation, _received_bag_info(bag, digests), _texts(bag, files))


def _texts(bag: "_Bag", files: list[AipFile]) -> dict[str, str]:
    """docCode -> the text layer of its OCR derivative (for search); its bytes are checked by the caller with the
    manifests, as every payload file's."""
    from ..ocr.engine import extract_text

    out: dict[str, str] = {}
    for f in files:
        if f.role == ROLE_DERIVATIVE and f.doc_code:
            try:
                out[f.doc_code] = extract_text(bag.bytes(f"data/{f.path}"))
            except (RuntimeError, OSError) as exc:  # pdftotext refused it
                raise bag.error(f"data/{f.path}", f"has no readable text layer ({exc})") from exc
    return out


# --- reading files ----------------------------------------------------------------------------------------


class _Bag:
    """The files of one AIP, read by bag-relative name; every failure names the AIP and the file."""

    def __init__(self, read: Reader, where: str):
        self._read = read
        self.where = where

    def error(self, name: str, what: str, hint: str = DAMAGED_HINT) -> AipReadError:
        return AipReadError(f"{self.where}: {name} {what}", hint=hint)

    def bytes(self, name: str, missing: str | None = None) -> bytes:
        try:
            return self._read(name)
        except (FileNotFoundError, NotADirectoryError):
            if missing:
                raise AipReadError(missing, hint=NOT_AIP_HINT) from None
            raise self.error(name, "is missing") from None
        except OSError as exc:
            raise self.error(name, f"cannot be read ({exc})") from exc

    def text(self, name: str) -> str:
        data = self.bytes(name)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.not_utf8(name, exc) from exc

    def not_utf8(self, name: str, exc: UnicodeDecodeError) -> AipReadError:
        return self.error(name, f"is not UTF-8 text ({exc.reason} at byte {exc.start})")

    def checked(self, name: str) -> bytes:
        """The bytes of an XML file that is well-formed and declares no DTD or entity (refused, never
        resolved: the same rule as for XML received in a batch)."""
        data = self.bytes(name)
        problems = check_xml_bytes(data, name)
        if problems:
            raise AipReadError(f"{self.where}: {problems[0].message_en}", hint=DAMAGED_HINT)
        return data

    def xml(self, name: str) -> _Xml:
        return _Xml(self, name, parse(self.checked(name)))


@dataclass
class _Xml:
    """A parsed metadata file, with lookups that name the file when a required value is absent."""

    bag: _Bag
    name: str
    root: etree._Element

    def error(self, what: str) -> AipReadError:
        return self.bag.error(self.name, what)

    def opt(self, el: etree._Element, path: str) -> str | None:
        value = el.findtext(path, namespaces=NS)
        return None if value is None else unicodedata.normalize("NFC", value)

    def need(self, el: etree._Element, path: str, what: str) -> str:
        value = self.opt(el, path)
        if value is None or not value.strip():
            raise self.error(f"has no {what} ({path.replace('premis:', '').replace('mets:', '')})")
        return value

    def attr(self, el: etree._Element, name: str, what: str) -> str:
        value = el.get(name)
        if value is None or not value.strip():
            raise self.error(f"has no {what} (attribute {etree.QName(name).localname} of "
                             f"{etree.QName(el).localname})")
        return unicodedata.normalize("NFC", value)

    def number(self, el: etree._Element, value: str, what: str) -> int:
        if not value.strip().isdigit():
            raise self.error(f"gives {what} as {value!r}, not a whole number (in {etree.QName(el).localname})")
        return int(value)


def _digests(bag: _Bag) -> dict[str, tuple[str, str]]:
    """Payload path relative to data/ -> (SHA-256, SHA-512), from the two manifests, which must list the same
    files."""
    by_alg = {}
    for alg in ("sha256", "sha512"):
        name = f"manifest-{alg}.txt"
        try:
            entries = parse_manifest(bag.bytes(name))
        except UnicodeDecodeError as exc:
            raise bag.not_utf8(name, exc) from exc
        outside = sorted(p for p in entries if not p.startswith("data/"))
        if outside:
            raise bag.error(name, f"lists {outside[0]!r}, which is not under data/")
        by_alg[alg] = {p.removeprefix("data/"): d for p, d in entries.items()}
    only = sorted(set(by_alg["sha256"]) ^ set(by_alg["sha512"]))
    if only:
        raise bag.error("manifest-sha512.txt", f"and manifest-sha256.txt do not list the same files (data/{only[0]})")
    return {p: (d, by_alg["sha512"][p]) for p, d in by_alg["sha256"].items()}


# --- METS -------------------------------------------------------------------------------------------------


@dataclass
class _Listed:
    """A file as METS.xml lists it."""

    role: str
    mime: str
    size: int
    sha256: str


@dataclass
class _Mets:
    aip_id: str
    created: str
    organisation: str
    files: dict[str, _Listed]  # path relative to data/ -> listing, in METS order
    doc_codes: dict[str, str]  # path of an original -> docCode of its structMap div


def _read_mets(x: _Xml) -> _Mets:
    root = x.root
    if root.tag != f"{{{METS_NS}}}mets":
        raise x.error(f"is not a METS document (root element {root.tag})")
    hdr = root.find("mets:metsHdr", NS)
    if hdr is None or hdr.get(f"{{{CSIP_NS}}}OAISPACKAGETYPE") != "AIP":
        raise x.error("does not describe an AIP (metsHdr csip:OAISPACKAGETYPE is not AIP)")
    files: dict[str, _Listed] = {}
    for section, role in (("mets:dmdSec", ROLE_DESCRIPTIVE), ("mets:amdSec/mets:digiprovMD", ROLE_PRESERVATION)):
        for ref in root.iterfind(f"{section}/mets:mdRef", NS):
            files[x.attr(ref, f"{{{XLINK_NS}}}href", "path")] = _listed(x, ref, role)
    file_ids: dict[str, str] = {}
    for grp in root.iterfind("mets:fileSec/mets:fileGrp", NS):
        role = _group_role(x, grp)
        for el in grp.iterfind("mets:file", NS):
            loc = el.find("mets:FLocat", NS)
            if loc is None:
                raise x.error(f"lists file {el.get('ID')!r} without an FLocat")
            path = x.attr(loc, f"{{{XLINK_NS}}}href", "path of a file")
            files[path] = _listed(x, el, role)
            file_ids[x.attr(el, "ID", "file ID")] = path
    return _Mets(x.attr(root, "OBJID", "AIP id"), x.attr(hdr, "CREATEDATE", "creation date"),
                 x.opt(hdr, "mets:agent[@ROLE='CUSTODIAN']/mets:name") or "", files, _doc_codes(x, file_ids))


def _group_role(x: _Xml, grp: etree._Element) -> str:
    use = grp.get("USE", "")
    if use == SUBMISSION_USE:
        return ROLE_SUBMISSION
    if use == OCR_USE:
        return ROLE_DERIVATIVE
    if use.startswith("Representations/"):
        return ROLE_ORIGINAL
    raise x.error(f"has a fileGrp with USE {use!r}, neither Representations/<name> nor {SUBMISSION_USE}")


def _listed(x: _Xml, el: etree._Element, role: str) -> _Listed:
    size = x.attr(el, "SIZE", "size")
    return _Listed(role, x.attr(el, "MIMETYPE", "MIME type"), x.number(el, size, "SIZE"),
                   x.attr(el, "CHECKSUM", "SHA-256").lower())


def _doc_codes(x: _Xml, file_ids: dict[str, str]) -> dict[str, str]:
    """The docCode of each original, from the structMap div (TYPE document, LABEL docCode) that points to it."""
    out: dict[str, str] = {}
    for div in x.root.iterfind("mets:structMap//mets:div[@TYPE='document']", NS):
        code = x.attr(div, "LABEL", "docCode")
        for ptr in div.iterfind("mets:fptr", NS):
            file_id = ptr.get("FILEID", "")
            if file_id not in file_ids:
                raise x.error(f"points from document {code} to file {file_id!r}, which its fileSec does not list")
            out[file_ids[file_id]] = code
    return out


# --- PREMIS -----------------------------------------------------------------------------------------------


@dataclass
class _Described:
    """A file as premis.xml describes it."""

    sha256: str
    sha512: str
    size: int
    format_name: str
    format_version: str | None
    puid: str | None
    original_name: str | None
    derived_from: str | None = None


@dataclass
class _Premis:
    files: dict[str, _Described]  # in document order
    events: list[Event]
    agents: list[Agent]


def _read_premis(x: _Xml) -> _Premis:
    if x.root.tag != f"{{{PREMIS_NS}}}premis":
        raise x.error(f"is not a PREMIS document (root element {x.root.tag})")
    files = {}
    for obj in x.root.iterfind("premis:object", NS):
        if obj.get(f"{{{XSI_NS}}}type") == "premis:file":
            ident = obj.xpath("premis:objectIdentifier[premis:objectIdentifierType='filepath']", namespaces=NS)
            if not ident:
                raise x.error("has a file object without a filepath identifier")
            files[x.need(ident[0], "premis:objectIdentifierValue", "file path")] = _described(x, obj)
    return _Premis(files, [_event(x, el) for el in x.root.iterfind("premis:event", NS)],
                   [_agent(x, el) for el in x.root.iterfind("premis:agent", NS)])


def _described(x: _Xml, obj: etree._Element) -> _Described:
    chars = obj.find("premis:objectCharacteristics", NS)
    if chars is None:
        raise x.error("has a file object without objectCharacteristics")
    fixity = {x.need(f, "premis:messageDigestAlgorithm", "digest algorithm"):
              x.need(f, "premis:messageDigest", "digest").lower() for f in chars.iterfind("premis:fixity", NS)}
    if not {"SHA-256", "SHA-512"} <= set(fixity):
        raise x.error("has a file object without SHA-256 and SHA-512 fixity")
    return _Described(fixity["SHA-256"], fixity["SHA-512"],
                      x.number(chars, x.need(chars, "premis:size", "size"), "size"),
                      x.need(chars, "premis:format/premis:formatDesignation/premis:formatName", "format name"),
                      x.opt(chars, "premis:format/premis:formatDesignation/premis:formatVersion"),
                      x.opt(chars, "premis:format/premis:formatRegistry/premis:formatRegistryKey"),
                      x.opt(obj, "premis:originalName"),
                      x.opt(obj, "premis:relationship[premis:relationshipType='derivation']"
                                 "/premis:relatedObjectIdentifier/premis:relatedObjectIdentifierValue"))


def _event(x: _Xml, el: etree._Element) -> Event:
    agents = [(x.need(link, "premis:linkingAgentIdentifierValue", "linking agent id"),
               x.opt(link, "premis:linkingAgentRole") or "")
              for link in el.iterfind("premis:linkingAgentIdentifier", NS)]
    objects = [x.need(link, "premis:linkingObjectIdentifierValue", "linking object id")
               for link in el.iterfind("premis:linkingObjectIdentifier", NS)]
    return Event(x.need(el, "premis:eventIdentifier/premis:eventIdentifierValue", "event id"),
                 x.need(el, "premis:eventType", "event type"),
                 x.need(el, "premis:eventDateTime", "event date-time"),
                 x.need(el, "premis:eventOutcomeInformation/premis:eventOutcome", "event outcome"),
                 x.opt(el, "premis:eventDetailInformation/premis:eventDetail") or "", agents, objects)


def _agent(x: _Xml, el: etree._Element) -> Agent:
    """The software's version is written as agentVersion, any other agent's note as agentNote."""
    return Agent(x.need(el, "premis:agentIdentifier/premis:agentIdentifierValue", "agent id"),
                 x.opt(el, "premis:agentName") or "", x.need(el, "premis:agentType", "agent type"),
                 x.opt(el, "premis:agentVersion") or x.opt(el, "premis:agentNote"))


# --- descriptive metadata ---------------------------------------------------------------------------------


def _read_profile_xml(bag: _Bag, aip_id: str) -> tuple[int, Profile, dict[str, Any], list[dict[str, Any]]]:
    """(AIP version, profile, dossier, documents) from hoso.xml, text NFC."""
    name = f"data/{PROFILE_XML_PATH}"
    data = bag.checked(name)
    x = _Xml(bag, name, parse(data))
    try:
        dossier, documents = parse_profile_xml(data)
        profile = load_profile(x.attr(x.root, "profile", "profile name"))
    except (ValueError, OSError) as exc:
        raise x.error(f"cannot be read as a profile's dossier XML ({exc})") from exc
    if x.attr(x.root, "aip", "AIP id") != aip_id:
        raise x.error(f"belongs to AIP {x.root.get('aip')}, but METS.xml is AIP {aip_id}")
    version = x.number(x.root, x.attr(x.root, "aipVersion", "AIP version"), "aipVersion")
    return version, profile, _nfc(dossier), [_nfc(doc) for doc in documents]


def _nfc(record: dict[str, Any]) -> dict[str, Any]:
    return {k: unicodedata.normalize("NFC", v) if isinstance(v, str) else v for k, v in record.items()}


def _given_columns(bag: _Bag, paths: list[str], profile: Profile) -> dict[str, set[str]]:
    """Sheet name -> the profile fields the received workbook had a column for (read as ingest read it)."""
    names = [p for p in paths if p.startswith("submission/") and p.count("/") == 1
             and p.removeprefix("submission/").lower() in WORKBOOK_NAMES]
    where = f"data/{names[0]}" if names else "data/submission/"
    with tempfile.TemporaryDirectory(prefix="preserve-read-") as tmp:
        for p in names:
            (Path(tmp) / p.removeprefix("submission/")).write_bytes(bag.bytes(f"data/{p}"))
        workbook = read_workbook(Path(tmp), profile)
    out = {}
    for sheet in (profile.dossier, profile.document):
        rows = workbook.sheets.get(sheet.name)
        if not rows:
            errors = [f.message_en for f in workbook.findings if f.is_error]
            raise bag.error(where, f"does not give the columns of sheet {sheet.name} ({'; '.join(errors[:2])})")
        out[sheet.name] = set(rows[0].columns)
    return out


def _restore_empty(record: dict[str, Any], sheet: Sheet, given: set[str]) -> None:
    """Put back the empty values hoso.xml leaves out, as ingest kept them (preserve.sip.fields.check_row): ""
    for text, None for codes and numbers, only for fields whose column the workbook had."""
    for f in sheet.fields:
        if f.key in given and f.key not in record:
            record[f.key] = None if f.kind == "int" or f.codes else ""


# --- files and the bag ------------------------------------------------------------------------------------


def _files(bag: _Bag, digests: dict[str, tuple[str, str]], mets: _Mets, premis: _Premis,
           pages: dict[str, int | None], mets_size: int) -> list[AipFile]:
    """Every payload file, in the order ingest listed them: the PREMIS objects (originals, submission,
    descriptive), the rest of METS (premis.xml), METS.xml."""
    not_in_mets = [p for p in premis.files if p not in mets.files]
    if not_in_mets:
        raise bag.error(f"data/{PREMIS_PATH}", f"describes data/{not_in_mets[0]}, which METS.xml does not list")
    listed = set(mets.files) | {METS_NAME}
    unknown, absent = sorted(set(digests) - listed), sorted(listed - set(digests))
    if unknown:
        raise bag.error("manifest-sha256.txt", f"lists data/{unknown[0]}, which METS.xml does not")
    if absent:
        raise bag.error(f"data/{METS_NAME}", f"lists data/{absent[0]}, which the manifests do not")
    order = list(premis.files) + [p for p in mets.files if p not in premis.files]
    files = [_file(bag, p, mets.files[p], premis.files.get(p), digests[p], mets.doc_codes.get(p), pages)
             for p in order]
    files.append(AipFile(METS_NAME, mets_size, *digests[METS_NAME], ROLE_PACKAGE, METS_MIME))
    return files


def _file(bag: _Bag, path: str, listed: _Listed, described: _Described | None, digest: tuple[str, str],
          doc_code: str | None, pages: dict[str, int | None]) -> AipFile:
    sha256, sha512 = digest
    found = [("METS.xml", "SHA-256", listed.sha256, "the manifest", sha256)]
    if described is not None:
        found += [("premis.xml", "SHA-256", described.sha256, "the manifest", sha256),
                  ("premis.xml", "SHA-512", described.sha512, "the manifest", sha512),
                  ("premis.xml", "size", described.size, "METS.xml", listed.size)]
    for source, what, got, other, want in found:
        if got != want:
            raise bag.error(f"data/{path}", f"has {what} {got} in {source}, but {want} in {other}")
    fmt = described.format_name if described and described.format_name != listed.mime else None
    return AipFile(path, listed.size, sha256, sha512, listed.role, listed.mime,
                   puid=described.puid if described else None, format_name=fmt,
                   format_version=described.format_version if described else None,
                   original_name=described.original_name if described else None, doc_code=doc_code,
                   pages=pages.get(doc_code) if doc_code else None,
                   derived_from=described.derived_from if described and listed.role == ROLE_DERIVATIVE else None)


def _bag_info(text: str) -> dict[str, list[str]]:
    """Labels -> values of a bag-info.txt, as preserve.sip.bagcheck reads one: repeated labels keep every value
    in order, indented lines continue the previous value."""
    info: dict[str, list[str]] = {}
    last: str | None = None
    for line in _NEWLINES.split(text.removeprefix("\ufeff")):
        if not line.strip():
            continue
        if line[0] in " \t" and last is not None:
            info[last][-1] = f"{info[last][-1]} {line.strip()}"
            continue
        label, sep, value = line.partition(":")
        last = label.strip() if sep and label.strip() else None
        if last is not None:
            info.setdefault(last, []).append(value.strip())
    return info


def _check_oxum(bag: _Bag, files: list[AipFile]) -> None:
    """Payload-Oxum (bytes.files) must match the sizes read from METS, or a size is wrong somewhere."""
    oxum = _bag_info(bag.text("bag-info.txt")).get("Payload-Oxum", [""])[0]
    found = f"{sum(f.size for f in files)}.{len(files)}"
    if oxum != found:
        raise bag.error("bag-info.txt", f"gives Payload-Oxum {oxum!r}, but METS.xml lists {found} (bytes.files)")


def _received_bag_info(bag: _Bag, digests: dict[str, tuple[str, str]]) -> dict[str, str]:
    """The received bag's bag-info as Aip.bag_info holds it (repeated values joined by "; "). Its encoding was
    that bag's own, which the AIP does not keep: read as UTF-8, bytes that are not shown as U+FFFD."""
    if RECEIVED_BAG_INFO not in digests:
        return {}
    text = bag.bytes(f"data/{RECEIVED_BAG_INFO}").decode("utf-8", errors="replace")
    return {k: "; ".join(v) for k, v in _bag_info(text).items()}
