"""The one-engine lock on a server store (PostgreSQL): a session advisory lock held on a dedicated connection.

A lock file only serialises engines on one host; engines on several hosts sharing one PostgreSQL desk need the lock
in the database. `pg_try_advisory_lock` is held by the session, so the server releases it when the engine's
connection ends for any reason (clean stop, crash, kill -9 — the kernel closes the socket — or a network partition
once TCP keepalives give up), and a restart on any host can take it at once.
"""

from __future__ import annotations

import hashlib
from typing import Any


class ServerLockHeld(RuntimeError):
    """Another session (another engine, possibly on another host) holds the store's advisory lock."""


def advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a lock name (e.g. 'quantdesk.engine')."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class ServerLock:
    """Holds `pg_try_advisory_lock(key)` on its own autocommit psycopg connection until released."""

    def __init__(self, url: str, name: str = "quantdesk.engine") -> None:
        self.url = url
        self.key = advisory_key(name)
        self._conn: Any = None

    def acquire(self) -> None:
        """Take the lock or raise ServerLockHeld naming the holder's backend pid and client address."""
        import psycopg

        conninfo = self.url.replace("postgresql+psycopg://", "postgresql://", 1)
        conn = psycopg.connect(conninfo, autocommit=True, application_name="quantdesk-engine-lock",
                               keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]
        if not got:
            where = self._holder(conn)
            conn.close()
            raise ServerLockHeld(f"another engine holds this store's lock ({where})")
        self._conn = conn

    def check(self) -> bool:
        """Verify the lock's session is alive; when the server ended it (pg_terminate_backend, a restart, a failover)
        the lock went with it: take it again on a new session. Returns True when it had to be re-taken. Raises
        ServerLockHeld when another engine took it meanwhile (this engine must stop), and psycopg's
        OperationalError when the server cannot be reached."""
        import psycopg

        if self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
            return False
        except psycopg.Error:
            try:
                self._conn.close()
            finally:
                self._conn = None
        self.acquire()
        return True

    def holder(self) -> str | None:
        """Who holds the lock now ("server backend PID from ADDR"), or None when it is free; takes nothing. Lets a
        front end on any host or working folder see a running engine that its own lock file cannot show."""
        import psycopg

        conninfo = self.url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(conninfo, autocommit=True, application_name="quantdesk-lock-probe") as conn:
            if conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]:
                conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
                return None
            return self._holder(conn)

    def _holder(self, conn: Any) -> str:
        unsigned = self.key & 0xFFFF_FFFF_FFFF_FFFF  # pg_locks shows a bigint key as two unsigned oids
        row = conn.execute(
            "SELECT a.pid, a.client_addr FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::oid AND l.objid = %s::oid "
            "AND l.objsubid = 1", (unsigned >> 32, unsigned & 0xFFFF_FFFF)).fetchone()
        return f"server backend {row[0]} from {row[1] or 'a local socket'}" if row else "another session"

    def release(self) -> None:
        """Drop the lock and close its connection."""
        if self._conn is None:
            return
        try:
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        finally:
            self._conn.close()
            self._conn = None
