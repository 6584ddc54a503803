"""The command doorbell on a PostgreSQL desk: LISTEN/NOTIFY, so a front end on any host wakes the engine's poller.

A Unix socket reaches only this host; on PostgreSQL the front end's `submit_command` issues `pg_notify` in the same
transaction that inserts the command row, so the wake-up is delivered exactly when the command becomes visible
(never before its commit) to every engine listening on the desk. The `commands` table stays the transport; a missed
notification (connection lost, LISTEN not yet set up) only means the command waits for the next timed poll.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
from typing import Any

log = logging.getLogger("quantdesk.doorbell")

COMMANDS_CHANNEL = "quantdesk_commands"


class PgDoorbell:
    """The engine's end on PostgreSQL: `wait(timeout)` returns early on a NOTIFY, on `wake()`, or on stop."""

    def __init__(self, url: str, stop: threading.Event) -> None:
        self.url = url
        self._stop = stop
        self._conn: Any = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        try:
            import psycopg

            conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
            conn = psycopg.connect(conninfo, autocommit=True, application_name="quantdesk-doorbell")
            conn.execute(f"LISTEN {COMMANDS_CHANNEL}")
            self._conn = conn
        except Exception as exc:  # noqa: BLE001 - best-effort: polling alone still picks every command up
            log.warning("command doorbell (LISTEN) not set up (%s); commands are picked up by polling only", exc)

    @property
    def bound(self) -> bool:
        """True when notifications reach this poller."""
        return self._conn is not None

    def wait(self, timeout_s: float) -> bool:
        """Sleep up to timeout_s; True when a notification arrived (all pending ones are drained)."""
        fds = [self._wake_r] + ([self._conn.pgconn.socket] if self._conn is not None else [])
        ready, _, _ = select.select(fds, [], [], timeout_s)
        self._drain_wake()
        if self._conn is None or not ready:
            return False
        try:
            pgconn = self._conn.pgconn
            pgconn.consume_input()
            rung = False
            while pgconn.notifies() is not None:
                rung = True
            return rung
        except Exception as exc:  # noqa: BLE001 - a lost connection: fall back to polling, say so once
            log.warning("command doorbell connection lost (%s); commands are picked up by polling only", exc)
            self.close()
            return False

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(64):
                pass
        except (BlockingIOError, OSError):
            pass

    def wake(self) -> None:
        """End a current wait (used on stop)."""
        try:
            self._wake_w.send(b"!")
        except OSError:
            pass

    def close(self) -> None:
        """Stop listening and close the connection."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
