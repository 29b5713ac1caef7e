"""Shared fixtures. ../shared (beside the repo) holds the XSDs and the BagIt conformance bags."""

import os
from pathlib import Path

import pytest

# OCR costs seconds per page: only the tests that are about OCR turn it on (monkeypatch PRESERVE_OCR or pass
# ocr=True). Subprocesses (the CLI tests) inherit this.
os.environ["PRESERVE_OCR"] = "off"

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found beside the repo ({SHARED}); it holds the schemas and conformance bags")
    return SHARED


import shutil  # noqa: E402

from preserve.repository import Repository  # noqa: E402


@pytest.fixture(scope="session")
def sample_cache(tmp_path_factory):
    """A clean sample batch made once per test session (2 dossiers × 3 documents); copy it before changing it."""
    from preserve.sip.sample import make_sample

    root = tmp_path_factory.mktemp("cache") / "lo-mau"
    make_sample(root, dossiers=2, docs=3, seed=11)
    return root


@pytest.fixture
def batch(sample_cache, tmp_path) -> Path:
    dest = tmp_path / "lo-mau"
    shutil.copytree(sample_cache, dest, symlinks=True)
    return dest


@pytest.fixture
def repo(tmp_path) -> Repository:
    r = Repository.init(tmp_path / "repo", "Lưu trữ lịch sử Tỉnh ủy (test)", offsite=False)
    yield r
    r.close()


# ---- real network servers on 127.0.0.1 (tests/storage/servers.py), shared by tests/storage and tests/fixity ----
def _load_servers():
    """tests/ is not a package (pytest runs with --import-mode=importlib), so servers.py is loaded by path."""
    import importlib.util
    import sys

    name = "preserve_tests_storage_servers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "storage" / "servers.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


servers = _load_servers()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real OpenSSH server for the whole session (never stopped by a test: use `own_sshd` for that)."""
    why = servers.sshd_missing()
    if why:
        pytest.skip(why)
    server = servers.SshServer(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_sshd(tmp_path):
    """A server of this test's own, which the test may stop() and start() again (same port, same keys)."""
    why = servers.sshd_missing()
    if why:
        pytest.skip(why)
    server = servers.SshServer(tmp_path / "own-sshd")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server():
    why = servers.moto_missing()
    if why:
        pytest.skip(why)
    server = servers.S3Server()
    server.start()
    yield server
    server.stop()


# ---- PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`), a schema per test -----------------------------
import os  # noqa: E402
import secrets  # noqa: E402
from urllib.parse import quote  # noqa: E402

PG_URL = os.environ.get("PRESERVE_TEST_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
PG_SKIP = "PostgreSQL not reachable at 127.0.0.1:5432 (set PRESERVE_TEST_PG_URL for another server): ran on SQLite only"
_pg_state: dict[str, bool] = {}


def pg_conninfo() -> str:
    return PG_URL.replace("postgresql+psycopg://", "postgresql://", 1)


def pg_available() -> bool:
    if "ok" not in _pg_state:
        import psycopg

        try:
            with psycopg.connect(pg_conninfo(), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _pg_state["ok"] = True
        except (OSError, psycopg.Error):
            _pg_state["ok"] = False
    return _pg_state["ok"]


@pytest.fixture
def pg_schema_url():
    """A catalog URL to a fresh PostgreSQL schema of this test's own (dropped afterwards); skips without a server."""
    import psycopg

    if not pg_available():
        pytest.skip(PG_SKIP)
    schema = "t_" + secrets.token_hex(6)
    with psycopg.connect(pg_conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=" + quote(f"-csearch_path={schema}", safe="")
    finally:
        with psycopg.connect(pg_conninfo(), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
