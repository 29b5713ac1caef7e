"""Servers for the audit tests: the real sshd and moto's S3 server of tests/storage (servers.py, loaded by path:
tests/ is not a package). The fixtures are those of tests/storage/conftest.py, which pytest does not share with
this folder."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _load_servers() -> Any:
    name = "preserve_tests_storage_servers"   # the same module tests/storage/conftest.py loads
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "storage" / "servers.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


servers = _load_servers()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real OpenSSH server for the whole session (never stopped by a test: use `own_sshd` for that)."""
    why = servers.sshd_missing()
    if why:
        pytest.skip(why)
    server = servers.SshServer(tmp_path_factory.mktemp("fixity-sshd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_sshd(tmp_path: Path) -> Iterator[Any]:
    """A server of this test's own, which the test may stop()."""
    why = servers.sshd_missing()
    if why:
        pytest.skip(why)
    server = servers.SshServer(tmp_path / "own-sshd")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    why = servers.moto_missing()
    if why:
        pytest.skip(why)
    server = servers.S3Server()
    server.start()
    yield server
    server.stop()
