"""catalog_url_for: $PRESERVE_CATALOG_URL, then the configured URL, then <repo>/catalog.sqlite; SQLite pragmas."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from preserve.catalog import Catalog, catalog_url_for
from preserve.catalog.db import normalise_url
from preserve.errors import CatalogError


def test_env_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("PRESERVE_CATALOG_URL", "postgresql+psycopg://archive@db/preserve")
    assert catalog_url_for(tmp_path, "sqlite:////elsewhere.sqlite") == "postgresql+psycopg://archive@db/preserve"


def test_configured_then_default(monkeypatch, tmp_path):
    monkeypatch.delenv("PRESERVE_CATALOG_URL", raising=False)
    assert catalog_url_for(tmp_path, "sqlite:////srv/c.sqlite") == "sqlite:////srv/c.sqlite"
    assert catalog_url_for(tmp_path, None) == f"sqlite:///{tmp_path.resolve()}/catalog.sqlite"
    assert catalog_url_for(tmp_path, "  ").startswith("sqlite:////")


def test_plain_postgresql_url_means_psycopg3():
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:////x.sqlite") == "sqlite:////x.sqlite"


def test_sqlite_pragmas(tmp_path):
    with Catalog.open(catalog_url_for(tmp_path, None)) as cat:
        with cat.engine.connect() as conn:
            pragma = {p: conn.execute(text(f"PRAGMA {p}")).scalar_one()
                      for p in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")}
    assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10000, "synchronous": 2}
    assert (tmp_path / "catalog.sqlite").is_file()


def test_unopenable_catalog_is_a_catalog_error(tmp_path):
    with pytest.raises(CatalogError, match="cannot be used"):
        Catalog.open(f"sqlite:///{tmp_path}/no/such/dir/catalog.sqlite")
