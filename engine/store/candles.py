"""Candle repository: idempotent bulk upsert keyed by (exchange, symbol, timeframe, ts) and fast loads into pandas."""

from __future__ import annotations

from itertools import repeat
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from engine.store.db import Store

if TYPE_CHECKING:
    import pandas as pd

_ROW = np.dtype([("ts", "i8"), ("open", "f8"), ("high", "f8"), ("low", "f8"), ("close", "f8"), ("volume", "f8")])

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


def _payload(exchange: str, symbol: str, timeframe: str, rows: Iterable[Sequence[float]] | np.ndarray) -> list[tuple]:
    """Executemany parameters, built column-wise (C-level map/zip) instead of per-row Python conversions."""
    if isinstance(rows, np.ndarray):
        if rows.ndim != 2 or rows.shape[1] < 6:
            raise ValueError(f"rows: expected an (n, 6) array [ts, o, h, l, c, v], got shape {rows.shape}")
        cols = [rows[:, 0].astype(np.int64).tolist()] + [rows[:, i].astype(np.float64).tolist() for i in range(1, 6)]
    else:
        rows = rows if isinstance(rows, (list, tuple)) else list(rows)
        if not rows:
            return []
        if all(len(r) == 6 for r in rows[:1]):
            try:  # numpy converts nested lists in C; epoch-ms timestamps are exact in float64 (< 2**53)
                return _payload(exchange, symbol, timeframe, np.asarray(rows, dtype=np.float64))
            except (ValueError, TypeError):
                pass  # ragged or non-numeric rows: convert row by row below, which names the problem
        columns = list(zip(*rows))
        if len(columns) < 6:
            raise ValueError(f"rows: expected [ts, o, h, l, c, v] rows, got {len(columns)} fields")
        cols = [list(map(int, columns[0]))] + [list(map(float, columns[i])) for i in range(1, 6)]
    n = len(cols[0])
    return list(zip(repeat(exchange, n), repeat(symbol, n), repeat(timeframe, n), *cols))


def upsert_candles(store: Store, exchange: str, symbol: str, timeframe: str,
                   rows: Iterable[Sequence[float]] | np.ndarray) -> int:
    """Upsert ccxt-shaped [ts, o, h, l, c, v] rows (or an (n, 6) array) in one transaction; returns rows written."""
    payload = _payload(exchange, symbol, timeframe, rows)
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
        # One pass from the cursor straight into a structured array: no intermediate list of row tuples.
        arr = np.fromiter((tuple(r) for r in cur) if not store.is_sqlite else cur, dtype=_ROW, count=-1)
        cur.close()
    finally:
        conn.close()
    cols = ["open", "high", "low", "close", "volume"]
    index = pd.to_datetime(arr["ts"], unit="ms", utc=True)  # same index dtype as before (pandas picks the unit)
    index.name = "ts"
    return pd.DataFrame({c: arr[c] for c in cols}, index=index)


def candle_series(store: Store) -> list[tuple[str, str, str, int, int, int]]:
    """Every stored (exchange, symbol, timeframe) with its row count, first and last timestamp."""
    with store.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT exchange, symbol, timeframe, COUNT(*), MIN(ts), MAX(ts) FROM candles "
            "GROUP BY exchange, symbol, timeframe ORDER BY exchange, symbol, timeframe").fetchall()
    return [tuple(r) for r in rows]  # type: ignore[misc]
