"""Shared fixtures. ../shared (beside the repo) holds the XSDs and the BagIt conformance bags."""

from pathlib import Path

import pytest

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
