"""Fast candle load and ingest on PostgreSQL: binary rows built and read by numpy, no Python object per row.

Ingest: numpy writes the rows in COPY's binary format (per row: a field count, then a length and the big-endian
value of each field) into a temporary stage table, and one INSERT ... SELECT ... ON CONFLICT upserts them, with the
same no-op-when-identical rule and change count as the generic multi-row upsert (which built ~8 Python objects
per row and was 4.4x slower than SQLite's ingest, docs/benchmarks.md).

Load:
The generic DB-API path builds a Python tuple per row, and psycopg's COPY reader returns one Python object per row
as well (both were measured at several seconds per million candles here). Instead the server concatenates each row's
binary send form (int8 ts + five float8 values, 48 bytes, big-endian) with `string_agg(... ORDER BY ts)` into one
bytea per chunk of up to CHUNK_ROWS rows (keyset-paged on ts, far below PostgreSQL's 1 GB value limit), and numpy
views it as a structured array: no Python object per row, the same speed class as the native SQLite reader.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CHUNK_ROWS = 4_000_000  # 192 MB per bytea value
_ROW = np.dtype([("ts", ">i8"), ("open", ">f8"), ("high", ">f8"), ("low", ">f8"), ("close", ">f8"),
                 ("volume", ">f8")])
VALUE_COLS = ("open", "high", "low", "close", "volume")
_PACK = "int8send(ts) || float8send(open) || float8send(high) || float8send(low) || float8send(close) || " \
        "float8send(volume)"


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
_COPY_ROW = np.dtype([("n", ">i2"), ("l0", ">i4"), ("ts", ">i8"), ("l1", ">i4"), ("open", ">f8"), ("l2", ">i4"),
                      ("high", ">f8"), ("l3", ">i4"), ("low", ">f8"), ("l4", ">i4"), ("close", ">f8"),
                      ("l5", ">i4"), ("volume", ">f8")])
_STAGE = ("CREATE TEMP TABLE IF NOT EXISTS candle_stage (ts bigint, open float8, high float8, low float8, "
          "close float8, volume float8) ON COMMIT DELETE ROWS")
_MERGE = ("INSERT INTO candles (exchange, symbol, timeframe, ts, open, high, low, close, volume) "
          "SELECT %s, %s, %s, ts, open, high, low, close, volume FROM candle_stage ORDER BY ts "
          "ON CONFLICT (exchange, symbol, timeframe, ts) DO UPDATE SET "
          "open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, "
          "volume = excluded.volume "
          "WHERE candles.open <> excluded.open OR candles.high <> excluded.high OR candles.low <> excluded.low "
          "OR candles.close <> excluded.close OR candles.volume <> excluded.volume")


def copy_rows(arr: np.ndarray) -> bytes:
    """An (n, 6) float64 array [ts, o, h, l, c, v] as one COPY ... (FORMAT BINARY) payload (ts truncated to int8)."""
    rows = np.empty(len(arr), dtype=_COPY_ROW)
    rows["n"] = 6
    for i in range(6):
        rows[f"l{i}"] = 8
    rows["ts"] = np.trunc(arr[:, 0]).astype(np.int64)
    for i, col in enumerate(VALUE_COLS, start=1):
        rows[col] = arr[:, i]
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def copy_upsert_candles(driver_conn: Any, exchange: str, symbol: str, timeframe: str, arr: np.ndarray) -> int:
    """Upsert sorted, key-unique rows through a binary COPY into a stage table (inside the caller's transaction);
    returns the rows inserted or changed."""
    with driver_conn.cursor() as cur:
        cur.execute(_STAGE)
        with cur.copy("COPY candle_stage (ts, open, high, low, close, volume) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(copy_rows(arr))
        cur.execute(_MERGE, (exchange, symbol, timeframe))
        written = max(cur.rowcount, 0)
        cur.execute("TRUNCATE candle_stage")
    return written


def packed_candles(driver_conn: Any, where: str, args: list[Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(ts, {column: values}) of the candles matching `where` (with %s parameters `args`), read in packed chunks
    from a psycopg 3 connection."""
    parts: list[np.ndarray] = []
    after: int | None = None
    while True:
        page = "" if after is None else " AND ts > %s"
        sql = (f"SELECT string_agg({_PACK}, ''::bytea ORDER BY ts), COUNT(*), MAX(ts) FROM (SELECT ts, open, high, "
               f"low, close, volume FROM candles WHERE {where}{page} ORDER BY ts LIMIT {CHUNK_ROWS}) AS chunk")
        with driver_conn.cursor(binary=True) as cur:
            cur.execute(sql, [*args, after] if after is not None else args)
            blob, count, last = cur.fetchone()
        if count:
            parts.append(np.frombuffer(blob, dtype=_ROW))
        if count < CHUNK_ROWS:
            break
        after = int(last)
    rows = np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.empty(0, dtype=_ROW))
    return rows["ts"].astype(np.int64), {c: rows[c].astype(np.float64) for c in VALUE_COLS}
