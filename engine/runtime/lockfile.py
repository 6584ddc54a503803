"""One engine per state.db: an flock()ed pid file beside the database (or in runtime.run_dir).

The kernel drops an flock when its process dies (even by SIGKILL), so a stale pid file never blocks a restart.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from engine.config import Settings
from engine.store.db import sqlite_path


class EngineLockedError(RuntimeError):
    """Another engine already holds the lock for this state store."""


def lock_path(settings: Settings) -> Path:
    """Where the engine's pid/lock file lives for these settings."""
    db = sqlite_path(settings.store_url())
    base = Path(settings.runtime.run_dir).expanduser() if settings.runtime.run_dir else (
        db.parent if db is not None else Path.cwd())
    stem = db.name if db is not None else "quantdesk"
    return base / f"{stem}.engine.pid"


class EngineLock:
    """Holds the exclusive lock and the pid written inside it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise EngineLockedError naming the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode().strip() or "?"
            os.close(fd)
            raise EngineLockedError(f"another engine (pid {holder}) is running on this state store ({self.path})")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock and remove the pid file."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def read_pid(settings: Settings) -> int | None:
    """The pid of a running engine holding the lock, or None when nothing holds it."""
    path = lock_path(settings)
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode().strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
