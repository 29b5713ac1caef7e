"""The façade: one object that offers every operation. The CLI (and later the scheduler and web app) are thin
adapters over it; tests drive it directly."""

from __future__ import annotations

import os
import secrets
import shutil
import uuid
import subprocess
from pathlib import Path
from typing import Any

import tomli_w

from .config import CONFIG_NAME, DEFAULT_ORGANISATION, Settings, default_settings
from .errors import RepositoryNotFound, UsageError
from .progress import NullProgress, Progress

LAYOUT_DIRS = ("tiers/primary", "tiers/secondary", "offsite", "staging", "quarantine", "keys")


class Repository:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = settings.root
        self._catalog = None
        self._policy = None
        self._tiers: dict[str, Any] = {}

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def init(cls, path: Path, organisation: str | None = None, *, offsite: bool = True) -> "Repository":
        """Create a repository with the default layout, keys, catalog and (unless `offsite` is False) the local
        restic off-site repository. Nothing is written when restic is needed and absent."""
        from .keys import generate_keys

        root = Path(path).resolve()
        if (root / CONFIG_NAME).exists():
            raise UsageError(f"A repository already exists at {root}.",
                             hint="Use it as it is (--repo), or choose another folder for a new one.")
        if root.exists() and any(p for p in root.iterdir() if p.name not in (".", "..")):
            raise UsageError(f"{root} exists and is not empty.", hint="Choose an empty or new folder.")
        if offsite and shutil.which("restic") is None:
            _restic_init(root / "offsite", root / "keys" / "restic-password")  # raises: says what to install
        for d in LAYOUT_DIRS:
            if d != "offsite" or offsite:
                (root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(root / "keys", 0o700)
        data = default_settings(organisation or DEFAULT_ORGANISATION, offsite=offsite)
        settings = Settings(root, data)
        from .storage.local import write_marker

        for name, spec in data["tiers"].items():
            if spec["kind"] == "local":
                write_marker(name, settings.path(spec["path"]))
        generate_keys(root / "keys", settings.organisation)
        pw = root / "keys" / "restic-password"
        fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        if offsite:
            _restic_init(root / "offsite", pw)
        (root / CONFIG_NAME).write_text(tomli_w.dumps(data), encoding="utf-8")  # last: marks the repo complete
        repo = cls(settings)
        repo.catalog.create_all()
        return repo

    @classmethod
    def open(cls, path: Path | str) -> "Repository":
        repo = cls(Settings.load(Path(path)))
        repo._recover_if_needed()
        return repo

    def _recover_if_needed(self) -> None:
        """An ingest killed between publishing and registering leaves a journal: undo it before anything reads
        the repository, unless another ingest holds the lock (it recovers itself)."""
        from .errors import StorageError
        from .atomic import JOURNAL_SUFFIX

        staging = self.settings.staging
        if staging.is_dir() and any(staging.glob(f"*{JOURNAL_SUFFIX}")):
            try:
                self.recover()
            except (UsageError, StorageError):
                pass  # an ingest is running, or the tier is unreachable: the next ingest recovers

    @property
    def catalog(self):
        if self._catalog is None:
            from .catalog import Catalog

            self._catalog = Catalog(self.settings.catalog_url)
            self._catalog.create_all()
        return self._catalog

    def close(self) -> None:
        for t in self._tiers.values():
            t.close()
        self._tiers.clear()
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

    def __enter__(self) -> "Repository":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ validate / ingest
    def validate(self, sip: Path, *, strict: bool = False, progress: Progress | None = None):
        """Validate a batch against this repository (identifiers already stored count as findings)."""
        return validate_sip(sip, strict=strict, existing=self.catalog.existing_file_codes,
                            scratch=self.settings.staging, progress=progress, limits=self._limits())

    def ingest(self, sip: Path, *, strict: bool | None = None, officer: str | None = None,
               progress: Progress | None = None, replicate: bool = True, ocr: bool | None = None):
        """Validate and store a batch, then copy the new AIPs to the policy's other tiers (a failed copy leaves
        the AIP stored and under-replicated: see `replicate`). `ocr` None: [ingest] ocr of preserve.toml."""
        from .ingest import check_tier, ingest_lock, ingest_validated, recover
        from .keys import load_signer

        signer = load_signer(self.settings.keys_dir)
        if replicate:
            self.policy()  # a broken storage policy stops the ingest before anything is stored
        if strict is None:
            strict = bool(self.settings.data["ingest"].get("strict", False))
        if ocr is None:
            ocr = self.settings.ocr
        if ocr:
            self.settings.ocr_page_seconds  # noqa: B018 - a bad setting stops the ingest before anything is done
        with ingest_lock(self.settings.staging):
            recover(self.settings.staging, check_tier(self.settings.tier_path(self.settings.primary_tier)), self.catalog)
            validation = validate_sip(sip, strict=strict, existing=self.catalog.existing_file_codes,
                                      scratch=self.settings.staging, progress=progress, limits=self._limits(),
                                      verify_checksums=False)
            try:
                result = ingest_validated(validation, settings=self.settings, catalog=self.catalog, signer=signer,
                                          officer=officer or self.settings.officer, progress=progress, ocr=ocr)
            finally:
                validation.package.close()
            if result.aips and replicate:
                result.replication = self.replicate([a["id"] for a in result.aips], progress=progress, wait=True)
            return result

    def recover(self) -> list[str]:
        from .ingest import check_tier, ingest_lock, recover

        with ingest_lock(self.settings.staging):
            return recover(self.settings.staging, check_tier(self.settings.tier_path(self.settings.primary_tier)),
                           self.catalog)

    def _limits(self):
        from .sip.safety import ZipLimits

        lim = self.settings.data.get("limits", {})
        return ZipLimits(max_total_bytes=int(lim.get("zip_max_bytes", 200 * 2**30)),
                         max_ratio=float(lim.get("zip_max_ratio", 200)),
                         max_entries=int(lim.get("zip_max_entries", 200000)))

    # ------------------------------------------------------------------ AIPs and events
    def list_aips(self) -> list[dict[str, Any]]:
        return self.catalog.list_aips()

    def find_aip(self, aip_id: str) -> dict[str, Any] | None:
        """As show_aip, or None when there is no such AIP."""
        return self.catalog.get_aip(aip_id)

    def counts(self) -> dict[str, int]:
        """fonds, dossiers, documents, pages, aips, files, bytes held (the catalog's counts)."""
        return self.catalog.counts()

    def last_verified_by_tier(self) -> dict[str, str | None]:
        """tier -> when its most recently verified replica was verified."""
        return self.catalog.last_verified_by_tier()

    def show_aip(self, aip_id: str) -> dict[str, Any]:
        info = self.catalog.get_aip(aip_id)
        if info is None:
            raise UsageError(f"No AIP with id {aip_id}.", hint="List AIPs with `preserve aips list`.")
        return info

    def events(self, aip_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        return self.catalog.events(aip_id, limit)

    def aip_dir(self, aip_id: str, tier: str | None = None) -> Path:
        info = self.show_aip(aip_id)
        return self.settings.tier_path(tier or self.settings.primary_tier) / info["path"]

    # ------------------------------------------------------------------ storage
    def policy(self):
        """The storage policy named in preserve.toml ([policy] name), validated; ConfigError listing the
        findings when it has errors."""
        if self._policy is None:
            self._policy = self.load_policy()[0]
        return self._policy

    def load_policy(self, name: str | None = None):
        """(policy, findings): the findings of loading and validating it; raises ConfigError on errors."""
        from .errors import ConfigError
        from .policy import load_policy, shipped_policies_dir

        name = name or (self.settings.data.get("policy") or {}).get("name") or "default"
        policy, findings = load_policy(name, self.settings.tiers,
                                       [self.root / "storage_policies", shipped_policies_dir()])
        errors = [f for f in findings if f.is_error]
        if policy is None or errors:
            lines = "; ".join(f"{f.code}: {f.message_en}" for f in errors) or "unknown error"
            raise ConfigError(f"The storage policy '{name}' cannot be used: {lines}",
                              hint="Fix the policy YAML (storage_policies/) or the [tiers] of preserve.toml; "
                                   "`preserve policy check` lists every finding.")
        return policy, findings

    def tier(self, name: str):
        """The storage tier declared as [tiers.NAME] in preserve.toml (opened once per Repository)."""
        from .errors import ConfigError
        from .storage import open_tier

        if name not in self._tiers:
            spec = self.settings.tiers.get(name)
            if spec is None:
                raise ConfigError(f"No tier named '{name}' in preserve.toml.",
                                  hint=f"Declared tiers: {', '.join(self.settings.tiers) or 'none'}.")
            self._tiers[name] = open_tier(name, spec, self.root)
        return self._tiers[name]

    def init_tier(self, name: str) -> dict[str, Any]:
        """Prepare a new, empty tier for use (folder and marker, or `restic init`); idempotent."""
        tier = self.tier(name)
        setup = getattr(tier, "initialise", None)
        if setup is None:
            raise UsageError(f"Tier '{name}' (kind {tier.kind}) is set up outside preserve.",
                             hint="Create its base folder or bucket on the server, then run `preserve tiers status`.")
        setup()
        tier.check()
        return {"tier": name, "kind": tier.kind, "location": tier.location, "missing": self._reconcile_tier(name)}

    def _reconcile_tier(self, name: str) -> int:
        """The copies the catalog holds as good on a tier just set up, that are not on it (a disk replaced, an
        off-site repository started anew): marked missing, so that `preserve replicate` writes them again."""
        from .aip.model import SOFTWARE_AGENT, Event

        tier = self.tier(name)
        held = tier.aip_paths()
        gone = 0
        for r in self.catalog.replicas(tier=name):
            row = self.catalog.aip_row(r["aip"])
            if r["status"] != "ok" or row is None or row["path"] in held:
                continue
            detail = (f"tier '{name}' was set up again (preserve tiers init) and does not hold this copy: marked "
                      "missing, for preserve replicate to write it again")
            ev = Event(f"uuid-{uuid.uuid4()}", "fixity check", self.now(), "failure", detail, [SOFTWARE_AGENT],
                       [r["aip"]])
            self.catalog.set_replica(r["aip"], name, r["path"], "missing", None, [ev], detail=detail)
            gone += 1
        return gone

    def tiers(self) -> dict[str, Any]:
        return {name: self.tier(name) for name in self.settings.tiers}

    def alerter(self):
        from .alerts import Alerter

        return Alerter.for_settings(self.settings)

    def replicate(self, aip_ids: list[str] | None = None, tier: str | None = None, *,
                  progress: Progress | None = None, wait: bool = False):
        """Copy every AIP (or those named) to each copy tier of the policy (or only `tier`) that lacks a verified
        copy; read each copy back. Idempotent. Returns a ReplicationResult."""
        from .clock import now_iso
        from .replication import Replicator, replication_lock

        policy = self.policy()
        with replication_lock(self.settings.staging, wait=wait):
            rep = Replicator(catalog=self.catalog, policy=policy, tiers=self.tiers(), alerter=self.alerter(),
                             now=lambda: now_iso(self.settings.timezone), scratch=self.settings.staging,
                             progress=progress)
            return rep.run(aip_ids, tier)

    def trusted_certs(self) -> list:
        """The repository's signing certificates, current and retired (signing-cert.pem, signing-cert.pem.*)."""
        from cryptography import x509

        certs = []
        cert = self.settings.signing_cert
        for p in sorted(cert.parent.glob(cert.name + "*")):
            try:
                certs.extend(x509.load_pem_x509_certificates(p.read_bytes()))
            except (OSError, ValueError):
                continue
        return certs

    def audit(self, tier: str | None = None, aip_ids: list[str] | None = None, *, due: bool = True,
              time_limit: float | None = None, progress: Progress | None = None):
        """Re-read and verify replicas (the due ones, or all), record a fixity event per replica, update their
        status, alert on damage and on unreachable tiers; on a restic tier, also check the next part of its
        packs. Returns an AuditResult."""
        from .errors import StorageError

        policy = self.policy()
        result = self._auditor(progress).run(tier, aip_ids, due=due, time_limit=time_limit)
        down = {u["tier"] for u in result.unreachable}
        audited = {a.tier for a in result.audits}  # the pack check goes with AIP audits of the restic tier;
        restic = [t for t in policy.copy_tiers if self.tier(t).kind == "restic" and t not in down   # its own
                  and (tier is None or t == tier) and t in audited]                                # cadence: offsite-check
        if restic and aip_ids is None and not result.stopped_early:
            try:
                result.offsite_checks = self.offsite_check()["checks"]
            except StorageError as e:
                for t in restic:
                    result.unreachable.append({"tier": t, "reason": str(e).split("\n")[0]})
        return result

    def signature_checker(self):
        """verify(tag manifest bytes, signature bytes) with this repository's trusted certificates, remembered in
        the catalog as an audit does (restore, rebuild and drills judge copies with it)."""
        return self._auditor().verify_signature

    def _auditor(self, progress: Progress | None = None):
        from .fixity.audit import Auditor
        from .clock import now_iso

        return Auditor(catalog=self.catalog, policy=self.policy(), tiers=self.tiers(), alerter=self.alerter(),
                       now=lambda: now_iso(self.settings.timezone), trusted_certs=self.trusted_certs(),
                       state_dir=self.root / "state", progress=progress)

    def repair(self, aip_ids: list[str] | None = None, tier: str | None = None):
        """Replace every replica the latest audits found damaged or missing (or those named) from a copy verified
        in the same run; verify the result. Returns a RepairResult."""
        from .fixity.repair import Repairer

        return Repairer(self._auditor(), self.settings.staging).run(aip_ids, tier)

    def tiers_status(self) -> list[dict[str, Any]]:
        from .storagestatus import tiers_status

        return tiers_status(self.tiers(), self.policy(), self.catalog, self.alerter())

    def offsite_backup(self, progress: Progress | None = None) -> dict[str, Any]:
        """Incremental backup to the restic tier(s): AIPs it lacks (verified from the snapshot) and the event log."""
        from .offsite import backup

        return backup(self, progress)

    def offsite_check(self, subset: str | None = None) -> dict[str, Any]:
        """`restic check --read-data-subset`, rotating through the policy's parts when `subset` is None."""
        from .offsite import check

        return check(self, subset)

    # ------------------------------------------------------------------ recovery
    def restore(self, source: str, aip_ids: list[str] | None = None, *, into: str | None = None,
                to: Path | None = None, progress: Progress | None = None):
        """Restore every AIP on tier `source` (aip_ids None) or those named, into a tier or a plain folder, each
        verified before it counts (manifests, signature, catalog digests when known). Returns a RestoreResult."""
        from .recovery.restore import JOURNAL, Restorer
        from .replication import replication_lock

        if (into is None) == (to is None):
            raise UsageError("Nêu đúng một trong --into TẦNG hoặc --to THƯ_MỤC / Name exactly one of --into or --to.",
                             hint="--into TIER rebuilds a tier; --to DIR writes the AIPs into a plain folder.")
        if into == source:
            raise UsageError(f"--into {into} is the tier restored from.", hint="Restore into another tier.")
        # the source is not check()-ed first: listing what it holds reaches it anyway (on restic a check would
        # cost one more restic run, i.e. one more key derivation)
        src = self.tier(source)
        target = self._restore_target(into) if into is not None else None
        restorer = Restorer(src, self.catalog, self.signature_checker(), self.now, self.settings.staging,
                            self.root / JOURNAL, into=target, to=Path(to).resolve() if to is not None else None,
                            progress=progress)
        rels = restorer.select(aip_ids)
        if target is None:
            return restorer.run(rels)
        with replication_lock(self.settings.staging, wait=True):
            return restorer.run(rels)

    def _restore_target(self, name: str):
        """The tier to restore into, set up when it is gone: a local tier inside the repository whose folder was
        lost is created again; one outside it needs its parent (the mount) to be there."""
        from .storage.base import TierUnreachable

        tier = self.tier(name)
        try:
            tier.check()
        except TierUnreachable:
            setup = getattr(tier, "initialise", None)
            if setup is None:
                raise
            root = getattr(tier, "root_path", None)
            if root is not None and Path(root).resolve().is_relative_to(self.root):
                Path(root).parent.mkdir(parents=True, exist_ok=True)
            setup()
            tier.check()
        return tier

    def _lost_local_tiers(self) -> list[str]:
        """After a disaster, set up again the local copy tiers kept inside the repository whose folder is gone
        (a tier on a disk of its own must be mounted and `preserve tiers init`-ed by hand: an absent mount is
        never papered over). The names set up."""
        from .storage.base import TierUnreachable

        done = []
        for name in self.policy().copy_tiers:
            tier = self.tier(name)
            root = getattr(tier, "root_path", None)
            if root is None or Path(root).exists() or not Path(root).resolve().is_relative_to(self.root):
                continue
            try:
                self._restore_target(name)
                done.append(name)
            except TierUnreachable:
                continue
        return done

    def rebuild_catalog(self, source: str, eventlog: Path | None = None, progress: Progress | None = None):
        """Rebuild an empty catalog from the AIPs on tier `source`, the event log backup and the replicas found
        on the other tiers. Returns a RebuildResult."""
        from .recovery.rebuild import Rebuilder

        lost = self._lost_local_tiers() if self.catalog.counts()["aips"] == 0 else []
        result = Rebuilder(self, source, self.signature_checker(), progress).run(eventlog)
        result.tiers_set_up = lost
        return result

    def compare_catalog(self, other_url: str) -> dict[str, Any]:
        """What differs between the catalog at `other_url` (the reference, e.g. the one replaced) and this one."""
        from .catalog import Catalog
        from .catalog.compare import compare_catalogs

        other = Catalog(other_url)
        try:
            return compare_catalogs(other, self.catalog)
        finally:
            other.close()

    def drill(self, source: str | None = None, sample: int | None = None,
              progress: Progress | None = None) -> dict[str, Any]:
        """A restore drill: a random sample restored from the off-site tier (or `source`) into scratch space,
        verified, recorded and removed; an alert when it fails."""
        from .recovery.drill import drill

        return drill(self, source, sample, progress)

    # ------------------------------------------------------------------ access
    def now(self) -> str:
        from .clock import now_iso

        return now_iso(self.settings.timezone)

    def users(self, actor: str | None = None):
        """The user store; changes are recorded as made by the user `actor` (the web app's signed-in
        administrator), else by the operating-system account at the terminal."""
        from .access.events import officer_agent, user_agent
        from .access.users import Users

        return Users(self.catalog.engine, self.now, user_agent(actor) if actor else officer_agent(self.settings.officer))

    def search(self, query: str, *, fonds: str | None = None, type_name: str | None = None,
               date_from: str | None = None, date_to: str | None = None, user: str | None = None,
               limit: int = 20) -> dict[str, Any]:
        """Full-text search of the documents (metadata and OCR text), diacritics-insensitive; with `user`, the
        records that user may not see under the access rules are left out (preserve.access.visibility)."""
        from .access.visibility import visibility_for
        from .sip.fields import parse_date
        from .sip.profile import load_profile

        type_code = None
        if type_name:
            profile = load_profile(self.settings.profile)
            type_code = profile.resolve_code("typeName", type_name)
            if type_code is None:
                raise UsageError(f"Không có loại văn bản / no document type '{type_name}'.",
                                 hint=f"Use a code or a name: {profile.allowed('typeName')}.")

        def day(value: str | None, which: str) -> str | None:
            if not value:
                return None
            parsed = parse_date(value)
            if parsed is None:
                raise UsageError(f"Ngày không hợp lệ / not a date: --{which} {value}",
                                 hint="Write dd/mm/yyyy, mm/yyyy, yyyy or yyyy-mm-dd, e.g. --from 01/01/2020.")
            return parsed.iso

        if limit < 1:
            raise UsageError(f"--limit must be at least 1 (got {limit}).", hint="e.g. --limit 20")
        visible = visibility_for(self.users().require(user)) if user else None
        return self.catalog.search(query, fonds=fonds, type_code=type_code, date_from=day(date_from, "from"),
                                   date_to=day(date_to, "to"), visible=visible, limit=limit)

    def access_requests(self):
        """Requests for access copies: request, approve, deny, get, list (preserve.access.requests)."""
        from .access.requests import Requests

        default, longest = self.settings.access_days
        return Requests(self.catalog.engine, self.users(), self.now, default, longest)

    def make_access_copy(self, request_id: str, out_dir: Path, *, by: str | None = None,
                         images_dpi: int | None = None, progress: Progress | None = None) -> dict[str, Any]:
        """The DIP of an approved request, as one zip in `out_dir`, from a replica verified now."""
        from .access.copies import CopyMaker

        policy = self.policy()
        order = [self.settings.primary_tier, *(t for t in policy.copy_tiers if t != self.settings.primary_tier)]
        maker = CopyMaker(self.access_requests(), self.catalog, self.tiers(), order, self._auditor(),
                          self.settings.organisation, self.settings.staging, self.now)
        return maker.make(request_id, Path(out_dir), by=by, images_dpi=images_dpi, progress=progress)

    def access_log(self, user: str | None = None, since: str | None = None,
                   limit: int | None = None) -> list[dict[str, Any]]:
        from .access.log import access_log, parse_since

        return access_log(self.catalog.engine, user, parse_since(since, self.settings.timezone), limit)

    # ------------------------------------------------------------------ keys
    # ------------------------------------------------------------------ web: browse and AIP view (preserve/web/browse.py)
    def _browse_visible(self, user: str | None):
        from .access.visibility import visibility_for

        return visibility_for(self.users().require(user)) if user else None

    def browse_fonds(self, *, user: str | None = None) -> list[dict[str, Any]]:
        """Fonds with what `user` may see of them (None: everything): code, name, dossiers, documents, pages."""
        from .catalog import browse

        return browse.fonds_list(self.catalog.engine, self._browse_visible(user))

    def browse_dossiers(self, fonds: str, *, type_name: str | None = None, date_from: str | None = None,
                        date_to: str | None = None, mode: str | None = None, user: str | None = None,
                        limit: int = 50, offset: int = 0) -> dict[str, Any] | None:
        """A page of a fonds' dossiers (preserve.catalog.browse.dossiers); type and mode as code or name, dates
        dd/mm/yyyy, mm/yyyy or yyyy (overlap with the dossier's span). None when the fonds is unknown."""
        from .catalog import browse
        from .sip.fields import parse_date
        from .sip.profile import load_profile

        if browse.get_fonds(self.catalog.engine, fonds) is None:
            return None
        profile = load_profile(self.settings.profile)

        def code(list_name: str, value: str | None, what: str) -> str | None:
            if not value or not str(value).strip():
                return None
            found = profile.resolve_code(list_name, value)
            if found is None:
                raise UsageError(f"Không có {what} '{value}' / unknown {list_name} '{value}'.",
                                 hint=f"Use a code or a name: {profile.allowed(list_name)}.")
            return found

        def day(value: str | None, which: str, last: bool) -> str | None:
            if not value or not str(value).strip():
                return None
            parsed = parse_date(str(value))
            if parsed is None:
                raise UsageError(f"Ngày không hợp lệ / not a date: {which} {value}",
                                 hint="Write dd/mm/yyyy, mm/yyyy, yyyy or yyyy-mm-dd, e.g. 01/01/2020.")
            y, m, d = parsed.latest if last else parsed.earliest
            return f"{y:04d}-{m:02d}-{d:02d}"

        filters = browse.DossierFilters(type_code=code("typeName", type_name, "loại văn bản"),
                                        date_lo=day(date_from, "from", False), date_hi=day(date_to, "to", True),
                                        mode=code("mode", mode, "chế độ sử dụng"))
        return browse.dossiers(self.catalog.engine, fonds, filters, self._browse_visible(user), limit, offset)

    def browse_dossier(self, file_code: str, *, user: str | None = None) -> dict[str, Any] | None:
        """One dossier with the documents `user` may see; None when unknown or none of it is visible."""
        from .catalog import browse

        return browse.dossier(self.catalog.engine, file_code, self._browse_visible(user))

    def browse_document(self, doc_code: str, *, user: str | None = None) -> dict[str, Any] | None:
        """One document; None when unknown or `user` may not see it."""
        from .catalog import browse

        return browse.document(self.catalog.engine, doc_code, self._browse_visible(user))

    def aip_visible(self, aip_id: str, *, user: str | None = None) -> bool:
        """Whether `user` may see some document of the dossier this AIP version holds."""
        from .catalog import browse

        return browse.aip_visible(self.catalog.engine, aip_id, self._browse_visible(user))


    # ------------------------------------------------------------------ web: ingest, access, audits (preserve/web/work.py)
    def uploads(self):
        """Uploaded batches waiting in staging (preserve.workdesk.Uploads), at most the zip limit each."""
        from .workdesk import Uploads

        return Uploads(self.settings.staging, self._limits().max_total_bytes)

    def validation_report(self, sip: Path) -> dict[str, Any]:
        """Validate a batch against this repository: valid, findings (dicts), dossiers, accepted, refused."""
        from .workdesk import validation_report

        v = self.validate(Path(sip))
        try:
            return validation_report(v)
        finally:
            v.package.close()

    def access_copy_dir(self, request_id: str) -> Path:
        """Where the web app keeps the access copies of a request: <repository>/dip/<request id>/."""
        from .workdesk import copy_dir

        return copy_dir(self.root, request_id)

    def latest_access_copy(self, request_id: str) -> Path | None:
        from .workdesk import latest_copy

        return latest_copy(self.root, request_id)

    def audit_reports(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest HTML audit reports in <repository>/reports/."""
        from .workdesk import audit_reports

        return audit_reports(self.root, limit)

    def audit_report_path(self, name: str) -> Path:
        """The path of one report in <repository>/reports/ (FileNotFoundError for any other name)."""
        from .workdesk import audit_report_path

        return audit_report_path(self.root, name)

    def write_audit_report(self, result) -> Path:
        """Write an AuditResult's HTML report to <repository>/reports/audit-<time>.html."""
        from .fixity.report import write_report
        from .workdesk import reports_dir

        stamp = self.now().replace(":", "").replace("+", "p")[:24]
        path = reports_dir(self.root) / f"audit-{stamp}-{uuid.uuid4().hex[:6]}.html"
        return write_report(path, result.to_dict(), self.settings.organisation, self.root)

    def damaged_replicas(self) -> list[dict[str, Any]]:
        """Replicas whose status is damaged or missing."""
        from .workdesk import damaged_replicas

        return damaged_replicas(self.catalog)

    def recent_repairs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest repair events (newest first), from the last 5000 events."""
        from .workdesk import repairs

        return repairs(self.events(limit=5000), limit)

    def scheduler_status(self) -> dict[str, Any]:
        """What `preserve scheduler status` shows: each job's trigger, last run, next run, overdue."""
        from .schedule import load_plan, status

        return status(self.settings, load_plan(self))


    def import_keys(self, key: Path, cert: Path) -> dict[str, Any]:
        from .keys import import_keys, key_info

        import_keys(self.settings.keys_dir, Path(key), Path(cert))
        return key_info(self.settings.keys_dir)

    def generate_keys(self, organisation: str | None = None, replace: bool = False) -> dict[str, Any]:
        from .keys import generate_keys, key_info

        generate_keys(self.settings.keys_dir, organisation or self.settings.organisation, replace=replace)
        return key_info(self.settings.keys_dir)

    def key_info(self) -> dict[str, Any]:
        from .keys import key_info

        return key_info(self.settings.keys_dir)


def validate_sip(sip: Path, *, strict: bool = False, existing=None, scratch: Path | None = None,
                 progress: Progress | None = None, limits=None, verify_checksums: bool = True):
    """Validate a batch; the caller closes `result.package` (it may hold an extracted zip)."""
    from .sip.package import open_package
    from .sip.profile import load_profile
    from .sip.validate import validate

    pkg = open_package(Path(sip), scratch, limits=limits)
    try:
        return validate(pkg, load_profile(), existing=existing, verify_checksums=verify_checksums, strict=strict,
                        progress=progress or NullProgress())
    except BaseException:
        pkg.close()
        raise


def validate_bag_only(path: Path):
    """Only the BagIt layer (RFC 8493) of a bag: a folder, or a .zip holding one (extracted safely first)."""
    import tempfile
    import zipfile

    from .sip.bagcheck import BagResult, check_bag
    from .sip.package import _descend
    from .sip.safety import extract_zip

    path = Path(path)
    if path.is_dir():
        return check_bag(path, allow_holey=True)
    if path.is_file() and zipfile.is_zipfile(path):
        with tempfile.TemporaryDirectory(prefix="bag-") as tmp:
            dest = Path(tmp) / "x"
            findings = extract_zip(path, dest)
            if any(f.is_error for f in findings):
                return BagResult(findings=findings, bag_info={}, version=None, payload={})
            res = check_bag(_descend(dest), allow_holey=True)
            res.findings[:0] = findings
            return res
    raise UsageError(f"{path} is not a folder or a .zip file.", hint="--bag-only checks a BagIt bag: a folder or a zip of one.")


def open_repository(path: Path | str | None) -> Repository:
    from .config import default_repo_path

    return Repository.open(Path(path) if path else default_repo_path())


def _restic_init(repo: Path, password_file: Path) -> None:
    restic = shutil.which("restic")
    if restic is None:
        raise UsageError("restic is not installed, so the off-site repository cannot be created.",
                         hint="Install it (`apt-get install restic`), or run `preserve init --no-offsite` and add the "
                              "off-site tier later (docs/storage.md).")
    if (repo / "config").exists():
        return
    proc = subprocess.run([restic, "init", "--repo", str(repo), "--password-file", str(password_file), "--json",
                           "--no-cache"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RepositoryNotFound(f"restic init failed for {repo}: {proc.stderr.strip()}",
                                 hint="Check that the folder is writable and restic works (`restic version`).")
