"""What an AIP holds, as plain data. The builders (METS, PREMIS, descriptive XML) and the catalog read these.

Paths in `AipFile.path` are relative to the bag's `data/` directory, with forward slashes, e.g.
`representations/original/data/H36.1.12.001.pdf`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Roles of files inside an AIP
ROLE_ORIGINAL = "original"        # representations/original/data/* (the scans, preservation masters)
ROLE_DERIVATIVE = "derivative"    # representations/ocr/data/* (two-layer PDF/A made from an original by OCR)
ROLE_DESCRIPTIVE = "descriptive"  # metadata/descriptive/*
ROLE_PRESERVATION = "preservation"  # metadata/preservation/*
ROLE_SUBMISSION = "submission"    # submission/* (received workbook, validation report, received bag-info)
ROLE_PACKAGE = "package"          # METS.xml (added after METS is built: METS cannot list itself)


@dataclass
class AipFile:
    path: str                 # relative to data/, e.g. representations/original/data/X.001.pdf
    size: int
    sha256: str
    sha512: str
    role: str                 # one of the ROLE_* constants
    mime: str = "application/octet-stream"
    puid: str | None = None   # PRONOM id, e.g. fmt/18
    format_name: str | None = None
    format_version: str | None = None
    original_name: str | None = None  # path as received in the SIP
    doc_code: str | None = None       # the document this file represents (originals only)
    pages: int | None = None
    derived_from: str | None = None   # derivatives: the path of the original they were made from


SOFTWARE_AGENT_ID = "agent-software-preserve"
SOFTWARE_AGENT = (SOFTWARE_AGENT_ID, "executing program")  # (agent id, role) of events preserve itself performs


@dataclass
class Agent:
    id: str                   # e.g. "agent-software-preserve"
    name: str                 # e.g. "preserve 0.1.0"
    type: str                 # "software" | "person" | "organization"
    note: str | None = None   # software version, person's role, ...


@dataclass
class Event:
    id: str                   # "uuid-..."
    type: str                 # PREMIS event type (LoC vocabulary): ingestion, validation, format identification,
                              # message digest calculation, creation, replication, fixity check, ...
    datetime: str             # ISO 8601 with offset, e.g. 2026-11-25T11:30:00+07:00
    outcome: str              # success | failure | warning
    detail: str = ""
    agents: list[tuple[str, str]] = field(default_factory=list)  # (agent id, role: executing program / implementer / ...)
    objects: list[str] = field(default_factory=list)             # AipFile.path values, or the AIP id


@dataclass
class Aip:
    id: str                   # "uuid-<uuid4>" (E-ARK OBJID form)
    version: int
    created: str              # ISO 8601 with offset
    profile: str              # metadata profile name, e.g. vn-party-archive
    # HoSo fields by key. Values are stripped strings as received, except: code fields (maintenance, mode,
    # format; typeName and secrecy for documents) hold the resolved code ("01"; text via
    # preserve.sip.profile.load_profile().code_text(list, code)); int fields hold ints; date fields keep the
    # received text and add "<key>_iso" with the normalised form (yyyy, yyyy-mm or yyyy-mm-dd).
    dossier: dict[str, Any]
    documents: list[dict[str, Any]]  # TaiLieu rows by key, in docOrdinal order
    files: list[AipFile] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)
    organisation: str = ""    # the archive holding the AIP (agent of type organization)
    bag_info: dict[str, str] = field(default_factory=dict)  # bag-info of a received BagIt bag, if any
    texts: dict[str, str] = field(default_factory=dict)  # docCode -> text of its OCR derivative (NFC), for search

    @property
    def file_code(self) -> str:
        return str(self.dossier["fileCode"])

    @property
    def uuid(self) -> str:
        return self.id.removeprefix("uuid-")

    def originals(self) -> list[AipFile]:
        return [f for f in self.files if f.role == ROLE_ORIGINAL]

    def derivatives(self) -> list[AipFile]:
        return [f for f in self.files if f.role == ROLE_DERIVATIVE]
