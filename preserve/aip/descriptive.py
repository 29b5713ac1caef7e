"""Descriptive metadata of an AIP: the profile's dossier/document fields as XML, and Simple Dublin Core.

- `build_profile_xml(aip)` → the dossier/document XML in metadata/descriptive/ (the builder names the file),
  namespace urn:preserve:profile:<profile>:<version>, valid against
  metadata_schemas/xsd/vn-party-archive-1.xsd; `parse_profile_xml` reads it back (catalog rebuild).
- `build_dc(aip)` → metadata/descriptive/dc.xml, an `oai_dc:dc` container of DC 1.1 elements.

All text is written NFC-normalised. Which fields exist, their order, kinds and code lists come from the
profile (metadata_schemas/<profile>.yaml), never from this code.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from preserve.aip.model import Aip
from preserve.aip.xmlschemas import parse, xml_text
from preserve.sip.profile import Field, Profile, fold, load_profile

DC_NS = "http://purl.org/dc/elements/1.1/"
OAI_DC_NS = "http://www.openarchives.org/OAI/2.0/oai_dc/"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

DESCRIPTIVE_DIR = "metadata/descriptive"
DC_PATH = f"{DESCRIPTIVE_DIR}/dc.xml"


def profile_namespace(profile: Profile) -> str:
    return f"urn:preserve:profile:{profile.name}:{profile.version}"


def _present(value: Any) -> bool:
    return value is not None and str(value).strip() != ""


def _doc_files(aip: Aip) -> dict[str, str]:
    """docCode → AIP path of its original (the first one, when several)."""
    out: dict[str, str] = {}
    for f in aip.originals():
        if f.doc_code and f.doc_code not in out:
            out[f.doc_code] = f.path
    return out


# --- profile XML ------------------------------------------------------------------------------------------


def _field_element(parent: etree._Element, ns: str, field: Field, record: dict[str, Any], profile: Profile,
                   value: Any = None) -> None:
    value = record.get(field.key) if value is None else value
    if not _present(value):
        return
    el = etree.SubElement(parent, f"{{{ns}}}{field.key}")
    if field.codes:
        code = xml_text(value).strip()
        el.set("code", code)
        el.text = xml_text(profile.code_text(field.codes, code))
    elif field.kind == "int":
        el.text = str(int(value))
    else:
        el.text = xml_text(value)
        if field.kind == "date" and _present(record.get(f"{field.key}_iso")):
            el.set("iso", xml_text(record[f"{field.key}_iso"]))


def build_profile_xml(aip: Aip) -> bytes:
    """The dossier and its documents, every profile field, as XML (UTF-8, with declaration)."""
    profile = load_profile(aip.profile)
    ns = profile_namespace(profile)
    root = etree.Element(f"{{{ns}}}hoSo", nsmap={None: ns})
    root.set("profile", profile.name)
    root.set("profileVersion", str(profile.version))
    root.set("aip", aip.id)
    root.set("aipVersion", str(aip.version))
    for field in profile.dossier.fields:
        _field_element(root, ns, field, aip.dossier, profile)
    files = _doc_files(aip)
    for doc in aip.documents:
        el = etree.SubElement(root, f"{{{ns}}}taiLieu")
        for field in profile.document.fields:
            value = files.get(str(doc.get("docCode"))) if field.key == "file" else None
            _field_element(el, ns, field, doc, profile, value)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _read_fields(el: etree._Element, ns: str, sheet_fields: tuple[Field, ...]) -> dict[str, Any]:
    by_key = {f.key: f for f in sheet_fields}
    out: dict[str, Any] = {}
    for child in el:
        if not isinstance(child.tag, str) or not child.tag.startswith(f"{{{ns}}}"):
            continue
        key = etree.QName(child).localname
        field = by_key.get(key)
        if field is None:
            continue
        text = child.text or ""
        if field.codes:
            out[key] = child.get("code", "")
        elif field.kind == "int":
            out[key] = int(text.strip())
        else:
            out[key] = text
            if field.kind == "date" and child.get("iso") is not None:
                out[f"{key}_iso"] = child.get("iso")
    return out


def parse_profile_xml(data: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(dossier, documents) from build_profile_xml's output, in the Aip.dossier/Aip.documents form.

    Codes come back as codes, int fields as ints, dates as text plus "<key>_iso"; documents' `file` is the
    AIP path of the scan. Unknown elements are ignored. Raises ValueError if the root is not a profile hoSo.
    """
    root = parse(data)
    qname = etree.QName(root)
    m = re.fullmatch(r"urn:preserve:profile:(.+):(\d+)", qname.namespace or "")
    if qname.localname != "hoSo" or not m:
        raise ValueError(f"not a profile document: root element {root.tag}")
    profile = load_profile(root.get("profile") or m.group(1))
    ns = qname.namespace
    dossier = _read_fields(root, ns, profile.dossier.fields)
    documents = [_read_fields(el, ns, profile.document.fields) for el in root.findall(f"{{{ns}}}taiLieu")]
    return dossier, documents


