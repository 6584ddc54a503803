"""The twin fixture for every venue test (see tests/support/twin.py for its API)."""

from tests.support.twin import twin  # noqa: F401 - re-exported fixture
