"""metadata/preservation/premis.xml of an AIP: PREMIS 3.0 objects, events and agents.

Objects: the dossier as an intellectual entity (identifiers: the AIP id, its file code), then one file object
per original, submission and descriptive file (never METS.xml or premis.xml itself), with SHA-256 and SHA-512
fixity, size, format (PRONOM key when identified), original name and a structural "is included in"
relationship to the intellectual entity (with the document's ordinal as sequence, for originals and their
derivatives). A derivative (the OCR PDF/A) also has a "derivation / has source" relationship to its original.
Events and agents come from Aip.events and Aip.agents as they are. Terms follow the Library of Congress
PREMIS vocabularies (id.loc.gov/vocabulary/preservation/...).
"""

from __future__ import annotations

from lxml import etree

from preserve.aip.model import (ROLE_DERIVATIVE, ROLE_DESCRIPTIVE, ROLE_ORIGINAL, ROLE_SUBMISSION, Agent, Aip, AipFile,
                                Event)
from preserve.aip.xmlschemas import xml_text

PREMIS_NS = "http://www.loc.gov/premis/v3"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{PREMIS_NS} https://www.loc.gov/standards/premis/premis.xsd"

# identifier types
ID_UUID = "UUID"          # values in the "uuid-<uuid>" form: AIP (OBJID) and event ids
ID_FILE_CODE = "fileCode"  # mã hồ sơ
ID_FILEPATH = "filepath"  # AipFile.path, relative to the bag's data/
ID_LOCAL = "local"        # agent ids

DESCRIBED_ROLES = (ROLE_ORIGINAL, ROLE_DERIVATIVE, ROLE_SUBMISSION, ROLE_DESCRIPTIVE)
EXCLUDED_NAMES = ("METS.xml", "premis.xml")


def _p(tag: str) -> str:
    return f"{{{PREMIS_NS}}}{tag}"


def sub_element(parent: etree._Element, tag: str, text: object | None = None) -> etree._Element:
    el = etree.SubElement(parent, _p(tag))
    if text is not None:
        el.text = xml_text(text)
    return el


def add_identifier(parent: etree._Element, prefix: str, id_type: str, value: str) -> etree._Element:
    el = sub_element(parent, f"{prefix}Identifier")
    sub_element(el, f"{prefix}IdentifierType", id_type)
    sub_element(el, f"{prefix}IdentifierValue", value)
    return el


def described_files(aip: Aip) -> list[AipFile]:
    """The files that get a PREMIS object: originals, submission and descriptive files."""
    return [f for f in aip.files
            if f.role in DESCRIBED_ROLES and f.path.rsplit("/", 1)[-1] not in EXCLUDED_NAMES]


def _object_id_type(aip: Aip, value: str) -> str:
    return ID_UUID if value == aip.id else ID_FILEPATH


def _entity(root: etree._Element, aip: Aip) -> None:
    obj = sub_element(root, "object")
    obj.set(f"{{{XSI_NS}}}type", "premis:intellectualEntity")
    add_identifier(obj, "object", ID_UUID, aip.id)
    add_identifier(obj, "object", ID_FILE_CODE, aip.file_code)


def _file_object(root: etree._Element, aip: Aip, f: AipFile, ordinals: dict[str, int]) -> None:
    obj = sub_element(root, "object")
    obj.set(f"{{{XSI_NS}}}type", "premis:file")
    add_identifier(obj, "object", ID_FILEPATH, f.path)
    chars = sub_element(obj, "objectCharacteristics")
    sub_element(chars, "compositionLevel", "0")
    for algorithm, digest in (("SHA-256", f.sha256), ("SHA-512", f.sha512)):
        fixity = sub_element(chars, "fixity")
        sub_element(fixity, "messageDigestAlgorithm", algorithm)
        sub_element(fixity, "messageDigest", digest)
    sub_element(chars, "size", f.size)
    fmt = sub_element(chars, "format")
    designation = sub_element(fmt, "formatDesignation")
    sub_element(designation, "formatName", f.format_name or f.mime)
    if f.format_version:
        sub_element(designation, "formatVersion", f.format_version)
    if f.puid:
        registry = sub_element(fmt, "formatRegistry")
        sub_element(registry, "formatRegistryName", "PRONOM")
        sub_element(registry, "formatRegistryKey", f.puid)
        sub_element(registry, "formatRegistryRole", "specification")
    if f.original_name:
        sub_element(obj, "originalName", f.original_name)
    rel = sub_element(obj, "relationship")
    sub_element(rel, "relationshipType", "structural")
    sub_element(rel, "relationshipSubType", "is included in")
    related = add_identifier(rel, "relatedObject", ID_UUID, aip.id)
    if f.role in (ROLE_ORIGINAL, ROLE_DERIVATIVE) and f.doc_code in ordinals:
        sub_element(related, "relatedObjectSequence", ordinals[f.doc_code])
    if f.role == ROLE_DERIVATIVE and f.derived_from:
        rel = sub_element(obj, "relationship")
        sub_element(rel, "relationshipType", "derivation")
        sub_element(rel, "relationshipSubType", "has source")
        add_identifier(rel, "relatedObject", ID_FILEPATH, f.derived_from)


def _event(root: etree._Element, aip: Aip, ev: Event) -> None:
    el = sub_element(root, "event")
    add_identifier(el, "event", ID_UUID, ev.id)
    sub_element(el, "eventType", ev.type)
    sub_element(el, "eventDateTime", ev.datetime)
    if ev.detail:
        sub_element(sub_element(el, "eventDetailInformation"), "eventDetail", ev.detail)
    sub_element(sub_element(el, "eventOutcomeInformation"), "eventOutcome", ev.outcome)
    for agent_id, role in ev.agents:
        link = add_identifier(el, "linkingAgent", ID_LOCAL, agent_id)
        if role:
            sub_element(link, "linkingAgentRole", role)
    for value in ev.objects:
        add_identifier(el, "linkingObject", _object_id_type(aip, value), value)


def _agent(root: etree._Element, agent: Agent) -> None:
    el = sub_element(root, "agent")
    add_identifier(el, "agent", ID_LOCAL, agent.id)
    sub_element(el, "agentName", agent.name)
    sub_element(el, "agentType", agent.type)
    if agent.type == "software" and agent.note:
        sub_element(el, "agentVersion", agent.note)
    elif agent.note:
        sub_element(el, "agentNote", agent.note)


def build_premis(aip: Aip) -> bytes:
    """premis.xml (UTF-8 bytes), valid against metadata_schemas/xsd/premis-v3.xsd."""
    root = etree.Element(_p("premis"), nsmap={"premis": PREMIS_NS, "xsi": XSI_NS})
    root.set("version", "3.0")
    root.set(f"{{{XSI_NS}}}schemaLocation", SCHEMA_LOCATION)
    ordinals: dict[str, int] = {}
    for doc in aip.documents:
        try:
            ordinals[str(doc["docCode"])] = int(doc["docOrdinal"])
        except (KeyError, TypeError, ValueError):
            continue
    _entity(root, aip)
    for f in described_files(aip):
        _file_object(root, aip, f, ordinals)
    for ev in aip.events:
        _event(root, aip, ev)
    for agent in aip.agents:
        _agent(root, agent)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
