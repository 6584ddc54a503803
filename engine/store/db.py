"""Opening state.db: SQLAlchemy engine with WAL, foreign keys, busy timeout, 0600 files and forward migrations."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.pool import NullPool

from engine.store.schema import metadata


class StoreError(RuntimeError):
    """The state store cannot be opened or is at an unknown schema version."""


def _create_all(conn: Connection) -> None:
    metadata.create_all(conn)


def _trial_identity(conn: Connection) -> None:
    """trials gain trial_key (content identity), family and lookahead_ok (issue 15); no-op where create_all has them."""
    from sqlalchemy import inspect

    have = {c["name"] for c in inspect(conn).get_columns("trials")}
    for name, kind in (("trial_key", "VARCHAR(64)"), ("family", "VARCHAR(128)"), ("lookahead_ok", "INTEGER")):
        if name not in have:
            conn.exec_driver_sql(f"ALTER TABLE trials ADD COLUMN {name} {kind}")
    indexes = {i["name"] for i in inspect(conn).get_indexes("trials")}
    if "ux_trials_key" not in indexes:
        conn.exec_driver_sql("CREATE UNIQUE INDEX ux_trials_key ON trials (trial_key)")
    if "ix_trials_family" not in indexes:
        conn.exec_driver_sql("CREATE INDEX ix_trials_family ON trials (family)")


def _orders_venue(conn: Connection) -> None:
    """orders.venue (paper | exchange): brokers by stage share one orders table, each must see only its own orders.
    Rows written before it went to the exchange when the exchange gave them an id (or reconciliation adopted them)."""
    from sqlalchemy import inspect

    if "venue" in {c["name"] for c in inspect(conn).get_columns("orders")}:
        return  # a fresh database got the column from _create_all
    conn.execute(text("ALTER TABLE orders ADD COLUMN venue VARCHAR(12) NOT NULL DEFAULT 'paper'"))
    conn.execute(text("UPDATE orders SET venue = 'exchange' WHERE exchange_order_id IS NOT NULL "
                      "OR client_order_id LIKE 'qd-recon-%'"))


def _alert_delivery(conn: Connection) -> None:
    """v4 (issue 14): alert dedup columns on `alerts`, and the notify_events / alert_outbox / alert_attempts /
    alert_escalations tables. Idempotent, because a fresh store already got them from `_create_all`."""
    from sqlalchemy import inspect

    from engine.store.schema import alert_attempts, alert_escalations, alert_outbox, notify_events

    have = {c["name"] for c in inspect(conn).get_columns("alerts")}
    for name, ddl in (("count", "INTEGER NOT NULL DEFAULT 1"), ("last_ts", "BIGINT"), ("dedup_key", "VARCHAR(40)")):
        if name not in have:
            conn.execute(text(f"ALTER TABLE alerts ADD COLUMN {name} {ddl}"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_alerts_dedup ON alerts (dedup_key, acked)"))
    for table in (notify_events, alert_outbox, alert_attempts, alert_escalations):
        table.create(conn, checkfirst=True)


def _fills_fee_base(conn: Connection) -> None:
    """fills.fee_base: a spot buy whose commission is paid in the base asset holds less than it bought; without it
    every such buy leaves state.db a fee above the exchange and reconciliation cries wolf."""
    from sqlalchemy import inspect

    if "fee_base" not in {c["name"] for c in inspect(conn).get_columns("fills")}:
        conn.execute(text("ALTER TABLE fills ADD COLUMN fee_base FLOAT NOT NULL DEFAULT 0"))



def _instance_lineage(conn: Connection) -> None:
    """strategy_instances.role / parent_id / origin_run_id (issue 16): a challenger started by re-optimisation names
    its champion and the walk-forward run that produced it; every existing instance is a champion."""
    from sqlalchemy import inspect

    have = {c["name"] for c in inspect(conn).get_columns("strategy_instances")}
    for name, ddl in (("role", "VARCHAR(12) NOT NULL DEFAULT 'champion'"), ("parent_id", "VARCHAR(64)"),
                      ("origin_run_id", "INTEGER")):
        if name not in have:
            conn.execute(text(f"ALTER TABLE strategy_instances ADD COLUMN {name} {ddl}"))



def _several_engines(conn: Connection) -> None:
    """v7 (issue 18): engines by name on one desk. strategy_instances.engine (existing instances: "main"),
    commands.target / scope (which engine consumes a row, which trading-state scope it moves) and engine_status.name
    (one heartbeat row per engine; the existing row is main's). Idempotent: a fresh store got them from create_all."""
    from sqlalchemy import inspect

    for table, name, ddl in (("strategy_instances", "engine", "VARCHAR(64) NOT NULL DEFAULT 'main'"),
                             ("commands", "target", "VARCHAR(64)"),
                             ("commands", "scope", "VARCHAR(80) NOT NULL DEFAULT 'global'"),
                             ("engine_status", "name", "VARCHAR(64) NOT NULL DEFAULT 'main'")):
        if name not in {c["name"] for c in inspect(conn).get_columns(table)}:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}"))
    conn.execute(text("CREATE UNIQUE INDEX IF NOT EXISTS ux_engine_status_name ON engine_status (name)"))


def _alert_engine(conn: Connection) -> None:
    """v8 (issue 18): alerts.engine, the engine whose alert it is (NULL: desk-wide), so an unacknowledged critical
    alert's escalation halts that engine, not the whole desk. Existing alerts stay desk-wide."""
    from sqlalchemy import inspect

    if "engine" not in {c["name"] for c in inspect(conn).get_columns("alerts")}:
        conn.execute(text("ALTER TABLE alerts ADD COLUMN engine VARCHAR(64)"))


