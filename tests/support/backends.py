"""Backend-neutral helpers for tests that run on a SQLite file and on a PostgreSQL database (the `state_url` and
`store` fixtures): raw SQL with `?` placeholders on either driver, waiting for an engine to have created its store,
and the explicit skip for tests about a SQLite file."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import pytest


def sqlite_only(store_backend: str, why: str) -> None:
    """Skip this instance on PostgreSQL, saying why the test is about a SQLite file only."""
    if store_backend != "sqlite":
        pytest.skip(f"about a SQLite file only: {why}")


class RawSQL:
    """A DB-API connection that takes sqlite3-style SQL (`?` placeholders) on both drivers: on psycopg, `%` is
    escaped and `?` becomes `%s`."""

    def __init__(self, conn: Any, sqlite: bool) -> None:
        self.conn = conn
        self.sqlite = sqlite

    def _sql(self, sql: str, params: Sequence[Any] | None) -> tuple[str, Any]:
        if self.sqlite:
            return sql, tuple(params or ())
        if not params:
            return sql, None
        return sql.replace("%", "%%").replace("?", "%s"), tuple(params)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """Run one statement; returns the driver's cursor (fetchone/fetchall/rowcount)."""
        sql, args = self._sql(sql, params)
        if args is None:
            return self.conn.execute(sql)
        return self.conn.execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        """Run one statement over many rows."""
        sql, _ = self._sql(sql, rows[0] if rows else None)
        cur = self.conn.cursor()
        cur.executemany(sql, [tuple(r) for r in rows])
        return cur


@contextlib.contextmanager
def raw(store: Any) -> Iterator[RawSQL]:
    """`store.raw()` for sqlite3-style SQL on either backend (one transaction, committed on success)."""
    with store.raw() as conn:
        yield RawSQL(conn, store.is_sqlite)


def store_ready(url: str) -> Any:
    """The store once it exists and holds a quantdesk schema (a SQLite file the engine has created and migrated, a
    PostgreSQL database, which the fixtures hand out migrated), else None: the backend-neutral `state.exists`."""
    from engine.store import open_existing
    from engine.store.db import StoreError, sqlite_path
    from engine.store.urls import store_url_for

    path = sqlite_path(store_url_for(url))
    if path is not None and not path.exists():
        return None
    try:
        return open_existing(url)
    except StoreError:
        return None


def is_postgres(url: str) -> bool:
    """True when the store target is a PostgreSQL URL."""
    from engine.store.urls import is_postgres_url

    return is_postgres_url(str(url))
