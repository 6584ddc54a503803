"""Opening state.db: SQLAlchemy engine with WAL, foreign keys, busy timeout, 0600 files and forward migrations."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from engine.store.schema import metadata


class StoreError(RuntimeError):
    """The state store cannot be opened or is at an unknown schema version."""


def _create_all(conn: Connection) -> None:
    metadata.create_all(conn)


# Forward migrations: MIGRATIONS[i] takes the schema from version i to i+1. Never edit a released step; append one.
MIGRATIONS: list[Callable[[Connection], None]] = [_create_all]
SCHEMA_VERSION = len(MIGRATIONS)
MIGRATION_LOCK_KEY = 0x51D35C  # PostgreSQL advisory-lock key that serialises quantdesk migrations on one database


def sqlite_path(url: str) -> Path | None:
    """The file path of a sqlite URL, or None for other dialects or in-memory databases."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    path = path.split("?", 1)[0]
    if path.startswith("file:"):
        path = path[5:]
    return Path(path) if path and path != ":memory:" else None


def _touch_private(path: Path) -> None:
    """Create the database file (and its WAL companions when present) with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if candidate.exists():
            os.chmod(candidate, 0o600)


class Store:
    """A handle on state.db (or a server database): SQLAlchemy engine plus a fast DB-API bulk path."""

    def __init__(self, url: str, *, readonly: bool = False, busy_timeout_ms: int = 5000, migrate: bool = True) -> None:
        self.url = url
        self.readonly = readonly
        self.path = sqlite_path(url)
        self._lock = threading.RLock()
        if self.path is not None:
            if readonly:
                if not self.path.exists():
                    raise StoreError(f"state store not found: {self.path}")
                engine_url = f"sqlite:///file:{self.path}?mode=ro&uri=true"
            else:
                _touch_private(self.path)
                engine_url = f"sqlite:///{self.path}"
            self.engine: Engine = create_engine(
                engine_url, poolclass=NullPool if readonly else None,
                connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000})
            self._install_sqlite_pragmas(busy_timeout_ms)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        if migrate and not readonly:
            self.migrate()
            if self.path is not None:
                _touch_private(self.path)
        elif readonly:
            version = self.schema_version()
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: schema version {version} is newer than this quantdesk ({SCHEMA_VERSION})")

    @property
    def is_sqlite(self) -> bool:
        """True when the backing database is SQLite."""
        return self.engine.dialect.name == "sqlite"

    def _install_sqlite_pragmas(self, busy_timeout_ms: int) -> None:
        readonly = self.readonly

        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if not readonly:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.close()

    # --- schema -------------------------------------------------------------------------------------------------
    def schema_version(self) -> int:
        """The schema version recorded in the database (PRAGMA user_version on SQLite)."""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                return int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)
            conn.execute(text("CREATE TABLE IF NOT EXISTS quantdesk_meta (k VARCHAR(32) PRIMARY KEY, v INTEGER)"))
            conn.commit()
            row = conn.execute(text("SELECT v FROM quantdesk_meta WHERE k = 'schema_version'")).scalar()
            return int(row or 0)

    def _set_version(self, conn: Connection, version: int) -> None:
        if self.is_sqlite:
            conn.exec_driver_sql(f"PRAGMA user_version = {int(version)}")
        else:
            conn.execute(text("DELETE FROM quantdesk_meta WHERE k = 'schema_version'"))
            conn.execute(text("INSERT INTO quantdesk_meta (k, v) VALUES ('schema_version', :v)"), {"v": version})

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """Serialise migrations across processes (an engine and a console opening a fresh store together): a lock
        file beside a SQLite database, a session advisory lock on PostgreSQL (held on its own connection)."""
        if self.path is None:
            if self.engine.dialect.name != "postgresql":
                yield
                return
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
                    conn.commit()
            return
        fd = os.open(f"{self.path}.migrate-lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def migrate(self) -> int:
        """Apply every forward migration past the recorded version, under a cross-process lock; returns it."""
        with self._migration_lock():
            return self._migrate_locked()

    def _migrate_locked(self) -> int:
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(f"{self.url}: schema version {current} is newer than this quantdesk ({SCHEMA_VERSION})")
        for version in range(current, SCHEMA_VERSION):
            with self.engine.begin() as conn:
                MIGRATIONS[version](conn)
                self._set_version(conn, version + 1)
        return SCHEMA_VERSION

    # --- access -------------------------------------------------------------------------------------------------
    def connect(self) -> contextlib.AbstractContextManager[Connection]:
        """A connection for reads (and explicit commits)."""
        return self.engine.connect()

    def begin(self) -> contextlib.AbstractContextManager[Connection]:
        """A connection inside one transaction, committed on success."""
        return self.engine.begin()

    @contextlib.contextmanager
    def raw(self) -> Iterator[Any]:
        """A raw DB-API connection inside one transaction (the fast bulk path)."""
        if self.readonly:
            raise StoreError("store is read-only")
        conn = self.engine.raw_connection()
        try:
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run one parameterised statement over many rows in one transaction; returns rows changed."""
        placeholder_sql = sql if self.is_sqlite else sql.replace("?", "%s")
        with self.raw() as conn:
            cur = conn.cursor()
            cur.executemany(placeholder_sql, list(rows))
            count = cur.rowcount
            cur.close()
        return int(count if count is not None and count >= 0 else 0)

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def open_store(url_or_path: str | os.PathLike[str], *, busy_timeout_ms: int = 5000) -> Store:
    """Open (creating and migrating if needed) a writable store from a SQLAlchemy URL or a SQLite path."""
    return Store(_as_url(url_or_path), busy_timeout_ms=busy_timeout_ms)


def open_readonly(url_or_path: str | os.PathLike[str], *, busy_timeout_ms: int = 2000) -> Store:
    """Open a read-only store for front ends: they read state, the engine owns writes."""
    return Store(_as_url(url_or_path), readonly=True, busy_timeout_ms=busy_timeout_ms, migrate=False)


def _as_url(url_or_path: str | os.PathLike[str]) -> str:
    from engine.store.urls import StoreTargetError, store_url_for

    try:
        return store_url_for(url_or_path)
    except StoreTargetError as exc:
        raise StoreError(str(exc)) from exc
