"""Between `preserve.aip.model.Aip` and catalog rows: build the rows of one AIP, and turn rows back into the
dictionaries the Catalog API returns (dossier and documents by profile key, as in `Aip.dossier`)."""

from __future__ import annotations

import json
from typing import Any

from preserve.aip.model import ROLE_ORIGINAL, Aip
from preserve.errors import CatalogError

from .chain import canonical_json, nfc
from .models import (
    AIP_STORED,
    DOCUMENT_COLUMNS,
    DOCUMENT_INT_KEYS,
    DOSSIER_COLUMNS,
    DOSSIER_INT_KEYS,
    AipFileRecord,
    AipRecord,
    Document,
    Dossier,
)

_DOSSIER_ELSEWHERE = {"fondsName"}  # kept in Fonds.name


def _int(key: str, value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise CatalogError(f"{where}: field {key} must be a whole number, not {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise CatalogError(f"{where}: field {key} must be a whole number, not {value!r}") from exc


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return nfc(value if isinstance(value, str) else str(value))


def _columns(data: dict[str, Any], columns: dict[str, str], int_keys: frozenset[str], skip: set[str],
             where: str) -> dict[str, Any]:
    """Column values for a row of profile keys; unknown keys go, as JSON, to the `extra` column."""
    out: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        if key in skip:
            continue
        column = columns.get(key)
        if column is None:
            extra[key] = nfc(value)
        elif key in int_keys:
            out[column] = _int(key, value, where)
        else:
            out[column] = _text(value)
    out["extra"] = canonical_json(extra) if extra else None
    return out


def _dict(row: Any, columns: dict[str, str]) -> dict[str, Any]:
    out = {key: getattr(row, column) for key, column in columns.items()}
    if row.extra:
        out.update(json.loads(row.extra))
    return out


def aip_pages(aip: Aip) -> int:
    """Pages of an AIP: the pages counted in its original files when every original has a count, else the
    sum of the documents' declared numberOfPage."""
    originals = aip.originals()
    if originals and all(f.pages is not None for f in originals):
        return sum(int(f.pages or 0) for f in originals)
    return sum(_int("numberOfPage", d.get("numberOfPage"), "document") or 0 for d in aip.documents)


def _document_paths(aip: Aip) -> dict[str, str]:
    """docCode -> path in the AIP of its (first) original file."""
    paths: dict[str, str] = {}
    for f in aip.files:
        if f.role == ROLE_ORIGINAL and f.doc_code and f.doc_code not in paths:
            paths[f.doc_code] = f.path
    return paths


def aip_row(aip: Aip, path: str, tagmanifest_sha256: str) -> AipRecord:
    return AipRecord(id=aip.id, file_code=nfc(aip.file_code), version=int(aip.version), created=aip.created,
                     path=path, documents=len(aip.documents), pages=aip_pages(aip),
                     bytes=sum(int(f.size) for f in aip.files), tagmanifest_sha256=tagmanifest_sha256,
                     status=AIP_STORED)


def dossier_row(aip: Aip) -> Dossier:
    values = _columns(aip.dossier, DOSSIER_COLUMNS, DOSSIER_INT_KEYS, _DOSSIER_ELSEWHERE,
                      f"dossier {aip.file_code}")
    return Dossier(**values, aip_id=aip.id)


def document_rows(aip: Aip) -> list[Document]:
    paths = _document_paths(aip)
    rows = []
    for doc in aip.documents:
        where = f"document {doc.get('docCode')}"
        values = _columns(doc, DOCUMENT_COLUMNS, DOCUMENT_INT_KEYS, set(), where)
        values["file_code"] = values.get("file_code") or nfc(aip.file_code)
        values["file"] = paths.get(str(doc.get("docCode")), values.get("file"))
        if values.get("secrecy") == "":
            values["secrecy"] = None
        rows.append(Document(**values, aip_id=aip.id))
    return rows


def file_rows(aip: Aip) -> list[AipFileRecord]:
    return [AipFileRecord(aip_id=aip.id, path=nfc(f.path), role=f.role, size=int(f.size), sha256=f.sha256,
                          sha512=f.sha512, mime=f.mime, puid=f.puid, format_name=_text(f.format_name),
                          format_version=_text(f.format_version), original_name=_text(f.original_name),
                          doc_code=_text(f.doc_code), pages=f.pages,
                          derived_from=nfc(f.derived_from) if f.derived_from else None)
            for f in aip.files]


def summary_dict(row: AipRecord) -> dict[str, Any]:
    return {"id": row.id, "fileCode": row.file_code, "version": row.version, "documents": row.documents,
            "pages": row.pages, "bytes": row.bytes, "created": row.created}


def dossier_dict(row: Dossier, fonds_name: str | None) -> dict[str, Any]:
    out = _dict(row, DOSSIER_COLUMNS)
    out["fondsName"] = fonds_name
    return out


def document_dict(row: Document) -> dict[str, Any]:
    return _dict(row, DOCUMENT_COLUMNS)


def file_dict(row: AipFileRecord) -> dict[str, Any]:
    return {"path": row.path, "role": row.role, "size": row.size, "sha256": row.sha256, "sha512": row.sha512,
            "mime": row.mime, "puid": row.puid, "format_name": row.format_name,
            "format_version": row.format_version, "original_name": row.original_name,
            "doc_code": row.doc_code, "pages": row.pages, "derived_from": row.derived_from}



def search_docs(aip: Aip) -> list:
    """The search index's rows for the documents of an AIP: their metadata, access class and OCR text."""
    from preserve.access.rules import record_level
    from preserve.search.index import SearchDoc

    d = aip.dossier

    def text(v: Any) -> str | None:
        v = _text(v)
        return nfc(v) if v else None

    out = []
    for doc in aip.documents:
        code = str(doc.get("docCode"))
        keywords = "; ".join(k for k in (text(d.get("keyword")), text(doc.get("keyword"))) if k) or None
        out.append(SearchDoc(
            doc_code=nfc(code), file_code=nfc(aip.file_code), fonds_code=nfc(str(d.get("fondsCode") or "")),
            aip_id=aip.id, type_code=text(doc.get("typeName")), issued_iso=text(doc.get("issuedDate_iso")),
            level=record_level(d.get("mode"), [(doc.get("mode"), doc.get("secrecy"))]),
            dossier_title=text(d.get("title")) or "", subject=text(doc.get("subject")) or "",
            code_number=text(doc.get("codeNumber")), code_notation=text(doc.get("codeNotation")),
            signer=text(doc.get("signer")), organ_name=text(doc.get("organName")), keywords=keywords,
            text=nfc(aip.texts[code]) if aip.texts.get(code) else None))
    return out
