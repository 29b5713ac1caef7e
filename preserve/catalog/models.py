"""The catalog's tables (SQLModel), and how profile keys map to their columns.

The catalog is an index of the AIPs, not the truth (DESIGN principle 1): every row here can be rebuilt from
the AIPs on a storage tier. Columns of `Dossier` and `Document` are the snake_case of the metadata profile's
keys (metadata_schemas/vn-party-archive.yaml); a date field `xDate` keeps the received text in `x_date` and
the normalised form (yyyy, yyyy-mm or yyyy-mm-dd) in `x_iso`. Keys the profile may gain later, and which
have no column yet, are kept in the `extra` JSON column so that nothing is silently dropped.

The tables live in their own SQLAlchemy registry (`CATALOG_METADATA`), so `create_all` makes these tables
and nothing else, whatever other SQLModel tables the application defines.
"""

from __future__ import annotations

from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

ZERO_HASH = "0" * 64

# Profile key -> column. Order is the profile's order; "<key>_iso" entries follow their date field.
DOSSIER_COLUMNS: dict[str, str] = {
    "fileCode": "file_code",
    "fondsCode": "fonds_code",
    # fondsName is kept in Fonds.name
    "catalogNo": "catalog_no",
    "fileNo": "file_no",
    "boxNo": "box_no",
    "title": "title",
    "maintenance": "maintenance",
    "mode": "mode",
    "language": "language",
    "startDate": "start_date",
    "startDate_iso": "start_iso",
    "endDate": "end_date",
    "endDate_iso": "end_iso",
    "totalDoc": "total_doc",
    "numberOfPaper": "number_of_paper",
    "numberOfPage": "number_of_page",
    "format": "format",
    "keyword": "keyword",
    "inforSign": "infor_sign",
    "description": "description",
}
DOSSIER_INT_KEYS = frozenset({"totalDoc", "numberOfPaper", "numberOfPage"})

DOCUMENT_COLUMNS: dict[str, str] = {
    "docCode": "doc_code",
    "fileCode": "file_code",
    "docOrdinal": "doc_ordinal",
    "typeName": "type_name",
    "codeNumber": "code_number",
    "codeNotation": "code_notation",
    "issuedDate": "issued_date",
    "issuedDate_iso": "issued_iso",
    "organName": "organ_name",
    "subject": "subject",
    "language": "language",
    "numberOfPage": "number_of_page",
    "signer": "signer",
    "secrecy": "secrecy",
    "mode": "mode",
    "autograph": "autograph",
    "keyword": "keyword",
    "description": "description",
    "file": "file",
}
DOCUMENT_INT_KEYS = frozenset({"docOrdinal", "numberOfPage"})

# Replica.status values
REPLICA_OK, REPLICA_PENDING, REPLICA_FAILED, REPLICA_DAMAGED, REPLICA_MISSING = (
    "ok", "pending", "failed", "damaged", "missing")
REPLICA_STATUSES = (REPLICA_OK, REPLICA_PENDING, REPLICA_FAILED, REPLICA_DAMAGED, REPLICA_MISSING)
AIP_STORED = "stored"


class CatalogModel(SQLModel, registry=registry()):
    """Base of the catalog tables: a registry of their own."""


CATALOG_METADATA = CatalogModel.metadata


class Fonds(CatalogModel, table=True):
    __tablename__ = "fonds"
    code: str = Field(primary_key=True)
    name: str = ""


class AipRecord(CatalogModel, table=True):
    __tablename__ = "aip"
    __table_args__ = (UniqueConstraint("file_code", "version", name="uq_aip_file_code_version"),)
    id: str = Field(primary_key=True)                # "uuid-…"
    file_code: str = Field(index=True)
    version: int
    created: str                                     # ISO 8601 with offset
    path: str                                        # relative path on a tier: aips/ab/cd/<uuid>/v1
    documents: int = 0
    pages: int = 0
    bytes: int = 0                                   # total payload bytes
    tagmanifest_sha256: str = ""
    status: str = AIP_STORED


class Dossier(CatalogModel, table=True):
    __tablename__ = "dossier"
    file_code: str = Field(primary_key=True)
    fonds_code: str = Field(foreign_key="fonds.code", index=True)
    catalog_no: str
    file_no: str
    box_no: str | None = None
    title: str
    maintenance: str                                 # code, e.g. "01"
    mode: str                                        # code
    language: str
    start_date: str                                  # as received
    start_iso: str | None = None
    end_date: str
    end_iso: str | None = None
    total_doc: int
    number_of_paper: int | None = None
    number_of_page: int
    format: str | None = None                        # code
    keyword: str | None = None
    infor_sign: str | None = None
    description: str | None = None
    extra: str | None = None                         # JSON of keys without a column
    aip_id: str = Field(foreign_key="aip.id", index=True)  # the AIP (latest version) holding it


class Document(CatalogModel, table=True):
    __tablename__ = "document"
    doc_code: str = Field(primary_key=True)
    file_code: str = Field(foreign_key="dossier.file_code", index=True)
    doc_ordinal: int
    type_name: str                                   # code
    code_number: str | None = None
    code_notation: str | None = None
    issued_date: str
    issued_iso: str | None = None
    organ_name: str
    subject: str
    language: str | None = None
    number_of_page: int
    signer: str | None = None
    secrecy: str | None = None                       # code or None
    mode: str | None = None                          # code
    autograph: str | None = None
    keyword: str | None = None
    description: str | None = None
    file: str                                        # path in the AIP, relative to the bag's data/
    extra: str | None = None
    aip_id: str = Field(foreign_key="aip.id", index=True)


