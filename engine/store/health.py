"""What went wrong with a state store, in one line: classify SQLite/driver errors into causes an operator can act on.

Front ends and the engine turn any database error into `describe(path, exc)` — the path, the cause and a pointer to
`quantdesk doctor` — instead of a 100-line traceback. `is_storage_fault` tells a broken or full disk (the engine must
stop) from ordinary contention (retry).
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

# (substring of the driver's message, cause shown to the operator, whether it is a storage fault)
_CAUSES: tuple[tuple[str, str, bool], ...] = (
    ("file is not a database", "the file is corrupt or not a database", True),
    ("database disk image is malformed", "the database is corrupt (malformed)", True),
    ("disk i/o error", "disk I/O error (a damaged file, a removed -wal file or a failing disk)", True),
    ("database or disk is full", "the disk is full (or a file-size limit was reached)", True),
    ("file too large", "a file-size limit was reached", True),
    ("readonly database", "the store is read-only (permissions, a read-only mount or an immutable file)", True),
    ("unable to open database file", "the file cannot be opened (permissions or a missing folder)", True),
    ("under the running engine", "the database file was removed or replaced under the running engine", True),
    # a database server (PostgreSQL) that went away: counted like a storage fault, so only a persistent outage
    # (FAULT_STREAK heartbeats in a row) stops the engine; one ended session reconnects at the next checkout
    ("connection refused", "the database server refuses connections (stopped or unreachable)", True),
    ("the database system is shutting down", "the database server is shutting down", True),
    ("the database system is starting up", "the database server is starting up", True),
    ("terminating connection due to administrator command", "the database server ended the session", True),
    ("server closed the connection unexpectedly", "the database server closed the connection", True),
    ("consuming input failed", "the database server connection was lost", True),
    ("the connection is closed", "the database server connection was lost", True),
    ("connection timeout expired", "the database server does not answer (connection timeout)", True),
    ("database is locked", "the database is locked by another process", False),
    ("database table is locked", "a table is locked by another connection", False),
)
FAULT_HINT = "run `quantdesk doctor`"


def cause_of(exc: BaseException) -> tuple[str, bool]:
    """(cause in words, is a storage fault) for a database error; unknown errors keep their own message."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    for needle, cause, fault in _CAUSES:
        if needle in text:
            return cause, fault
    return str(getattr(exc, "orig", None) or exc).splitlines()[0] if str(exc) else type(exc).__name__, False


def is_storage_fault(exc: BaseException) -> bool:
    """True when `exc` means the store cannot be written any more (corrupt, I/O error, full, read-only)."""
    return cause_of(exc)[1]


def is_database_error(exc: BaseException) -> bool:
    """True for any driver-level database error (sqlite3, psycopg, or SQLAlchemy's wrapper of one)."""
    if isinstance(exc, sqlite3.Error):
        return True
    psycopg = sys.modules.get("psycopg")  # loaded only by a server store; never imported here for SQLite
    if psycopg is not None and isinstance(exc, psycopg.Error):
        return True
    try:
        from sqlalchemy.exc import DBAPIError
    except ImportError:  # pragma: no cover - sqlalchemy is a core dependency
        return False
    return isinstance(exc, DBAPIError)


def describe(where: str | Path | None, exc: BaseException) -> str:
    """One line: the store, the cause and what to do, e.g. '/x/state.db: the disk is full; run `quantdesk doctor`'."""
    cause, _ = cause_of(exc)
    return f"{where or 'state store'}: {cause}; {FAULT_HINT}"
