from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def shared_data() -> Path:
    """The read-only shared datasets beside the repository (skipped when absent)."""
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip(f"shared datasets not found at {data} (clone with ../shared beside it)")
    return data
