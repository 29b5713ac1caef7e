"""Storage fixtures: a fresh reachable tier of every kind (the real sshd and moto's S3 server come from
tests/conftest.py), each built through
`preserve.storage.open_tier` from a [tiers.NAME] table (relative key paths included) so spec parsing is tested."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from preserve.storage import Tier, open_tier

KINDS = ("local", "memory", "sftp", "s3")


@pytest.fixture
def repo_root(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "keys").mkdir(parents=True)
    return root


TierFactory = Callable[..., Tier]


@pytest.fixture
def tier_factory(request: pytest.FixtureRequest, repo_root: Path, tmp_path: Path) -> Iterator[TierFactory]:
    """make(kind, base=True, server=None, **spec_overrides) → a tier opened by open_tier. base=False leaves the
    base path / bucket absent; `server` picks another SshServer than the session one."""
    made: list[Tier] = []
    memory_roots: list[str] = []

    def make(kind: str, base: bool = True, server: Any = None, **overrides: Any) -> Tier:
        n = len(made)
        if kind == "local":
            spec = {"kind": "local", "path": f"tiers/t{n}"}
            if base:   # as `preserve tiers init` does: the folder and its marker (a bare folder is a mount point)
                (repo_root / "tiers").mkdir(exist_ok=True)
                open_tier("init", spec, repo_root).initialise()
        elif kind == "memory":
            spec = {"kind": "memory", "path": f"/preserve-test-{uuid.uuid4().hex[:12]}"}
            memory_roots.append(spec["path"])
            if base:
                _memory().mkdir(spec["path"])
        elif kind == "sftp":
            spec = _sftp_spec(server or request.getfixturevalue("sshd"), repo_root, tmp_path / f"sftp-{n}", base)
        elif kind == "s3":
            spec = _s3_spec(request.getfixturevalue("s3_server"), repo_root, base)
        else:
            raise ValueError(kind)
        spec.update(overrides)
        tier = open_tier(f"t{n}-{kind}", spec, repo_root)
        made.append(tier)
        return tier

    yield make
    for tier in made:
        tier.close()
    for root in memory_roots:
        if _memory().exists(root):
            _memory().rm(root, recursive=True)


def _memory() -> Any:
    import fsspec

    return fsspec.filesystem("memory")


def _sftp_spec(server: Any, repo_root: Path, base_dir: Path, base: bool) -> dict[str, Any]:
    """Key and known_hosts copied into the repository's keys/ and named relatively, as preserve.toml would."""
    shutil.copy(server.key, repo_root / "keys" / "sftp-key")
    shutil.copy(server.known_hosts, repo_root / "keys" / "known_hosts")
    if base:
        base_dir.mkdir(parents=True)
    return server.spec(base_dir, key="keys/sftp-key", known_hosts="keys/known_hosts")


def _s3_spec(server: Any, repo_root: Path, base: bool) -> dict[str, Any]:
    (repo_root / "keys" / "s3-secret").write_text(server.secret_key + "\n")
    bucket = server.new_bucket() if base else f"absent-{uuid.uuid4().hex[:12]}"
    return server.spec(bucket, "keys/s3-secret")


@pytest.fixture(params=KINDS)
def tier(request: pytest.FixtureRequest, tier_factory: TierFactory) -> Tier:
    """A fresh, reachable, empty tier of each kind."""
    return tier_factory(request.param)