def _desk_duties(conn: Connection) -> None:
    """v9 (issue 18): desk_duties, the claim rows that make backup and retention run once per desk, not once per
    engine (engine/store/duties.py)."""
    from engine.store.schema import desk_duties

    desk_duties.create(conn, checkfirst=True)


# Forward migrations: MIGRATIONS[i] takes the schema from version i to i+1. Never edit a released step; append one.
MIGRATIONS: list[Callable[[Connection], None]] = [_create_all, _trial_identity, _orders_venue, _alert_delivery,
                                                  _fills_fee_base, _instance_lineage, _several_engines, _alert_engine,
                                                  _desk_duties]
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


def probe_version(path: Path) -> int:
    """The schema version of an existing SQLite file, read without changing it (read-only, no WAL switch)."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
        try:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error as exc:
        from engine.store.health import describe

        raise StoreError(describe(path, exc)) from exc


def _touch_private(path: Path) -> None:
    """Create the database file (and its WAL companions when present) with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if candidate.exists() and candidate.stat().st_mode & 0o077:
            try:
                os.chmod(candidate, 0o600)
            except OSError as exc:  # not ours or immutable: writes will tell; `quantdesk doctor` shows the mode
                raise StoreError(f"{candidate}: cannot restrict its mode to 0600 ({exc.strerror}); "
                                 "run `quantdesk doctor`") from exc


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a file, or None when it does not exist: tells a replaced file from the one opened."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class PinnedFile:
    """Opens SQLite connections only to the database file the store first opened (same device and inode).

    Why: when state.db is replaced under a running engine, a connection opened on the new file runs WAL recovery and
    truncates the shared -shm file that the engine's other connections have mmapped: the process dies by SIGBUS before
    its storage guard can halt it. Refusing the open (checked before and after it, so the new connection's file is
    the pinned one) turns that into an ordinary storage fault the guard handles."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.identity = file_identity(path)

    def connect(self, timeout: float) -> Any:
        """A sqlite3 connection to the pinned file, or sqlite3.OperationalError when the path is another file now."""
        import sqlite3

        self._check()
        conn = sqlite3.connect(str(self.path), timeout=timeout, check_same_thread=False)
        try:
            self._check()
        except sqlite3.OperationalError:
            conn.close()  # nothing read yet: closing a connection that never touched the -shm is harmless
            raise
        return conn

    def _check(self) -> None:
        import sqlite3

        now = file_identity(self.path)
        if self.identity is None:
            self.identity = now
        elif now != self.identity:
            what = "removed" if now is None else "replaced"
            raise sqlite3.OperationalError(f"{self.path.name} was {what} under the running engine; "
                                           "no new connection is opened on it")


class Store:
    """A handle on state.db (or a server database): SQLAlchemy engine plus a fast DB-API bulk path."""

    def __init__(self, url: str, *, readonly: bool = False, busy_timeout_ms: int = 5000, migrate: bool = True,
                 create: bool = True) -> None:
        self.url = url
        self.readonly = readonly
        self.path = sqlite_path(url)
        self._lock = threading.RLock()
        if self.path is not None:
            if (readonly or not create) and not self.path.exists():
                raise StoreError(f"state store not found: {self.path} (check --state / store.path; "
                                 "`quantdesk init` creates a new one)")
            if readonly:
                engine_url = f"sqlite:///file:{self.path}?mode=ro&uri=true"
            else:
                _touch_private(self.path)
                engine_url = f"sqlite:///{self.path}"
            if readonly:
                self.engine: Engine = create_engine(
                    engine_url, poolclass=NullPool,
                    connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000})
            else:
                pinned = PinnedFile(self.path)
                self.engine = create_engine(
                    engine_url, pool_size=16, max_overflow=16,
                    creator=lambda: pinned.connect(timeout=busy_timeout_ms / 1000))
            self._install_sqlite_pragmas(busy_timeout_ms)
        else:
            # a dead server must fail a connect in seconds (the storage guard counts failures), not in TCP's minutes
            timeout = {"connect_timeout": 10} if url.startswith("postgresql") else {}  # sqlite:// (memory) takes none
            self.engine = create_engine(url, pool_pre_ping=True, connect_args=timeout)
        if not create and self.path is not None and probe_version(self.path) == 0:
            self.engine.dispose()
            raise StoreError(f"{self.path}: not a quantdesk store (schema version 0); check --state / store.path")
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


def open_existing(url_or_path: str | os.PathLike[str], *, busy_timeout_ms: int = 5000) -> Store:
    """Open a writable store that must already exist (control commands, status): a missing path or a file that is
    not a quantdesk store is a StoreError naming it, never a new empty desk."""
    return Store(_as_url(url_or_path), busy_timeout_ms=busy_timeout_ms, create=False)


def open_readonly(url_or_path: str | os.PathLike[str], *, busy_timeout_ms: int = 2000) -> Store:
    """Open a read-only store for front ends: they read state, the engine owns writes."""
    return Store(_as_url(url_or_path), readonly=True, busy_timeout_ms=busy_timeout_ms, migrate=False)


def _as_url(url_or_path: str | os.PathLike[str]) -> str:
    from engine.store.urls import StoreTargetError, store_url_for

    try:
        return store_url_for(url_or_path)
    except StoreTargetError as exc:
        raise StoreError(str(exc)) from exc
