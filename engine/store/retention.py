"""Retention: the growing tables keep what the desk needs and no more, per `[retention]` in the config.

Deletes run in bounded batches (one short transaction each), so the engine's writers never wait long. Snapshots a
chart needs (equity, order-book) are thinned to the first row of each hour per series past their full-resolution
window, not deleted. Audit and fills are kept forever unless configured; an open alert and an unfinished command are
never deleted. Integer division of epoch milliseconds works the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from engine.store.db import Store

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
BATCH = 5_000

_PLAIN: dict[str, tuple[str, str, str]] = {
    # config field: (table, time column, extra condition)
    "audit_days": ("audit_log", "ts", ""),
    "fills_days": ("fills", "ts", ""),
    "sizing_days": ("sizing_decisions", "ts", ""),
    "alerts_days": ("alerts", "ts", "AND acked = 1"),
    "commands_days": ("commands", "created_at", "AND status IN ('done', 'failed')"),
    "candles_1m_days": ("candles", "ts", "AND timeframe = '1m'"),
}
# config field: (table, series columns) thinned to one row per hour per series
_THINNED: dict[str, tuple[str, tuple[str, ...]]] = {
    "equity_full_days": ("equity_snapshots", ("scope",)),
    "book_full_days": ("book_snapshots", ("exchange", "symbol")),
}


def _delete_batches(store: Store, sql: str, params: dict[str, Any]) -> int:
    """Run a bounded DELETE until it removes nothing; returns rows removed."""
    total = 0
    while True:
        with store.begin() as conn:
            n = int(conn.execute(text(sql), params).rowcount or 0)
        total += n
        if n < BATCH:
            return total


def apply_retention(store: Store, cfg: Any, now_ms: int) -> dict[str, int]:
    """Apply every configured retention rule; returns rows removed per table (tables with nothing removed omitted)."""
    removed: dict[str, int] = {}
    for field_name, (table, ts_col, extra) in _PLAIN.items():
        days = float(getattr(cfg, field_name))
        if days <= 0:
            continue
        cutoff = now_ms - int(days * DAY_MS)
        if table == "candles":  # no id column (WITHOUT ROWID on SQLite): one delete over the primary key
            n = _delete_once(store, f"DELETE FROM candles WHERE {ts_col} < :cut {extra}", cutoff)
        else:
            n = _delete_batches(store, f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {ts_col} < :cut "
                                       f"{extra} LIMIT {BATCH})", {"cut": cutoff})
        if n:
            removed[table] = n
    for field_name, (table, series) in _THINNED.items():
        days = float(getattr(cfg, field_name))
        if days <= 0:
            continue
        n = thin_hourly(store, table, series, now_ms - int(days * DAY_MS))
        if n:
            removed[table] = removed.get(table, 0) + n
    return removed


def _delete_once(store: Store, sql: str, cutoff: int) -> int:
    with store.begin() as conn:
        return int(conn.execute(text(sql), {"cut": cutoff}).rowcount or 0)


def thin_hourly(store: Store, table: str, series: tuple[str, ...], cutoff: int) -> int:
    """Keep only the first row of each hour per series among rows older than `cutoff`; returns rows removed."""
    same = " AND ".join(f"o.{c} = {table}.{c}" for c in series)
    sql = (f"DELETE FROM {table} WHERE ts < :cut AND EXISTS (SELECT 1 FROM {table} o WHERE {same} "
           f"AND o.ts < {table}.ts AND o.ts / {HOUR_MS} = {table}.ts / {HOUR_MS})")
    with store.begin() as conn:
        return int(conn.execute(text(sql), {"cut": cutoff}).rowcount or 0)
