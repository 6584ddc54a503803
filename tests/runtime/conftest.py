"""Runtime test setup: make the rt_helpers module importable, give each engine its own folder, and run every test
that takes `store` or `state_url` on each store backend (tests/conftest.py parametrises them)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def engine_dir(tmp_path: Path) -> Path:
    """A folder for one engine's config, state.db and logs."""
    return tmp_path


@pytest.fixture
def store(state_url: str):  # noqa: ANN201 - engine.store.Store
    """A migrated, writable store on the parametrised backend (a temp SQLite file or a PostgreSQL database)."""
    from engine.store import open_store

    st = open_store(state_url)
    yield st
    st.dispose()
