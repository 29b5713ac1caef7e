"""The catalog: an index of AIPs, their files, replicas and the hash-chained event log.

    cat = Catalog.open("sqlite:////srv/preserve/catalog.sqlite")   # or postgresql+psycopg://…
    cat.register_aip(aip, "aips/ab/cd/<uuid>/v1", "primary", tagmanifest_sha256, verified_at)
    cat.get_aip(aip.id); cat.events(aip.id); cat.verify_chain()

Every write is one transaction. Every transaction that appends events locks the chain head first, so on
PostgreSQL writers that append are serialised (on SQLite every writer is, by BEGIN IMMEDIATE).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import select

from preserve.aip.model import Aip, Event
from preserve.errors import CatalogError, UsageError

from preserve.search import index as search_index

from . import chain, records
from .db import is_sqlite, make_engine, read_session, write_session
from .models import (
    CATALOG_METADATA,
    REPLICA_DAMAGED,
    REPLICA_MISSING,
    REPLICA_OK,
    REPLICA_STATUSES,
    AgentRecord,
    AipFileRecord,
    AipRecord,
    Document,
    Dossier,
    EventRecord,
    Fonds,
    Replica,
    SignatureVerified,
)

_IN_BATCH = 500  # values per IN (…) query; SQLite allows far more, but keep statements small


@contextmanager
def _db_errors(what: str) -> Iterator[None]:
    """Database failures become CatalogError (the transaction has already been rolled back)."""
    try:
        yield
    except IntegrityError as exc:
        raise CatalogError(f"{what}: the catalog refused the change ({exc.orig})",
                           hint="nothing was written; the record may already be in the catalog") from exc
    except OperationalError as exc:
        raise CatalogError(f"{what}: the catalog database cannot be used ({exc.orig})",
                           hint="check the catalog URL, that the database is reachable and not locked") from exc


class Catalog:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)

    @classmethod
    def open(cls, url: str) -> Catalog:
        """Open the catalog at `url`, creating its tables if they are missing."""
        catalog = cls(url)
        catalog.create_all()
        return catalog

    def create_all(self) -> None:
        """Create the tables and the chain head if missing (idempotent)."""
        with _db_errors("create the catalog tables"):
            CATALOG_METADATA.create_all(self.engine)
            _add_missing_columns(self.engine)
            search_index.ensure_schema(self.engine)
            self._backfill_search()
            with write_session(self.engine) as s:
                chain.ensure_head(s)

    def _backfill_search(self) -> int:
        """A catalog made before search existed: index its documents' metadata once (their AIPs hold no OCR
        text). Returns how many documents were indexed."""
        from sqlalchemy import text

        with write_session(self.engine) as s:
            if s.execute(text("SELECT 1 FROM search_doc LIMIT 1")).first() is not None:
                return 0
            if s.exec(select(Document.doc_code).limit(1)).first() is None:
                return 0
            n = 0
            for dossier in s.exec(select(Dossier)).all():
                aip = s.get(AipRecord, dossier.aip_id)
                docs = s.exec(select(Document).where(Document.file_code == dossier.file_code)
                              .order_by(Document.doc_ordinal)).all()
                shell = Aip(dossier.aip_id, aip.version if aip else 1, aip.created if aip else "", "",
                            records.dossier_dict(dossier, None), [records.document_dict(d) for d in docs])
                search_index.index_documents(s, records.search_docs(shell))
                n += len(docs)
            return n

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def dialect(self) -> str:
        return "sqlite" if is_sqlite(self.engine) else self.engine.dialect.name

    # --- writes -------------------------------------------------------------------------------------------

    def register_aip(self, aip: Aip, path: str, tier: str, tagmanifest_sha256: str, verified_at: str | None) -> None:
        """Index a stored AIP in one transaction: fonds (upsert), dossier, documents, the AIP, its files,
        agents (upsert), the replica on `tier` (status ok, verified at `verified_at`) and the AIP's events
        appended to the chain. Either all rows appear or none (CatalogError).

        A dossier already in the catalog is replaced only by a higher version of its AIP; its documents are
        then replaced too, and the older version's AIP, file and replica rows stay."""
        file_code = chain.nfc(aip.file_code)
        with _db_errors(f"register AIP {aip.id} (dossier {file_code})"), write_session(self.engine) as s:
            head = chain.lock_head(s)
            current = s.get(Dossier, file_code)
            if current is not None:
                held = s.get(AipRecord, current.aip_id)
                held_version = held.version if held else 0
                if int(aip.version) <= held_version:
                    raise CatalogError(
                        f"dossier {file_code} is already in AIP {current.aip_id} version {held_version}",
                        hint="a correction must be registered as a higher version")
            self._upsert_fonds(s, aip)
            self._upsert_agents(s, aip)
            s.add(records.aip_row(aip, path, tagmanifest_sha256))
            s.flush()
            dossier = records.dossier_row(aip)
            if current is not None:
                s.exec(delete(Document).where(Document.file_code == file_code))
                for key, value in dossier.model_dump().items():
                    setattr(current, key, value)
                s.add(current)
            else:
                s.add(dossier)
            s.flush()
            s.add_all(records.document_rows(aip))
            s.add_all(records.file_rows(aip))
            if current is not None:
                search_index.remove_dossier(s, file_code)
            search_index.index_documents(s, records.search_docs(aip))
            s.add(Replica(aip_id=aip.id, tier=tier, location=path, status=REPLICA_OK, verified_at=verified_at))
            s.flush()
            chain.append(s, head, aip.events, aip.id)

    @staticmethod
    def _upsert_fonds(s: Any, aip: Aip) -> None:
        code = chain.nfc(str(aip.dossier["fondsCode"]))
        name = chain.nfc(str(aip.dossier.get("fondsName") or ""))
        fonds = s.get(Fonds, code)
        if fonds is None:
            s.add(Fonds(code=code, name=name))
        elif name and fonds.name != name:
            fonds.name = name
            s.add(fonds)
        s.flush()

    @staticmethod
    def _upsert_agents(s: Any, aip: Aip) -> None:
        for agent in aip.agents:
            row = s.get(AgentRecord, agent.id)
            values = {"name": chain.nfc(agent.name), "type": agent.type, "note": chain.nfc(agent.note)}
            if row is None:
                s.add(AgentRecord(id=agent.id, **values))
            else:
                for key, value in values.items():
                    setattr(row, key, value)
                s.add(row)
        s.flush()

    def restore_latest(self, fonds: dict[str, str], agents: list) -> None:
        """Fonds names and agent rows as the newest AIP gives them: a rebuild registers AIPs in path order, while
        ingest left the values of the last AIP ingested."""
        with _db_errors("set fonds names and agents"), write_session(self.engine) as s:
            for code, name in fonds.items():
                row = s.get(Fonds, code)
                if row is not None and name and row.name != name:
                    row.name = name
                    s.add(row)
            self._upsert_agents(s, Aip(id="", version=0, created="", profile="", dossier={}, documents=[],
                                       agents=list(agents)))

    def append_event(self, event: Event, aip_id: str | None) -> None:
        """Append one event outside an ingest (e.g. a refused batch), in its own transaction."""
        with _db_errors(f"record event {event.id}"), write_session(self.engine) as s:
            chain.append(s, chain.lock_head(s), [event], aip_id)

    def set_replica(self, aip_id: str, tier: str, location: str, status: str, verified_at: str | None = None,
                    events: Iterable[Event] = (), detail: str | None = None) -> None:
        """Create or update the replica of an AIP on a tier, and append the events that tell why (replication,
        fixity check, repair), in one transaction. `verified_at` None keeps the previous value."""
        if status not in REPLICA_STATUSES:
            raise CatalogError(f"unknown replica status {status!r}", hint=f"one of {', '.join(REPLICA_STATUSES)}")
        with _db_errors(f"record the replica of {aip_id} on {tier}"), write_session(self.engine) as s:
            head = chain.lock_head(s)
            if s.get(AipRecord, aip_id) is None:
                raise CatalogError(f"AIP {aip_id} is not in the catalog")
            row = s.exec(select(Replica).where(Replica.aip_id == aip_id, Replica.tier == tier)).first()
            if row is None:
                row = Replica(aip_id=aip_id, tier=tier, location=location, status=status, verified_at=verified_at,
                              detail=detail)
            else:
                row.location, row.status, row.detail = location, status, detail
                if verified_at is not None:
                    row.verified_at = verified_at
            s.add(row)
            s.flush()
            chain.append(s, head, events, aip_id)

    # --- reads --------------------------------------------------------------------------------------------

    def find_dossier_aip(self, file_code: str) -> str | None:
        """The id of the AIP (latest version) holding this dossier, or None."""
        with read_session(self.engine) as s:
            row = s.get(Dossier, chain.nfc(file_code))
            return row.aip_id if row else None

    def existing_file_codes(self, file_codes: Iterable[str]) -> dict[str, str]:
        """fileCode -> AIP id for those of `file_codes` already in the catalog (one query per 500 codes)."""
        codes = sorted({chain.nfc(str(c)) for c in file_codes})
        found: dict[str, str] = {}
        with read_session(self.engine) as s:
            for i in range(0, len(codes), _IN_BATCH):
                batch = codes[i:i + _IN_BATCH]
                for code, aip_id in s.exec(select(Dossier.file_code, Dossier.aip_id)
                                           .where(Dossier.file_code.in_(batch))):  # type: ignore[attr-defined]
                    found[code] = aip_id
        return found

    def list_aips(self) -> list[dict[str, Any]]:
        """Every AIP version: id, fileCode, version, documents, pages, bytes, created; by created."""
        with read_session(self.engine) as s:
            rows = s.exec(select(AipRecord).order_by(AipRecord.created, AipRecord.file_code, AipRecord.version))
            return [records.summary_dict(r) for r in rows]

    def get_aip(self, aip_id: str) -> dict[str, Any] | None:
        """One AIP version: the list_aips fields, with "documents" the list of documents (their number is in
        "documentCount"), plus path, status, tagmanifest_sha256, current, dossier, files, replicas, events;
        None if unknown.

        dossier and documents are given by profile key as in `Aip.dossier` (a document's "file" is its path in
        the AIP). The catalog keeps them for the latest version of a dossier only: for an older version
        ("current": False) they describe the latest one; the AIP itself holds its own."""
        with read_session(self.engine) as s:
            aip = s.get(AipRecord, aip_id)
            if aip is None:
                return None
            out = records.summary_dict(aip)
            dossier = s.get(Dossier, aip.file_code)
            out.update(documentCount=aip.documents, path=aip.path, status=aip.status,
                       tagmanifest_sha256=aip.tagmanifest_sha256,
                       current=dossier is not None and dossier.aip_id == aip.id)
            fonds = s.get(Fonds, dossier.fonds_code) if dossier else None
            out["dossier"] = records.dossier_dict(dossier, fonds.name if fonds else None) if dossier else None
            docs = s.exec(select(Document).where(Document.file_code == aip.file_code).order_by(Document.doc_ordinal))
            out["documents"] = [records.document_dict(d) for d in docs]
            files = s.exec(select(AipFileRecord).where(AipFileRecord.aip_id == aip_id).order_by(AipFileRecord.id))
            out["files"] = [records.file_dict(f) for f in files]
            out["replicas"] = [_replica_dict(r) for r in
                               s.exec(select(Replica).where(Replica.aip_id == aip_id).order_by(Replica.tier))]
            events = s.exec(select(EventRecord).where(EventRecord.aip_id == aip_id).order_by(EventRecord.seq))
            out["events"] = [chain.row_dict(e) for e in events]
            return out

    def replicas(self, aip_id: str | None = None, tier: str | None = None,
                 statuses: Iterable[str] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Replica rows, optionally of one AIP, one tier and/or some statuses (at most `limit`):
        {aip, tier, path, status, last_verified}."""
        with read_session(self.engine) as s:
            query = select(Replica)
            if aip_id is not None:
                query = query.where(Replica.aip_id == aip_id)
            if tier is not None:
                query = query.where(Replica.tier == tier)
            if statuses is not None:
                query = query.where(Replica.status.in_(list(statuses)))
            query = query.order_by(Replica.aip_id, Replica.tier)
            if limit is not None:
                query = query.limit(limit)
            return [{"aip": r.aip_id, **_replica_dict(r)} for r in s.exec(query)]

    def require_aips(self, aip_ids: Iterable[str] | None) -> None:
        """Refuse (UsageError, exit 2) AIP ids the catalog does not know; None names no AIP."""
        if aip_ids is None:
            return
        wanted = sorted(set(aip_ids))
        with read_session(self.engine) as s:
            known = set(s.exec(select(AipRecord.id).where(AipRecord.id.in_(wanted))))
        unknown = [a for a in wanted if a not in known]
        if unknown:
            raise UsageError(f"No AIP with id {', '.join(unknown)}.", hint="List AIPs with `preserve aips list`.")

    def aip_row(self, aip_id: str) -> dict[str, Any] | None:
        """The AIP row alone (no files or events): {id, fileCode, version, path, tagmanifest_sha256}; or None."""
        with read_session(self.engine) as s:
            row = s.get(AipRecord, aip_id)
            return None if row is None else {"id": row.id, "fileCode": row.file_code, "version": row.version,
                                             "path": row.path, "tagmanifest_sha256": row.tagmanifest_sha256}

    def file_digests(self, aip_id: str) -> dict[str, dict[str, Any]]:
        """The payload files of one AIP version as the catalog recorded them: {"data/<path>": {size, sha256,
        sha512}} (what an audit compares a replica with, besides the bag's own manifests)."""
        with read_session(self.engine) as s:
            rows = s.exec(select(AipFileRecord.path, AipFileRecord.size, AipFileRecord.sha256, AipFileRecord.sha512)
                          .where(AipFileRecord.aip_id == aip_id))
            return {f"data/{p}": {"size": size, "sha256": h256, "sha512": h512} for p, size, h256, h512 in rows}

    def signature_verified_with(self, tagmanifest_sha256: str, signature_sha256: str) -> str | None:
        """The SHA-256 of the certificate this exact (tag manifest, signature) pair once verified with, or None."""
        with read_session(self.engine) as s:
            row = s.exec(select(SignatureVerified).where(
                SignatureVerified.tagmanifest_sha256 == tagmanifest_sha256,
                SignatureVerified.signature_sha256 == signature_sha256)).first()
            return row.cert_sha256 if row else None

    def remember_signature(self, tagmanifest_sha256: str, signature_sha256: str, cert_sha256: str,
                           when: str) -> None:
        with _db_errors("record a verified signature"), write_session(self.engine) as s:
            exists = s.exec(select(SignatureVerified).where(
                SignatureVerified.tagmanifest_sha256 == tagmanifest_sha256,
                SignatureVerified.signature_sha256 == signature_sha256)).first()
            if exists is None:
                s.add(SignatureVerified(tagmanifest_sha256=tagmanifest_sha256, signature_sha256=signature_sha256,
                                        cert_sha256=cert_sha256, verified_at=when))

    def audit_candidates(self, tiers: Iterable[str], aip_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Replica rows on `tiers` that hold (or held) a copy — status ok, damaged or missing — with what an
        audit needs: {aip, fileCode, tier, rel, tagmanifest_sha256, status, last_verified}; never verified
        first, then oldest verification first."""
        wanted = None if aip_ids is None else set(aip_ids)
        with read_session(self.engine) as s:
            query = (select(Replica, AipRecord.file_code, AipRecord.path, AipRecord.tagmanifest_sha256)
                     .join(AipRecord, AipRecord.id == Replica.aip_id)
                     .where(Replica.tier.in_(list(tiers)),
                            Replica.status.in_([REPLICA_OK, REPLICA_DAMAGED, REPLICA_MISSING])))
            if wanted is not None and len(wanted) <= _IN_BATCH:  # a few AIPs (a copy, a repair): by index
                query = query.where(Replica.aip_id.in_(sorted(wanted)))  # type: ignore[attr-defined]
            rows = s.exec(query)
            out = [{"aip": r.aip_id, "fileCode": fc, "tier": r.tier, "rel": path, "tagmanifest_sha256": tm,
                    "status": r.status, "last_verified": r.verified_at}
                   for r, fc, path, tm in rows if wanted is None or r.aip_id in wanted]
        out.sort(key=lambda x: (x["last_verified"] is not None, x["last_verified"] or "", x["tier"], x["aip"]))
        return out

    def replication_state(self, aip_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every AIP version (or those named) with what replication needs: {id, fileCode, version, path, bytes,
        tagmanifest_sha256, replicas: {tier: status}}, by creation time."""
        wanted = None if aip_ids is None else set(aip_ids)
        with read_session(self.engine) as s:
            reps: dict[str, dict[str, str]] = {}
            for aip_id, tier, status in s.exec(select(Replica.aip_id, Replica.tier, Replica.status)):
                reps.setdefault(aip_id, {})[tier] = status
            out = []
            for a in s.exec(select(AipRecord).order_by(AipRecord.created, AipRecord.file_code, AipRecord.version)):
                if wanted is not None and a.id not in wanted:
                    continue
                out.append({"id": a.id, "fileCode": a.file_code, "version": a.version, "path": a.path,
                            "bytes": a.bytes, "tagmanifest_sha256": a.tagmanifest_sha256,
                            "replicas": reps.get(a.id, {})})
            return out

    def events(self, aip_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Events in chain order (all, or those of one AIP); with `limit`, the last `limit` of them."""
        with read_session(self.engine) as s:
            query = select(EventRecord)
            if aip_id is not None:
                query = query.where(EventRecord.aip_id == aip_id)
            if limit is not None:
                rows = list(s.exec(query.order_by(EventRecord.seq.desc()).limit(limit)))  # type: ignore[union-attr]
                rows.reverse()
            else:
                rows = list(s.exec(query.order_by(EventRecord.seq)))
            return [chain.row_dict(r) for r in rows]

    def iter_events(self, batch: int = 5000) -> Iterator[dict[str, Any]]:
        """Every event in chain order, read `batch` at a time (bounded memory for an export)."""
        last = 0
        while True:
            with read_session(self.engine) as s:
                rows = list(s.exec(select(EventRecord).where(EventRecord.seq > last)
                                   .order_by(EventRecord.seq).limit(batch)))
                out = [chain.row_dict(r) for r in rows]
            if not out:
                return
            yield from out
            last = out[-1]["seq"]

    def export_access(self) -> dict[str, list[dict[str, Any]]]:
        """Users, grants and access requests as plain rows (they are in no AIP: the off-site backup carries them)."""
        from .transfer import export_access

        return export_access(self.engine)

    def last_verified_by_tier(self) -> dict[str, str | None]:
        """tier -> the time the most recently verified replica on it was verified (None: never)."""
        with read_session(self.engine) as s:
            rows = s.exec(select(Replica.tier, func.max(Replica.verified_at)).group_by(Replica.tier)).all()
        return {tier: when for tier, when in rows}

    def search(self, query: str, **filters: Any) -> dict[str, Any]:
        """Full-text search of documents (preserve.search.index.search: fonds, type_code, date_from, date_to,
        visible, limit)."""
        with _db_errors("search the catalog"):
            return search_index.search(self.engine, query, **filters)

    def chain_head(self) -> dict[str, Any]:
        """The last event's seq and hash: anchor it elsewhere to make a rewrite of the whole log detectable."""
        with read_session(self.engine) as s:
            head = s.get(chain.ChainHead, chain.HEAD_ID)
            return {"seq": head.seq, "hash": head.hash} if head else {"seq": 0, "hash": chain.ZERO_HASH}

    def verify_chain(self) -> list[str]:
        """Problems in the event log (edited, removed or reordered events); empty list = intact."""
        with read_session(self.engine) as s:
            return chain.verify(s)

    def counts(self) -> dict[str, int]:
        """fonds, dossiers, documents, pages (current version of each dossier), aips (versions), files and
        bytes (payload bytes of every version)."""
        with read_session(self.engine) as s:
            def scalar(query: Any) -> int:
                return int(s.exec(query).one() or 0)

            return {
                "fonds": scalar(select(func.count()).select_from(Fonds)),
                "dossiers": scalar(select(func.count()).select_from(Dossier)),
                "documents": scalar(select(func.count()).select_from(Document)),
                "pages": scalar(select(func.coalesce(func.sum(AipRecord.pages), 0))
                                .join(Dossier, Dossier.aip_id == AipRecord.id)),
                "aips": scalar(select(func.count()).select_from(AipRecord)),
                "files": scalar(select(func.count()).select_from(AipFileRecord)),
                "bytes": scalar(select(func.coalesce(func.sum(AipRecord.bytes), 0))),
            }


def _replica_dict(row: Replica) -> dict[str, Any]:
    return {"tier": row.tier, "path": row.location, "status": row.status, "last_verified": row.verified_at,
            "detail": row.detail}


def _add_missing_columns(engine) -> list[str]:
    """Bring a catalog made by an earlier release up to date: add the nullable columns its tables lack (new
    columns are always nullable, so this is all an upgrade needs). Idempotent; returns what it added."""
    from sqlalchemy import inspect, text

    insp = inspect(engine)
    added = []
    for table in CATALOG_METADATA.sorted_tables:
        if not insp.has_table(table.name):
            continue
        have = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name in have or not col.nullable:
                continue
            ddl = col.type.compile(dialect=engine.dialect)
            with engine.begin() as conn:
                conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{col.name}" {ddl}'))
            added.append(f"{table.name}.{col.name}")
    return added
