"""Candle repository: idempotent bulk upsert keyed by (exchange, symbol, timeframe, ts) and fast loads into pandas.

Measured in docs/bench/ingest.md. Writes bind many rows per statement (multi-row VALUES): the per-row statement step of
`executemany` over single-row INSERTs was the cost, not SQLite's B-tree. Large SQLite loads step the statement in a
numba-compiled loop over the process's own SQLite library, with no Python object per value; other stores, small
series and platforms where that library can't be found use the DB-API cursor.
"""

from __future__ import annotations

import ctypes
import logging
import sqlite3
from functools import lru_cache
from itertools import chain
from pathlib import Path
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
# Series at least this long load through the native reader; shorter ones through the DB-API cursor (100k rows: ~0.25 s
# CPU there), so that a process reading only small series never pays the native reader's one-time start: ~1 s CPU
# (numba import 0.3 s, cached-kernel load 0.7 s; a fresh compile once per machine 1.3 s), saving ~2 s per 1M rows.
NATIVE_MIN_ROWS = 100_000
# PostgreSQL upserts at least this many rows through a binary COPY into a stage table (engine/store/candles_pg.py);
# fewer (a streamed bar, an incremental pull) go through one multi-row statement, which needs no stage table
PG_COPY_MIN_ROWS = 256


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
    if store.engine.dialect.name == "postgresql":
        arr = _sorted_unique(_as_array(rows))
        if len(arr) >= PG_COPY_MIN_ROWS:
            from engine.store.candles_pg import copy_upsert_candles

            with store.raw() as conn:
                return copy_upsert_candles(conn.driver_connection, exchange, symbol, timeframe, arr)
        rows = arr
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


_sqlite3_step: Any = None  # numba external-function types, set by _NativeSqlite before _pull is compiled
_sqlite3_column_int64: Any = None
_sqlite3_column_double: Any = None


def _pull(stmt: int, ts: np.ndarray, values: np.ndarray) -> tuple[int, int]:  # pragma: no cover - numba-compiled
    """Step a prepared [ts, o, h, l, c, v] statement into ts and values[5, n]; returns (rows, last step code)."""
    n = 0
    while n < ts.shape[0]:
        rc = _sqlite3_step(stmt)
        if rc != 100:  # SQLITE_ROW
            return n, rc
        ts[n] = _sqlite3_column_int64(stmt, 0)
        for j in range(5):
            values[j, n] = _sqlite3_column_double(stmt, j + 1)
        n += 1
    return n, _sqlite3_step(stmt)  # SQLITE_DONE (101) unless there are more rows than counted


