"""The twin fixture for the live fault tests (see tests/support/twin.py for its API), and `store` on each store
backend (tests/conftest.py parametrises `state_url` over SQLite and PostgreSQL)."""

import pytest

from tests.support.twin import twin  # noqa: F401 - re-exported fixture


@pytest.fixture
def store(state_url: str):  # noqa: ANN201 - engine.store.Store
    """A migrated, writable store on the parametrised backend (a temp SQLite file or a PostgreSQL database)."""
    from engine.store import open_store

    st = open_store(state_url)
    yield st
    st.dispose()
