"""Consistent copies of state.db while the engine runs, their retention, and recovery into a new file.

`backup_store` uses SQLite's online backup API from a read-only connection in one step: the copy is one read
transaction (a consistent snapshot in WAL mode) and never blocks the engine's writers. The copy is written to a
temporary name, checked (`PRAGMA quick_check`), fsynced and renamed, mode 0600. `recover_from_backup` restores the
newest backup that passes an integrity check into a NEW file, never over the damaged store.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from engine.store.db import StoreError, sqlite_path

BACKUP_PREFIX = "state-"
BACKUP_SUFFIX = ".db"


@dataclass(frozen=True)
class BackupInfo:
    """One backup file: where, when (epoch ms from its mtime), its size and whether it passes an integrity check."""

    path: Path
    created_ms: int
    size: int


def backup_dir_for(db: Path, configured: str = "") -> Path:
    """Where backups of `db` go: store.backup_dir when set, else a `backups` folder beside the database."""
    return Path(configured).expanduser() if configured else db.parent / "backups"


def _db_of(url_or_path: str | os.PathLike[str]) -> Path:
    text = os.fspath(url_or_path)
    path = sqlite_path(text) if "://" in text else Path(text).expanduser().resolve()
    if path is None:
        raise StoreError(f"backup: {text.split('@')[-1]} is not a SQLite store; back up a server database with its "
                         "own tools (pg_dump)")
    if not path.exists():
        raise StoreError(f"state store not found: {path}")
    return path


def integrity(path: Path, full: bool = False) -> str:
    """'ok' or the first problem SQLite reports for the file at `path`, read without changing it."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        try:
            return str(conn.execute(f"PRAGMA {'integrity_check' if full else 'quick_check'}").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"error: {exc}"


def backup_store(url_or_path: str | os.PathLike[str], out: Path | None = None, backup_dir: str = "") -> BackupInfo:
    """Copy the live store to `out` (default: a time-stamped file in the backup folder); returns the new backup."""
    db = _db_of(url_or_path)
    if out is None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        out = backup_dir_for(db, backup_dir) / f"{BACKUP_PREFIX}{stamp}{BACKUP_SUFFIX}"
    out = out.expanduser().resolve()
    if out == db:
        raise StoreError(f"backup: the output {out} is the store itself")
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    try:
        src = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30.0)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)  # pages=-1: one step, one read transaction, a consistent snapshot
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
            src.close()
        problem = integrity(tmp)
        if problem != "ok":
            raise StoreError(f"backup of {db} failed its check ({problem}); run `quantdesk doctor`")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except sqlite3.Error as exc:
        from engine.store.health import describe

        raise StoreError(describe(db, exc)) from exc
    finally:
        tmp.unlink(missing_ok=True)
    st = out.stat()
    return BackupInfo(out, int(st.st_mtime * 1000), st.st_size)


def list_backups(folder: Path) -> list[BackupInfo]:
    """Backups in `folder`, newest first (by the time stamp in their name, which sorts as time)."""
    if not folder.is_dir():
        return []
    found = []
    for p in folder.glob(f"{BACKUP_PREFIX}*{BACKUP_SUFFIX}"):
        st = p.stat()
        found.append(BackupInfo(p, int(st.st_mtime * 1000), st.st_size))
    return sorted(found, key=lambda b: (b.path.name, b.created_ms), reverse=True)


def prune_backups(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups (and stale .tmp files of interrupted ones); returns what went."""
    gone = [b.path for b in list_backups(folder)[max(1, keep):]]
    gone += list(folder.glob(f".{BACKUP_PREFIX}*.tmp")) if folder.is_dir() else []
    for path in gone:
        path.unlink(missing_ok=True)
    return gone


def newest_good_backup(folder: Path) -> BackupInfo | None:
    """The newest backup that passes a full integrity check, or None."""
    for b in list_backups(folder):
        if integrity(b.path, full=True) == "ok":
            return b
    return None


def recover_from_backup(db: Path, folder: Path, out: Path | None = None) -> tuple[Path, BackupInfo]:
    """Copy the newest good backup to a NEW file beside `db` (or `out`); the damaged store is never touched."""
    good = newest_good_backup(folder)
    if good is None:
        raise StoreError(f"no backup in {folder} passes an integrity check; nothing to recover from")
    target = out or db.with_name(f"{db.stem}.recovered-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}{db.suffix}")
    target = target.expanduser().resolve()
    if target.exists() or target == db.resolve():
        raise StoreError(f"recover: {target} already exists; recovery only ever writes a new file")
    src = sqlite3.connect(f"file:{good.path}?mode=ro", uri=True)
    fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    return target, good


def scheduled_backup(url_or_path: str | os.PathLike[str], backup_dir: str, keep: int) -> dict[str, object]:
    """The engine's backup job: one consistent copy, then retention (newest `keep` kept)."""
    made = backup_store(url_or_path, backup_dir=backup_dir)
    pruned = prune_backups(made.path.parent, keep)
    return {"backup": str(made.path), "bytes": made.size, "pruned": len(pruned)}
