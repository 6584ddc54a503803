"""Hand freed heap memory back to the operating system, so a long-running engine's RSS follows what it holds.

glibc's malloc keeps memory that Python frees in its arenas (one per thread that allocated, up to 8 per core): the
engine's job threads each build and drop pandas frames, SQLite row lists and numpy arrays every tick, and without a
trim the freed pages stay resident. `malloc_trim(0)` returns every whole free page of every arena (madvise), which
takes a few milliseconds; the engine's heartbeat thread calls it every TRIM_INTERVAL_S. Elsewhere (not glibc) it is a
no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from typing import Any

TRIM_INTERVAL_S = 30.0

_libc: Any = None


def trim_heap() -> bool:
    """Return free heap pages to the OS (glibc malloc_trim(0)); True when memory was released."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc.malloc_trim.argtypes = [ctypes.c_size_t]
            _libc.malloc_trim.restype = ctypes.c_int
        except (OSError, AttributeError):
            _libc = False
    if not _libc:
        return False
    return bool(_libc.malloc_trim(0))


class HeapTrimmer:
    """Calls trim_heap at most once per `interval_s` (from a thread that wakes up often anyway)."""

    def __init__(self, interval_s: float = TRIM_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._last = time.monotonic()

    def maybe_trim(self) -> bool:
        """Trim when the interval has passed since the last trim; True when it trimmed."""
        now = time.monotonic()
        if now - self._last < self.interval_s:
            return False
        self._last = now
        trim_heap()
        return True
