"""A bounded SQLite page cache for the engine's long-running store, and SQLite's own memory counter.

Each pooled SQLite connection keeps up to `cache_size` pages of the file in its own heap (default 2,000 KiB). A
running engine holds 8-9 connections to state.db; as the file grows by a simulated day of bars, orders and audit
rows, every connection keeps caching pages it has not seen yet, up to ~18 MB of the engine's anonymous memory
after weeks (issue 17; capping them lowered the engine's weekly RSS, not all of its growth). The engine's queries read
recent rows through the primary keys; a few hundred KiB per connection hold those, and the rest comes from the
operating system's file cache (shared, not the engine's RSS). Short-lived processes (CLI, ingest, the retrain and
re-optimisation children) keep SQLite's default.
"""

from __future__ import annotations

import ctypes
from typing import Any

from sqlalchemy import event

from engine.store.db import Store

ENGINE_PAGE_CACHE_KIB = 512  # per pooled connection of the engine process


def cap_page_cache(store: Store, kib: int = ENGINE_PAGE_CACHE_KIB) -> Store:
    """Cap every connection of a SQLite store at `kib` KiB of page cache, pooled ones included (set on each
    connection's first checkout); other backends are left alone. Returns the store."""
    if not store.is_sqlite:
        return store
    if isinstance(kib, bool) or not isinstance(kib, int) or kib < 64:
        raise ValueError(f"kib: page cache per connection must be an integer >= 64 KiB, got {kib!r}")

    @event.listens_for(store.engine, "checkout")
    def _cap(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if record.info.get("page_cache_kib") != kib:
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA cache_size = -{kib}")
            cur.close()
            record.info["page_cache_kib"] = kib

    return store


def sqlite_memory_used() -> int:
    """Bytes SQLite holds in this process right now (sqlite3_memory_used: page caches, schemas, statements)."""
    import _sqlite3

    fn = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used  # resolved in the libsqlite3 the module links
    fn.restype = ctypes.c_int64
    return int(fn())
