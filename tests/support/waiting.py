"""Polling a condition from a synchronous test: the one wait loop shared by the runtime and end-to-end tests."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll `pred` until it returns a truthy value (returned); fail the test naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
