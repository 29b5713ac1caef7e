"""The façade: one object that offers every operation. The CLI (and later the scheduler and web app) are thin
adapters over it; tests drive it directly."""

from __future__ import annotations

import os
import secrets
import shutil
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

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def init(cls, path: Path, organisation: str | None = None, *, offsite: bool = True) -> "Repository":
        """Create a repository with the default layout, keys, catalog and (if restic is here) the off-site repo."""
        from .keys import generate_keys

        root = Path(path).resolve()
        if (root / CONFIG_NAME).exists():
            raise UsageError(f"A repository already exists at {root}.",
                             hint="Use it as it is (--repo), or choose another folder for a new one.")
        if root.exists() and any(p for p in root.iterdir() if p.name not in (".", "..")):
            raise UsageError(f"{root} exists and is not empty.", hint="Choose an empty or new folder.")
        for d in LAYOUT_DIRS:
            (root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(root / "keys", 0o700)
        data = default_settings(organisation or DEFAULT_ORGANISATION)
        settings = Settings(root, data)
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
        from .ingest import JOURNAL_SUFFIX

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
               progress: Progress | None = None):
        from .ingest import check_tier, ingest_lock, ingest_validated, recover
        from .keys import load_signer

        signer = load_signer(self.settings.keys_dir)
        if strict is None:
            strict = bool(self.settings.data["ingest"].get("strict", False))
        with ingest_lock(self.settings.staging):
            recover(self.settings.staging, check_tier(self.settings.tier_path(self.settings.primary_tier)), self.catalog)
            validation = validate_sip(sip, strict=strict, existing=self.catalog.existing_file_codes,
                                      scratch=self.settings.staging, progress=progress, limits=self._limits(),
                                      verify_checksums=False)
            try:
                return ingest_validated(validation, settings=self.settings, catalog=self.catalog, signer=signer,
                                        officer=officer or self.settings.officer, progress=progress)
            finally:
                validation.package.close()

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

    # ------------------------------------------------------------------ keys
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
        return  # the storage layer reports a missing restic when the off-site tier is used
    if (repo / "config").exists():
        return
    proc = subprocess.run([restic, "init", "--repo", str(repo), "--password-file", str(password_file), "--json",
                           "--no-cache"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RepositoryNotFound(f"restic init failed for {repo}: {proc.stderr.strip()}",
                                 hint="Check that the folder is writable and restic works (`restic version`).")
