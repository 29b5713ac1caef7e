"""Engines and sessions for the catalog: SQLite (default) or PostgreSQL through psycopg 3.

SQLite connections get WAL, foreign keys, a 10 s busy timeout and synchronous=FULL. The pysqlite driver's own
transaction handling is switched off and SQLAlchemy's "begin" emits BEGIN itself, so that a write session can
open with BEGIN IMMEDIATE: it takes the write lock at the start, and two writers queue instead of failing
half-way (the recipe from SQLAlchemy's pysqlite documentation).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

ENV_URL = "PRESERVE_CATALOG_URL"
BUSY_TIMEOUT_S = 10
_WRITE = "preserve_write"  # execution option: this transaction writes


def catalog_url_for(repo_path: str | os.PathLike[str], configured_url: str | None = None) -> str:
    """The catalog URL: $PRESERVE_CATALOG_URL wins, then the configured URL, then <repo>/catalog.sqlite."""
    env = os.environ.get(ENV_URL, "").strip()
    if env:
        return env
    if configured_url and configured_url.strip():
        return configured_url.strip()
    return "sqlite:///" + str((Path(repo_path) / "catalog.sqlite").resolve())


def normalise_url(url: str) -> str:
    """postgresql:// and postgres:// mean psycopg 3 here (psycopg2 is not a dependency)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
        _configure_sqlite(engine)
    elif backend == "postgresql":
        engine = create_engine(url, pool_pre_ping=True)
    else:
        engine = create_engine(url)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # autocommit at the driver; "begin" below emits BEGIN
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            cur.execute("PRAGMA synchronous=FULL")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """One write transaction: committed when the block ends, rolled back if it raises.

    On SQLite it begins with BEGIN IMMEDIATE (the database's write lock, waited for up to the busy timeout).
    On PostgreSQL the caller serialises what needs it (the event chain locks chain_head FOR UPDATE).
    """
    with Session(engine, expire_on_commit=False) as session:
        session.connection(execution_options={_WRITE: True})
        yield session
        session.commit()


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session