class _NativeSqlite:
    """The SQLite C library that Python's sqlite3 module uses, called with no Python object per value.

    A second SQLite copy in one process (connectorx and adbc-driver-sqlite bundle one) breaks SQLite's POSIX locks:
    closing its file drops the locks of every other connection in the process, which lost committed WAL frames in
    tests (docs/bench/ingest.md). Here the same library instance is reached through ctypes for the setup calls, and a
    numba-compiled loop (numba is a project dependency) steps the statement into a float64 array at C speed.
    """

    def __init__(self, path: str) -> None:
        import llvmlite.binding as llvm
        import numba
        from numba import types

        self.lib = lib = ctypes.CDLL(path)
        vp, ci = ctypes.c_void_p, ctypes.c_int
        lib.sqlite3_libversion.restype = ctypes.c_char_p
        lib.sqlite3_open_v2.argtypes = [ctypes.c_char_p, ctypes.POINTER(vp), ci, ctypes.c_char_p]
        lib.sqlite3_prepare_v2.argtypes = [vp, ctypes.c_char_p, ci, ctypes.POINTER(vp), ctypes.POINTER(vp)]
        lib.sqlite3_bind_text.argtypes = [vp, ci, ctypes.c_char_p, ci, vp]
        lib.sqlite3_bind_int64.argtypes = [vp, ci, ctypes.c_int64]
        lib.sqlite3_busy_timeout.argtypes = [vp, ci]
        lib.sqlite3_exec.argtypes = [vp, ctypes.c_char_p, vp, vp, vp]
        lib.sqlite3_step.argtypes = [vp]
        lib.sqlite3_column_int64.argtypes = [vp, ci]
        lib.sqlite3_column_int64.restype = ctypes.c_int64
        lib.sqlite3_finalize.argtypes = [vp]
        lib.sqlite3_close_v2.argtypes = [vp]
        lib.sqlite3_errmsg.argtypes = [vp]
        lib.sqlite3_errmsg.restype = ctypes.c_char_p
        llvm.load_library_permanently(path)  # the same loaded instance: glibc matches the file, not the name
        global _sqlite3_step, _sqlite3_column_int64, _sqlite3_column_double  # read by _pull when numba compiles it
        _sqlite3_step = types.ExternalFunction("sqlite3_step", types.intc(types.voidptr))
        _sqlite3_column_int64 = types.ExternalFunction("sqlite3_column_int64", types.int64(types.voidptr, types.intc))
        _sqlite3_column_double = types.ExternalFunction("sqlite3_column_double",
                                                        types.float64(types.voidptr, types.intc))
        # A module-level function so that numba's on-disk cache finds it again in the next process.
        self.pull = numba.njit(cache=True, nogil=True)(_pull)

    def _check(self, db: ctypes.c_void_p, rc: int, what: str) -> None:
        if rc != 0:
            raise sqlite3.OperationalError(f"{what}: {self.lib.sqlite3_errmsg(db).decode(errors='replace')}")

    def _prepare(self, db: ctypes.c_void_p, sql: str, args: list[Any]) -> ctypes.c_void_p:
        stmt = ctypes.c_void_p()
        self._check(db, self.lib.sqlite3_prepare_v2(db, sql.encode(), -1, ctypes.byref(stmt), None), "prepare")
        for i, value in enumerate(args, 1):
            if isinstance(value, int):
                rc = self.lib.sqlite3_bind_int64(stmt, i, value)
            else:
                raw = str(value).encode()
                rc = self.lib.sqlite3_bind_text(stmt, i, raw, len(raw), ctypes.c_void_p(-1))  # SQLITE_TRANSIENT
            self._check(db, rc, "bind")
        return stmt

    def load(self, path: Path, where: str, args: list[Any], min_rows: int,
             busy_timeout_ms: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(ts int64, values (5, n) float64) of the series, or None when it has fewer than min_rows rows."""
        lib, db = self.lib, ctypes.c_void_p()
        rc = lib.sqlite3_open_v2(str(path).encode(), ctypes.byref(db), 0x1, None)  # SQLITE_OPEN_READONLY
        try:
            self._check(db, rc, "open")
            lib.sqlite3_busy_timeout(db, busy_timeout_ms)
            self._check(db, lib.sqlite3_exec(db, b"BEGIN", None, None, None), "begin")  # one snapshot for both
            stmt = self._prepare(db, f"SELECT COUNT(*) FROM candles WHERE {where}", args)
            try:
                if lib.sqlite3_step(stmt) != 100:
                    self._check(db, 1, "count")
                count = int(lib.sqlite3_column_int64(stmt, 0))
            finally:
                lib.sqlite3_finalize(stmt)
            if count < min_rows:
                return None
            stmt = self._prepare(db, f"SELECT ts, open, high, low, close, volume FROM candles WHERE {where} "
                                     "ORDER BY ts", args)
            try:
                ts, values = np.empty(count, dtype=np.int64), np.empty((5, count))
                n, rc = self.pull(stmt.value, ts, values)
                if rc != 101 or n != count:  # SQLITE_DONE after exactly the counted rows
                    self._check(db, rc if rc not in (0, 100, 101) else 1, f"read {n} of {count} rows")
            finally:
                lib.sqlite3_finalize(stmt)
            return ts, values
        finally:
            lib.sqlite3_exec(db, b"COMMIT", None, None, None)
            lib.sqlite3_close_v2(db)


@lru_cache(maxsize=1)
def _native() -> _NativeSqlite | None:
    """The native reader bound to the SQLite library Python's sqlite3 module loaded, or None where it can't be found."""
    try:
        import _sqlite3  # noqa: F401 - maps the library into the process

        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "libsqlite3" in line and "/" in line}
        if len(paths) != 1:
            return None  # statically linked (or several copies): no way to be sure which instance sqlite3 uses
        native = _NativeSqlite(paths.pop())
        if native.lib.sqlite3_libversion().decode() != sqlite3.sqlite_version:
            return None
        return native
    except Exception as exc:  # noqa: BLE001 - e.g. no numba cache location: the DB-API path still works
        log.info("native SQLite reader unavailable (%s); using the DB-API path", exc)
        return None


def _may_be_large(timeframe: str, since: int | None, until: int | None) -> bool:
    """False when [since, until) holds fewer bar slots than NATIVE_MIN_ROWS, so no count is needed to know the native
    reader would decline: a long-running engine reading a few hundred bars per tick then never imports numba and
    llvmlite (~50 MB resident) just to set the reader up."""
    if since is None or until is None:
        return True
    try:
        from engine.clock import timeframe_ms

        return (int(until) - int(since)) // timeframe_ms(timeframe) + 1 >= NATIVE_MIN_ROWS
    except (ValueError, KeyError):  # an unusual timeframe label: let the reader count
        return True


def _load_native(store: Store, where: str, args: list[Any]) -> "pd.DataFrame | None":
    """The frame read by the native reader, or None (small series, in-memory or server stores, no native library)."""
    if not store.is_sqlite or store.path is None or not store.path.exists():
        return None
    native = _native()
    if native is None:
        return None
    try:
        got = native.load(store.path, where, args, NATIVE_MIN_ROWS, 5000)
    except sqlite3.Error as exc:  # e.g. locked past the timeout: the DB-API path reports it with its own retries
        log.warning("native candle load failed (%s); using the DB-API path", exc)
        return None
    if got is None:
        return None
    ts, values = got
    return _frame(ts, dict(zip(_VALUE_COLS, values)))


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
        frame = _load_native(store, where, args) if _may_be_large(timeframe, since, until) else None
        if frame is not None:
            return frame
    elif store.engine.dialect.name == "postgresql":
        return _load_pg_packed(store, exchange, symbol, timeframe, since, until)
    return load_candles_dbapi(store, exchange, symbol, timeframe, since, until)


def _load_pg_packed(store: Store, exchange: str, symbol: str, timeframe: str, since: int | None,
                  until: int | None) -> "pd.DataFrame":
    """The frame read in packed binary chunks on PostgreSQL (engine/store/candles_pg.py)."""
    from engine.store.candles_pg import packed_candles

    where, args = _series_where(exchange, symbol, timeframe, since, until, "%s")
    conn = store.engine.raw_connection()
    try:
        ts, values = packed_candles(conn.driver_connection, where, args)
        conn.commit()
    finally:
        conn.close()
    return _frame(ts, values)


def candle_series(store: Store) -> list[tuple[str, str, str, int, int, int]]:
    """Every stored (exchange, symbol, timeframe) with its row count, first and last timestamp."""
    with store.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT exchange, symbol, timeframe, COUNT(*), MIN(ts), MAX(ts) FROM candles "
            "GROUP BY exchange, symbol, timeframe ORDER BY exchange, symbol, timeframe").fetchall()
    return [tuple(r) for r in rows]  # type: ignore[misc]
