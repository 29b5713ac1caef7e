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
