"""Candle repository: idempotent bulk upsert keyed by (exchange, symbol, timeframe, ts) and fast loads into pandas.

Measured in docs/bench/ingest.md. Writes bind many rows per statement (multi-row VALUES): the per-row statement step of
`executemany` over single-row INSERTs was the cost, not SQLite's B-tree. SQLite loads go through connectorx (Rust reads
the file straight into numpy-backed columns), avoiding one Python object per value; other stores use the DB-API path.
"""

from __future__ import annotations

import logging
import warnings
from functools import lru_cache
from itertools import chain
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from engine.store.db import Store

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("quantdesk.store")

_ROW = np.dtype([("ts", "i8"), ("open", "f8"), ("high", "f8"), ("low", "f8"), ("close", "f8"), ("volume", "f8")])
_VALUE_COLS = ("open", "high", "low", "close", "volume")
# Rows per statement: 6 * 128 + 3 = 771 bound parameters, under SQLite's historical 999 limit. Fewer rows per
# statement cost more per-statement overhead (10 rows: -10%), more gained nothing measurable (docs/bench/ingest.md).
_CHUNK = 128


@lru_cache(maxsize=16)
def _upsert_sql(n_rows: int) -> str:
    """The upsert of n_rows rows: series key bound once, then [ts, o, h, l, c, v] per row.

    Dialect-neutral: VALUES columns are named column1..column6 by both SQLite and PostgreSQL, and both share
    ON CONFLICT ... DO UPDATE (the `WHERE true` lets SQLite's parser tell the upsert clause from a join's ON). The
    WHERE of the update makes an identical re-write a no-op, so the change count holds only rows inserted or changed.
    """
    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * n_rows)
    return (
        "INSERT INTO candles (exchange, symbol, timeframe, ts, open, high, low, close, volume) "
        "SELECT ?, ?, ?, CAST(column1 AS BIGINT), column2, column3, column4, column5, column6 "
        f"FROM (VALUES {values}) AS v WHERE true "
        "ON CONFLICT (exchange, symbol, timeframe, ts) DO UPDATE SET "
        "open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, "
        "volume = excluded.volume "
        "WHERE candles.open <> excluded.open OR candles.high <> excluded.high OR candles.low <> excluded.low "
        "OR candles.close <> excluded.close OR candles.volume <> excluded.volume"
    )


