"""Candle repository: idempotent bulk upsert keyed by (exchange, symbol, timeframe, ts) and fast loads into pandas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from engine.store.db import Store

if TYPE_CHECKING:
    import pandas as pd

# Dialect-neutral upsert (SQLite >= 3.24 and PostgreSQL share ON CONFLICT ... DO UPDATE). The WHERE clause makes an
# identical re-write a no-op, so rowcount counts only rows that were inserted or really changed.
_UPSERT = (
    "INSERT INTO candles (exchange, symbol, timeframe, ts, open, high, low, close, volume) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (exchange, symbol, timeframe, ts) DO UPDATE SET "
    "open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, volume = excluded.volume "
    "WHERE candles.open <> excluded.open OR candles.high <> excluded.high OR candles.low <> excluded.low "
    "OR candles.close <> excluded.close OR candles.volume <> excluded.volume"
)


def upsert_candles(store: Store, exchange: str, symbol: str, timeframe: str,
                   rows: Iterable[Sequence[float]]) -> int:
    """Upsert ccxt-shaped [ts, o, h, l, c, v] rows in one transaction; returns rows inserted or changed."""
    payload = [(exchange, symbol, timeframe, int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]),
                float(r[5])) for r in rows]
    if not payload:
        return 0
    return store.executemany(_UPSERT, payload)


def load_candles(store: Store, exchange: str, symbol: str, timeframe: str, since: int | None = None,
                 until: int | None = None) -> "pd.DataFrame":
    """Load candles as a DataFrame indexed by UTC timestamp with float64 open/high/low/close/volume columns."""
    import pandas as pd

    sql = "SELECT ts, open, high, low, close, volume FROM candles WHERE exchange = ? AND symbol = ? AND timeframe = ?"
    args: list[object] = [exchange, symbol, timeframe]
    if since is not None:
        sql += " AND ts >= ?"
        args.append(int(since))
    if until is not None:
        sql += " AND ts < ?"
        args.append(int(until))
    sql += " ORDER BY ts"
    if not store.is_sqlite:
        sql = sql.replace("?", "%s")
    conn = store.engine.raw_connection()
    try:
        cur = conn.cursor()
        cur.execute(sql, args)
        data = cur.fetchall()
        cur.close()
    finally:
        conn.close()
    cols = ["open", "high", "low", "close", "volume"]
    if not data:
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in cols})
        empty.index = pd.DatetimeIndex([], tz="UTC", name="ts")
        return empty
    arr = np.array(data, dtype="float64")
    index = pd.to_datetime(arr[:, 0].astype("int64"), unit="ms", utc=True)
    index.name = "ts"
    return pd.DataFrame(arr[:, 1:], index=index, columns=cols)


def candle_series(store: Store) -> list[tuple[str, str, str, int, int, int]]:
    """Every stored (exchange, symbol, timeframe) with its row count, first and last timestamp."""
    with store.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT exchange, symbol, timeframe, COUNT(*), MIN(ts), MAX(ts) FROM candles "
            "GROUP BY exchange, symbol, timeframe ORDER BY exchange, symbol, timeframe").fetchall()
    return [tuple(r) for r in rows]  # type: ignore[misc]
