"""`quantdesk doctor`'s examination of a SQLite state store, done without changing a byte of it.

Checks: the file and its header, permissions (owner and mode of the file and its folder), integrity
(`PRAGMA integrity_check` on a read-only connection), WAL state (-wal and -shm present, -wal size), schema version,
the trading state, and the newest backup with its age. The lock holder is added by the caller (the runtime owns it).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from engine.store.backup import backup_dir_for, integrity, list_backups
from engine.store.db import SCHEMA_VERSION

SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report: what was checked, ok | warn | fail, and what was seen."""

    check: str
    status: str
    detail: str


def _ro(db: Path) -> sqlite3.Connection:
    """A read-only connection that never creates or changes a file (immutable when there is no WAL to read)."""
    wal = Path(f"{db}-wal")
    mode = "mode=ro" if wal.exists() else "immutable=1"
    return sqlite3.connect(f"file:{db}?{mode}", uri=True, timeout=2.0)


def _permissions(db: Path) -> Finding:
    st, dst = db.stat(), db.parent.stat()
    mode, dmode = stat.S_IMODE(st.st_mode), stat.S_IMODE(dst.st_mode)
    problems = []
    if st.st_uid != os.geteuid():
        problems.append(f"owned by uid {st.st_uid}, you are {os.geteuid()}")
    if mode & 0o077:
        problems.append(f"mode {mode:04o} lets others read it (want 0600)")
    if not os.access(db, os.W_OK) or not os.access(db.parent, os.W_OK):
        problems.append("not writable by you (file or folder)")
    detail = f"file {mode:04o}, folder {dmode:04o}" + (f": {'; '.join(problems)}" if problems else "")
    return Finding("permissions", "warn" if problems else "ok", detail)


def _schema_and_state(db: Path) -> list[Finding]:
    try:
        conn = _ro(db)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            row = conn.execute("SELECT state, reason FROM trading_state WHERE scope = 'global'").fetchone() \
                if version else None
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return [Finding("schema", "fail", f"cannot read: {exc}")]
    if version == 0:
        return [Finding("schema", "fail", "version 0: not a quantdesk store")]
    status = "ok" if version == SCHEMA_VERSION else ("fail" if version > SCHEMA_VERSION else "warn")
    found = [Finding("schema", status, f"version {version} (this quantdesk: {SCHEMA_VERSION})")]
    found.append(Finding("trading state", "ok", f"{row[0]} ({row[1]})" if row else "ACTIVE (never set)"))
    return found


def _backups(db: Path, backup_dir: str, interval_hours: float) -> Finding:
    folder = backup_dir_for(db, backup_dir)
    backups = list_backups(folder)
    if not backups:
        return Finding("last backup", "warn", f"none in {folder} (run `quantdesk backup`)")
    newest = backups[0]
    age_h = (time.time() * 1000 - newest.created_ms) / 3_600_000
    late = interval_hours > 0 and age_h > 2 * interval_hours
    return Finding("last backup", "warn" if late else "ok",
                   f"{newest.path} ({age_h:.1f} h old, {newest.size:,} bytes, {len(backups)} kept)")


def examine(db: Path, backup_dir: str = "", interval_hours: float = 0.0) -> list[Finding]:
    """Every check on the store at `db`, in report order; nothing is written."""
    if not db.exists():
        return [Finding("file", "fail", f"{db} does not exist")]
    found = [Finding("file", "ok", f"{db} ({db.stat().st_size:,} bytes)")]
    with open(db, "rb") as fh:
        head = fh.read(16)
    if head != SQLITE_MAGIC:
        found.append(Finding("header", "fail", f"not a SQLite header ({head[:16]!r}): the file is damaged"))
    found.append(_permissions(db))
    wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
    wal_detail = f"-wal {wal.stat().st_size:,} bytes" if wal.exists() else "no -wal (clean shutdown or never opened)"
    wal_status = "warn" if shm.exists() and not wal.exists() else "ok"
    if wal_status == "warn":
        wal_detail += "; -shm without -wal (a removed -wal?)"
    found.append(Finding("wal", wal_status, wal_detail))
    problem = integrity(db, full=True) if head == SQLITE_MAGIC else "header damaged"
    found.append(Finding("integrity", "ok" if problem == "ok" else "fail", problem))
    if problem == "ok":
        found.extend(_schema_and_state(db))
    found.append(_backups(db, backup_dir, interval_hours))
    return found