def _as_array(rows: Iterable[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Rows as an (n, 6) float64 array [ts, o, h, l, c, v] (epoch-ms timestamps are exact in float64: < 2**53)."""
    if isinstance(rows, np.ndarray):
        if rows.ndim != 2 or rows.shape[1] < 6:
            raise ValueError(f"rows: expected an (n, 6) array [ts, o, h, l, c, v], got shape {rows.shape}")
        return np.asarray(rows[:, :6], dtype=np.float64)
    rows = rows if isinstance(rows, (list, tuple)) else list(rows)
    if not rows:
        return np.empty((0, 6))
    if len(rows[0]) == 6:
        try:  # numpy converts nested lists in C
            return np.asarray(rows, dtype=np.float64)
        except (ValueError, TypeError):
            pass  # ragged or non-numeric rows: convert row by row below, which names the problem
    out = np.empty((len(rows), 6))
    for i, row in enumerate(rows):
        if len(row) < 6:
            raise ValueError(f"rows[{i}]: expected [ts, o, h, l, c, v], got {len(row)} fields")
        out[i] = [int(row[0])] + [float(x) for x in row[1:6]]
    return out


def _sorted_unique(arr: np.ndarray) -> np.ndarray:
    """Rows in key order with one row per timestamp (the later one, as sequential upserts would leave it).

    Key order makes every insert an append at the B-tree's edge (shuffled input was 4-6x slower), and PostgreSQL
    refuses one statement that touches the same key twice.
    """
    ts = np.trunc(arr[:, 0])  # same truncation as the int cast the key gets
    if len(ts) < 2 or bool((ts[1:] > ts[:-1]).all()):
        return arr
    order = np.argsort(ts, kind="stable")
    arr, ts = arr[order], ts[order]
    keep = np.append(ts[1:] != ts[:-1], True)  # last of each run of equal timestamps
    return arr[keep]


def _flat_values(rows: Iterable[Sequence[float]] | np.ndarray) -> list[float]:
    """[ts, o, h, l, c, v, ts, ...] in key order, one row per timestamp, as plain Python numbers.

    The usual ingest input (lists of int/float rows already in time order) is flattened as is, with no round trip
    through numpy: that round trip (array, then back to Python floats) was a third of the upsert's CPU time.
    """
    if not isinstance(rows, np.ndarray):
        rows = rows if isinstance(rows, (list, tuple)) else list(rows)
        if rows and set(map(len, rows)) == {6}:
            flat = list(chain.from_iterable(rows))
            if set(map(type, flat)) <= {int, float}:  # what sqlite3/psycopg bind as numbers (not str, bool, numpy)
                ts = np.trunc(np.array(flat[0::6], dtype=np.float64))
                if bool((ts[1:] > ts[:-1]).all()):
                    return flat
    return _sorted_unique(_as_array(rows)).ravel().tolist()


def upsert_candles(store: Store, exchange: str, symbol: str, timeframe: str,
                   rows: Iterable[Sequence[float]] | np.ndarray) -> int:
    """Upsert ccxt-shaped [ts, o, h, l, c, v] rows (or an (n, 6) array) in one transaction; returns rows written."""
    flat = _flat_values(rows)
    n = len(flat) // 6
    if n == 0:
        return 0
    key = [exchange, symbol, timeframe]
    full, width = n - n % _CHUNK, 6 * _CHUNK
    chunks = [key + flat[i:i + width] for i in range(0, 6 * full, width)]
    tail = []  # the remainder in power-of-two statements: at most 7 more distinct (cached, prepared) statements
    start, size = full, _CHUNK // 2
    while start < n:
        if n - start >= size:
            tail.append((size, key + flat[6 * start:6 * (start + size)]))
            start += size
        size //= 2
    mark = (lambda sql: sql) if store.is_sqlite else (lambda sql: sql.replace("?", "%s"))
    written = 0
    with store.raw() as conn:
        cur = conn.cursor()
        if chunks:
            cur.executemany(mark(_upsert_sql(_CHUNK)), chunks)
            written += max(cur.rowcount, 0)
        for size, params in tail:
            cur.execute(mark(_upsert_sql(size)), params)
            written += max(cur.rowcount, 0)
        cur.close()
    return written


def _series_where(exchange: str, symbol: str, timeframe: str, since: int | None, until: int | None,
                  mark: str) -> tuple[str, list[Any]]:
    """The WHERE clause of one series' [since, until) range with its parameters."""
    where = f"exchange = {mark} AND symbol = {mark} AND timeframe = {mark}"
    args: list[Any] = [exchange, symbol, timeframe]
    if since is not None:
        where += f" AND ts >= {mark}"
        args.append(int(since))
    if until is not None:
        where += f" AND ts < {mark}"
        args.append(int(until))
    return where, args


def _frame(ts: np.ndarray, columns: dict[str, np.ndarray]) -> "pd.DataFrame":
    """The load_candles frame: UTC DatetimeIndex named ts, float64 value columns."""
    import pandas as pd

    index = pd.to_datetime(np.asarray(ts, dtype=np.int64), unit="ms", utc=True)
    index.name = "ts"
    return pd.DataFrame({c: np.asarray(columns[c], dtype=np.float64) for c in _VALUE_COLS}, index=index)


def _sql_literal(value: Any) -> str:
    """A SQLite literal for a parameter: integers as digits, text quoted with '' doubling (SQLite's only escape)."""
    if isinstance(value, int):
        return str(int(value))
    text_value = str(value)
    if "\x00" in text_value:
        raise ValueError("NUL in a text literal")
    return "'" + text_value.replace("'", "''") + "'"


@lru_cache(maxsize=1)
def _connectorx() -> Any:
    """The connectorx module (imported once, ~0.1 s), or None when it is not installed."""
    try:
        import connectorx
    except ImportError:
        return None
    return connectorx


def _load_connectorx(store: Store, where: str, args: list[Any]) -> "pd.DataFrame | None":
    """The frame read by connectorx straight from the SQLite file, or None when that path is unavailable."""
    if not store.is_sqlite or store.path is None or not store.path.exists():
        return None  # in-memory or server databases: the DB-API path
    cx = _connectorx()
    if cx is None:
        return None
    parts = where.split("?")  # the template's own placeholders only: connectorx takes no bound parameters
    where = "".join(part + lit for part, lit in zip(parts, [_sql_literal(v) for v in args] + [""]))
    sql = f"SELECT ts, open, high, low, close, volume FROM candles WHERE {where} ORDER BY ts"
    # connectorx 0.4 builds its frame with pandas' deprecated make_block (works through pandas 3; see the bench doc).
    # Set per call (an identical filter replaces itself) so that a test runner's per-test filter reset keeps it.
    warnings.filterwarnings("ignore", message="make_block is deprecated", module="connectorx")
    try:
        df = cx.read_sql(cx.ConnectionUrl(backend="sqlite", db_path=store.path), sql, return_type="pandas")
    except Exception as exc:  # noqa: BLE001 - e.g. a locked file: the DB-API path has the busy timeout
        log.warning("connectorx load failed (%s); using the DB-API path", exc)
        return None
    return _frame(df["ts"].to_numpy(dtype=np.int64), {c: df[c].to_numpy(dtype=np.float64) for c in _VALUE_COLS})


def load_candles_dbapi(store: Store, exchange: str, symbol: str, timeframe: str, since: int | None = None,
                       until: int | None = None) -> "pd.DataFrame":
    """load_candles through the store's DB-API connection (the generic path, any dialect)."""
    where, args = _series_where(exchange, symbol, timeframe, since, until, "?" if store.is_sqlite else "%s")
    conn = store.engine.raw_connection()
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT ts, open, high, low, close, volume FROM candles WHERE {where} ORDER BY ts", args)
        # One pass from the cursor straight into a structured array: no intermediate list of row tuples.
        arr = np.fromiter((tuple(r) for r in cur) if not store.is_sqlite else cur, dtype=_ROW, count=-1)
        cur.close()
    finally:
        conn.close()
    return _frame(arr["ts"], {c: arr[c] for c in _VALUE_COLS})


def load_candles(store: Store, exchange: str, symbol: str, timeframe: str, since: int | None = None,
                 until: int | None = None) -> "pd.DataFrame":
    """Load candles as a DataFrame indexed by UTC timestamp with float64 open/high/low/close/volume columns."""
    if store.is_sqlite:
        where, args = _series_where(exchange, symbol, timeframe, since, until, "?")
        frame = _load_connectorx(store, where, args)
        if frame is not None:
            return frame
    return load_candles_dbapi(store, exchange, symbol, timeframe, since, until)


def candle_series(store: Store) -> list[tuple[str, str, str, int, int, int]]:
    """Every stored (exchange, symbol, timeframe) with its row count, first and last timestamp."""
    with store.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT exchange, symbol, timeframe, COUNT(*), MIN(ts), MAX(ts) FROM candles "
            "GROUP BY exchange, symbol, timeframe ORDER BY exchange, symbol, timeframe").fetchall()
    return [tuple(r) for r in rows]  # type: ignore[misc]