# --- Dublin Core ------------------------------------------------------------------------------------------

# Language names as written in the workbooks → RFC 5646 codes (matched without case or diacritics)
LANGUAGE_CODES = {
    fold(name): code
    for names, code in [
        (("Tiếng Việt", "Việt", "Vietnamese", "vi"), "vi"),
        (("Tiếng Pháp", "Pháp", "French", "fr"), "fr"),
        (("Tiếng Anh", "Anh", "English", "en"), "en"),
        (("Tiếng Nga", "Nga", "Russian", "ru"), "ru"),
        (("Tiếng Trung", "Tiếng Hán", "Hán", "Hán Nôm", "Chinese", "zh"), "zh"),
    ]
    for name in names
}


def _split(text: Any) -> list[str]:
    return [p.strip() for p in re.split(r"[;,]", xml_text(text)) if p.strip()]


def _language_codes(text: Any) -> list[str]:
    return [LANGUAGE_CODES.get(fold(p), p) for p in _split(text)]


def _unique(values: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for v in values:
        if v and v not in seen:
            seen[v] = None
    return list(seen)


def _date_range(dossier: dict[str, Any], iso: bool) -> str:
    start = dossier.get("startDate_iso") if iso else dossier.get("startDate")
    end = dossier.get("endDate_iso") if iso else dossier.get("endDate")
    start, end = (xml_text(v).strip() if _present(v) else "" for v in (start, end))
    if start and end and start != end:
        return f"{start}/{end}" if iso else f"{start} – {end}"
    return start or end


def _document_line(doc: dict[str, Any], profile: Profile) -> str:
    kind = profile.code_text("typeName", doc.get("typeName"))
    number = "-".join(xml_text(doc[k]) for k in ("codeNumber", "codeNotation") if _present(doc.get(k)))
    head = " ".join(p for p in (kind, f"số {number}" if number else "") if p)
    date = f" ({xml_text(doc['issuedDate'])})" if _present(doc.get("issuedDate")) else ""
    return f"{doc.get('docOrdinal', '')}. {head}{date}: {xml_text(doc.get('subject', ''))}".strip()


def build_dc(aip: Aip) -> bytes:
    """Simple Dublin Core for the dossier (oai_dc:dc container), valid against oai_dc.xsd → dc.xsd."""
    profile = load_profile(aip.profile)
    d = aip.dossier
    root = etree.Element(f"{{{OAI_DC_NS}}}dc", nsmap={"oai_dc": OAI_DC_NS, "dc": DC_NS})

    def add(name: str, value: Any, lang: str | None = None) -> None:
        if _present(value):
            el = etree.SubElement(root, f"{{{DC_NS}}}{name}")
            el.text = xml_text(value).strip()
            if lang:
                el.set(XML_LANG, lang)

    add("title", d.get("title"), "vi")
    add("identifier", d.get("fileCode"))
    add("identifier", aip.id)
    creators = [d.get("fondsName", "")] + [doc.get("organName", "") for doc in aip.documents]
    for creator in _unique([xml_text(c).strip() for c in creators if _present(c)]):
        add("creator", creator, "vi")
    add("publisher", aip.organisation, "vi")
    add("date", _date_range(d, iso=True))
    add("type", "Text")
    for kind in _unique([profile.code_text("typeName", doc.get("typeName")) for doc in aip.documents]):
        add("type", kind, "vi")
    for mime in _unique([f.mime for f in aip.originals()]):
        add("format", mime)
    for code in _unique(_language_codes(d.get("language", ""))
                        + [c for doc in aip.documents for c in _language_codes(doc.get("language", ""))]):
        add("language", code)
    keywords = _split(d.get("keyword", "")) + [k for doc in aip.documents for k in _split(doc.get("keyword", ""))]
    for keyword in _unique(keywords):
        add("subject", keyword, "vi")
    add("description", d.get("description"), "vi")
    for doc in aip.documents:
        add("description", _document_line(doc, profile), "vi")
    mode = profile.code_text("mode", d.get("mode"))
    add("rights", f"Chế độ sử dụng: {mode}" if mode else "", "vi")
    secrecy = _unique([profile.code_text("secrecy", doc.get("secrecy")) for doc in aip.documents])
    for level in secrecy:
        add("rights", f"Độ mật: {level}", "vi")
    add("coverage", _date_range(d, iso=False), "vi")
    fonds = " – ".join(xml_text(d[k]).strip() for k in ("fondsCode", "fondsName") if _present(d.get(k)))
    add("relation", f"Phông: {fonds}" if fonds else "", "vi")
    if _present(d.get("catalogNo")):
        add("relation", f"Mục lục số: {xml_text(d['catalogNo']).strip()}", "vi")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
