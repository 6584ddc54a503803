"""One engine of each name per store: an flock()ed lock file bound to the database itself, `state.db.lock` beside
state.db for the engine named main (as before engines had names), `state.db.<name>.lock` for any other.

The lock's place depends only on the database's resolved path, never on `runtime.run_dir` or the working folder, so
no second engine can start on one store by any configuration, and every front end finds the live engine (its pid is
written inside the lock file) whatever its own config. A server database (PostgreSQL) has no file to sit beside: its
lock lives in `runtime.run_dir` (default: the working folder), named after the URL. The kernel drops an flock when
its process dies (even by SIGKILL), so a stale lock file never blocks a restart. The engine also records a lease
(pid, host, boot id) in engine_status, renewed by its heartbeat.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
from pathlib import Path

from engine.config import Settings
from engine.store.db import sqlite_path
from engine.store.engines import MAIN
from engine.store.server_lock import ServerLock, ServerLockHeld
from engine.store.urls import is_postgres_url, redact

BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


class EngineLockedError(RuntimeError):
    """Another engine already holds the lock for this state store."""


def boot_id() -> str:
    """This host's boot id (Linux), so a lease from before a reboot is never mistaken for a live engine."""
    try:
        return BOOT_ID_FILE.read_text().strip()
    except OSError:
        return ""


def lock_path(settings: Settings, name: str | None = None) -> Path:
    """Where engine `name`'s lock file lives (default: the configured engine): beside the SQLite database, whatever
    run_dir says; `state.db.lock` for main, `state.db.<name>.lock` for another engine of the desk."""
    name = settings.engine.name if name is None else name
    suffix = "" if name == MAIN else f".{name}"
    db = sqlite_path(settings.store_url())
    if db is not None:
        return db.with_name(f"{db.name}{suffix}.lock")
    base = Path(settings.runtime.run_dir).expanduser() if settings.runtime.run_dir else Path.cwd()
    digest = hashlib.sha256(settings.store_url().encode()).hexdigest()[:16]
    return base / f"quantdesk-{digest}{suffix}.engine.lock"


def server_lock_name(name: str) -> str:
    """The advisory-lock name of engine `name` on a server store (main keeps the one it always had)."""
    return "quantdesk.engine" if name == MAIN else f"quantdesk.engine.{name}"


class EngineLock:
    """Holds the exclusive lock and the pid written inside it; on a PostgreSQL store also the store's advisory lock,
    so engines on other hosts (whose lock files this host cannot see) are excluded too."""

    def __init__(self, path: Path, server_url: str | None = None, name: str = MAIN) -> None:
        self.path = path
        self.name = name
        self._fd: int | None = None
        self._server: ServerLock | None = ServerLock(server_url, server_lock_name(name)) if server_url else None

    def acquire(self) -> None:
        """Take the lock or raise EngineLockedError naming the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode().strip() or "?"
            os.close(fd)
            named = "another engine" if self.name == MAIN else f"another engine named {self.name!r}"
            raise EngineLockedError(f"{named} (pid {holder}) is running on this state store ({self.path})")
        if self._server is not None:
            try:
                self._server.acquire()
            except ServerLockHeld as exc:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                named = "" if self.name == MAIN else f" (engine {self.name!r})"
                raise EngineLockedError(f"{exc}{named} on {redact(self._server.url)}") from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def check(self) -> bool:
        """On a server store, verify the advisory lock's session and re-take the lock when the server ended it (True
        then); raises EngineLockedError when another engine holds it now. A lock file cannot be lost: False."""
        if self._server is None:
            return False
        try:
            return self._server.check()
        except ServerLockHeld as exc:
            raise EngineLockedError(f"the desk's lock was lost and {exc} now; this engine must stop") from exc

    def release(self) -> None:
        """Drop the lock (the file stays: unlinking it would let a racing engine lock a different inode)."""
        if self._server is not None:
            self._server.release()
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def engine_lock(settings: Settings) -> EngineLock:
    """The configured engine's lock for this store: the lock file, plus the advisory lock on a PostgreSQL store."""
    url = settings.store_url()
    return EngineLock(lock_path(settings), server_url=url if is_postgres_url(url) else None,
                      name=settings.engine.name)


def read_pid_at(path: Path) -> int | None:
    """The pid of the engine holding the lock file at `path`, or None when nothing holds it."""
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


def server_holder(settings: Settings, name: str | None = None) -> str | None:
    """On a PostgreSQL store, who holds engine `name`'s advisory lock (any host, any run dir), else None."""
    url = settings.store_url()
    if not is_postgres_url(url):
        return None
    return ServerLock(url, server_lock_name(settings.engine.name if name is None else name)).holder()


def read_pid(settings: Settings, name: str | None = None) -> int | None:
    """The pid of a running engine (`name`, default the configured one) holding its lock, or None."""
    return read_pid_at(lock_path(settings, name))


def live_engine_pids(settings: Settings) -> dict[str, int]:
    """Every engine of this desk that holds its lock on this host, by name -> pid (its lock files are found beside
    the SQLite database, or in run_dir for a server store), so a front end that cannot write the store can still
    signal each of them."""
    main = lock_path(settings, MAIN)
    suffix = ".engine.lock" if main.name.endswith(".engine.lock") else ".lock"
    prefix = main.name[:-len(suffix)]
    found: dict[str, int] = {}
    if not main.parent.is_dir():
        return found
    for path in sorted(main.parent.glob(f"{glob.escape(prefix)}*{suffix}")):
        middle = path.name[len(prefix):-len(suffix)]
        if middle and not middle.startswith("."):
            continue  # another file that happens to share the prefix
        pid = read_pid_at(path)
        if pid is not None:
            found[middle[1:] or MAIN] = pid
    return found
