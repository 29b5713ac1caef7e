"""Repository settings: preserve.toml → typed settings, and the default file written by `preserve init`."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from .errors import ConfigError, RepositoryNotFound

CONFIG_NAME = "preserve.toml"
DEFAULT_ORGANISATION = "Lưu trữ lịch sử Tỉnh ủy"


OCR_POLICIES = ("at-ingest", "off")


def default_repo_path() -> Path:
    """`$PRESERVE_HOME`, else ./preserve-data."""
    return Path(os.environ.get("PRESERVE_HOME") or "preserve-data")


def default_settings(organisation: str = DEFAULT_ORGANISATION, offsite: bool = True) -> dict[str, Any]:
    """The preserve.toml that `preserve init` writes. Without `offsite` there is no restic tier and the policy is
    "local-only" (two local copies), for a repository whose off-site copy is not set up yet."""
    data = {
        "repository": {
            "organisation": organisation,
            "profile": "vn-party-archive",
            "timezone": "+07:00",
        },
        "catalog": {"url": ""},  # empty: SQLite at catalog.sqlite; PRESERVE_CATALOG_URL overrides
        "ingest": {"officer": "", "strict": False, "ocr": "at-ingest"},
        "tiers": {
            "primary": {"kind": "local", "path": "tiers/primary"},
            "secondary": {"kind": "local", "path": "tiers/secondary"},
            "offsite": {"kind": "restic", "repository": "offsite", "password_file": "keys/restic-password"},
        },
        "policy": {"name": "default"},
        "alerts": {"log": "alerts.log"},  # add [alerts.mail] and [alerts.webhook] tables (docs/operations.md)
        "keys": {"signing_key": "keys/signing-key.pem", "signing_cert": "keys/signing-cert.pem"},
        "access": {"request_days": 30, "max_days": 365},
        "limits": {"zip_max_bytes": 200 * 2**30, "zip_max_ratio": 200, "zip_max_entries": 200000},
    }
    if not offsite:
        del data["tiers"]["offsite"]
        data["policy"]["name"] = "local-only"
    return data


@dataclass
class Settings:
    root: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> "Settings":
        root = Path(root).resolve()
        path = root / CONFIG_NAME
        if not path.is_file():
            raise RepositoryNotFound(
                f"No preserve repository at {root} (no {CONFIG_NAME}).",
                hint=f"Create one with `preserve init {root}`, or pass --repo / set PRESERVE_HOME.",
            )
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path} is not valid TOML: {e}", hint="Fix the file or restore it from a backup.")
        merged = default_settings()
        for section, values in data.items():
            if isinstance(values, dict) and isinstance(merged.get(section), dict) and section != "tiers":
                merged[section].update(values)
            else:
                merged[section] = values
        return cls(root, merged)

    def save(self) -> None:
        from .atomic import write_text

        write_text(self.root / CONFIG_NAME, tomli_w.dumps(self.data))

    # --- typed accessors ---
    def path(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

    @property
    def organisation(self) -> str:
        return self.data["repository"].get("organisation", DEFAULT_ORGANISATION)

    @property
    def profile(self) -> str:
        return self.data["repository"].get("profile", "vn-party-archive")

    @property
    def timezone(self) -> str:
        return self.data["repository"].get("timezone", "+07:00")

    @property
    def catalog_url(self) -> str:
        env = os.environ.get("PRESERVE_CATALOG_URL")
        if env:
            return env
        url = self.data["catalog"].get("url") or ""
        return url or f"sqlite:///{self.root / 'catalog.sqlite'}"

    @property
    def officer(self) -> str:
        return self.data["ingest"].get("officer") or os.environ.get("USER") or "officer"

    @property
    def ocr(self) -> bool:
        """[ingest] ocr = "at-ingest" (the default) or "off". PRESERVE_OCR overrides it for one shell or job (the
        test suite sets it to "off": only the OCR tests pay for OCR)."""
        value = os.environ.get("PRESERVE_OCR") or str(self.data.get("ingest", {}).get("ocr", "at-ingest"))
        value = value.strip().lower()
        if value not in OCR_POLICIES:
            raise ConfigError(f'[ingest] ocr = "{value}" is not one of: {", ".join(OCR_POLICIES)}.',
                              hint='Write ocr = "at-ingest" or ocr = "off" in preserve.toml (or fix PRESERVE_OCR).')
        return value == "at-ingest"

    @property
    def ocr_page_seconds(self) -> float:
        """[ingest] ocr_page_seconds: how long OCR may take per page of a document (plus one page's worth)
        before that document is stopped and stored without its OCR derivative (W-OCR-FAILED). Default 60."""
        raw = self.data.get("ingest", {}).get("ocr_page_seconds", 60)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = -1.0
        if value <= 0:
            raise ConfigError(f"[ingest] ocr_page_seconds = {raw!r} must be a positive number of seconds.",
                              hint="e.g. ocr_page_seconds = 60")
        return value

    @property
    def tiers(self) -> dict[str, dict[str, Any]]:
        return self.data.get("tiers", {})

    def tier_path(self, name: str) -> Path:
        tier = self.tiers.get(name)
        if not tier:
            raise ConfigError(f"Tier '{name}' is not declared in {CONFIG_NAME}.", hint="Add a [tiers.NAME] section.")
        if tier.get("kind") != "local":
            raise ConfigError(f"Tier '{name}' is of kind '{tier.get('kind')}', not a local path.")
        return self.path(tier["path"])

    @property
    def access_days(self) -> tuple[int, int]:
        """(default, longest) number of days a request, then its approval, stays valid ([access])."""
        acc = self.data.get("access", {})
        try:
            default, longest = int(acc.get("request_days", 30)), int(acc.get("max_days", 365))
        except (TypeError, ValueError):
            raise ConfigError("[access] request_days and max_days must be whole numbers of days.",
                              hint="e.g. request_days = 30, max_days = 365") from None
        if not 1 <= default <= longest:
            raise ConfigError(f"[access] request_days = {default} must be between 1 and max_days = {longest}.",
                              hint="e.g. request_days = 30, max_days = 365")
        return default, longest

    @property
    def primary_tier(self) -> str:
        return self.data.get("storage", {}).get("primary", "primary")

    @property
    def signing_key(self) -> Path:
        return self.path(self.data["keys"]["signing_key"])

    @property
    def signing_cert(self) -> Path:
        return self.path(self.data["keys"]["signing_cert"])

    @property
    def keys_dir(self) -> Path:
        return self.signing_key.parent

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"
