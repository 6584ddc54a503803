"""The twin fixture for the live fault tests (see tests/support/twin.py for its API)."""

from tests.support.twin import twin  # noqa: F401 - re-exported fixture
