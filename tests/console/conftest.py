"""Console fixtures: a fixture desk in a real state.db."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.console.helpers import live_heartbeat


@pytest.fixture
def desk_state(tmp_path: Path):  # noqa: ANN201 - (path, writable Store)
    """A state.db with the fixture desk and a fresh (future) heartbeat, so the engine counts as alive."""
    from tests.console.deskdata import build_state

    path = tmp_path / "state.db"
    store = build_state(path, heartbeat_at=live_heartbeat())
    yield path, store
    store.dispose()


@pytest.fixture
def offline_state(tmp_path: Path):  # noqa: ANN201
    """A desk whose engine is not running (no heartbeat): state-only commands are applied by the control client."""
    from tests.console.deskdata import build_state

    path = tmp_path / "state.db"
    store = build_state(path, heartbeat_at=None)
    yield path, store
    store.dispose()