class AipFileRecord(CatalogModel, table=True):
    __tablename__ = "aip_file"
    id: int | None = Field(default=None, primary_key=True)
    aip_id: str = Field(foreign_key="aip.id", index=True)
    path: str                                        # relative to the bag's data/
    role: str
    size: int
    sha256: str
    sha512: str
    mime: str
    puid: str | None = None
    format_name: str | None = None
    format_version: str | None = None
    original_name: str | None = None
    doc_code: str | None = Field(default=None, index=True)
    pages: int | None = None
    derived_from: str | None = None                  # a derivative (OCR PDF/A): the original it was made from


class Replica(CatalogModel, table=True):
    __tablename__ = "replica"
    __table_args__ = (UniqueConstraint("aip_id", "tier", name="uq_replica_aip_tier"),)
    id: int | None = Field(default=None, primary_key=True)
    aip_id: str = Field(foreign_key="aip.id", index=True)
    tier: str = Field(index=True)
    location: str                                    # path or URL on that tier
    status: str = REPLICA_PENDING
    verified_at: str | None = None                   # ISO 8601 with offset
    detail: str | None = None                        # why the last copy or check failed


class EventRecord(CatalogModel, table=True):
    """One PREMIS event in the hash-chained log. `seq` is given by the chain (chain_head.seq + 1), never by a
    database sequence, so that a gap always means a removed event (a PostgreSQL sequence leaves gaps on
    rollback)."""

    __tablename__ = "event"
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    id: str = Field(unique=True)                     # "uuid-…"
    aip_id: str | None = Field(default=None, index=True)  # no foreign key: the log must accept any event
    type: str
    datetime: str
    outcome: str
    detail: str = ""
    agents: str = "[]"                               # JSON: [[agent id, role], …]
    objects: str = "[]"                              # JSON: [path or id, …]
    prev_hash: str
    hash: str


class ChainHead(CatalogModel, table=True):
    """One row (id=1): the last event's seq and hash. Appenders lock it (SELECT … FOR UPDATE on PostgreSQL,
    BEGIN IMMEDIATE on SQLite) so appends are serialised; it also reveals events removed from the end."""

    __tablename__ = "chain_head"
    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    seq: int = 0
    hash: str = ZERO_HASH


class AgentRecord(CatalogModel, table=True):
    __tablename__ = "agent"
    id: str = Field(primary_key=True)
    name: str
    type: str
    note: str | None = None


class SignatureVerified(CatalogModel, table=True):
    """A detached signature once verified by openssl: the SHA-256 of the tag manifest and of the signature, and
    of the certificate it verified with. An audit that re-reads the same bytes (same digests) and still trusts
    that certificate need not fork openssl again: identical inputs cannot verify differently."""

    __tablename__ = "signature_verified"
    __table_args__ = (UniqueConstraint("tagmanifest_sha256", "signature_sha256", name="uq_signature_verified"),)
    id: int | None = Field(default=None, primary_key=True)
    tagmanifest_sha256: str = Field(index=True)
    signature_sha256: str
    cert_sha256: str
    verified_at: str


# --- Access: users, their fonds grants and access requests. Unlike every table above, these rows are not in any
# AIP and cannot be rebuilt from a tier: the events that record each change are in the hash-chained log.
USER_ROLES = ("admin", "archivist", "auditor", "reader")
REQUEST_PENDING, REQUEST_APPROVED, REQUEST_REFUSED, REQUEST_DENIED = "pending", "approved", "refused", "denied"


class UserAccount(CatalogModel, table=True):
    __tablename__ = "user_account"
    name: str = Field(primary_key=True)              # sign-in name: lower-case ASCII, e.g. "nguyenvana"
    full_name: str = ""                              # as it is written, e.g. "Nguyễn Văn A"
    role: str                                        # one of USER_ROLES
    password_hash: str | None = None                 # argon2id (PHC string); None: cannot sign in yet
    disabled: bool = False
    created: str
    updated: str


class UserGrant(CatalogModel, table=True):
    """A fonds a user may use: it limits an archivist or reader to the fonds granted, and it is what lets a
    reader ask for records of that fonds that are secret."""

    __tablename__ = "user_grant"
    __table_args__ = (UniqueConstraint("user_name", "fonds_code", name="uq_user_grant"),)
    id: int | None = Field(default=None, primary_key=True)
    user_name: str = Field(foreign_key="user_account.name", index=True)
    fonds_code: str
    granted_at: str
    granted_by: str


class ApiToken(CatalogModel, table=True):
    """A token for the web application's JSON API (`Authorization: Bearer …`): only its SHA-256 is kept."""

    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    user_name: str = Field(foreign_key="user_account.name", index=True)
    token_sha256: str = Field(unique=True)
    label: str = ""
    created: str
    revoked: bool = False


class AccessRequest(CatalogModel, table=True):
    __tablename__ = "access_request"
    id: str = Field(primary_key=True)                # "YC-20261201-7F3A9C": short enough to read out and type
    user_name: str = Field(index=True)
    target_kind: str                                 # "document" | "dossier"
    target_code: str                                 # docCode or fileCode as asked
    file_code: str = Field(index=True)
    fonds_code: str
    aip_id: str
    aip_version: int
    level: str                                       # access class when asked: open | conditional | secret | closed
    purpose: str
    status: str = Field(index=True)                  # pending | approved | refused | denied
    reason_code: str | None = None                   # the finding code of a refusal
    reason_vi: str | None = None
    reason_en: str | None = None
    created: str
    days: int                                        # how long the request, then the approval, stays valid
    expires: str                                     # ISO 8601 with offset
    decided_by: str | None = None
    decided_at: str | None = None
    decision_reason: str | None = None
    copies: int = 0                                  # access copies made for it
