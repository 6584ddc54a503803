"""The emergency stop's own thread: started with the app, it runs the stop the moment the key handler hands it over.

Textual's thread workers are started by the event loop, which right after a key press is busy painting: the HALT
write began up to ~40 ms after the key in measurements. A thread already blocked on a queue starts at once. Only the
emergency stop uses this lane; every other command runs in an ordinary thread worker.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

log = logging.getLogger("quantdesk.console")


class StopLane:
    """One pre-started daemon thread that runs submitted calls in order."""

    def __init__(self, name: str = "stop-lane") -> None:
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, call: Callable[[], None]) -> None:
        """Run call on the lane's thread as soon as it is free (now, unless a previous stop is still running)."""
        self._queue.put(call)

    def close(self, timeout_s: float = 0.0) -> None:
        """Let the thread end after the calls already queued (optionally wait for it)."""
        self._queue.put(None)
        if timeout_s > 0:
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        """True while the lane's thread runs."""
        return self._thread.is_alive()

    def _run(self) -> None:
        while True:
            call = self._queue.get()
            if call is None:
                return
            try:
                call()
            except Exception:  # noqa: BLE001 - calls report their own failures; the lane must survive anything
                log.exception("stop lane call failed")
