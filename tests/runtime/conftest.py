"""Runtime test setup: make the rt_helpers module importable, and give each engine its own folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def engine_dir(tmp_path: Path) -> Path:
    """A folder for one engine's config, state.db and logs."""
    return tmp_path
