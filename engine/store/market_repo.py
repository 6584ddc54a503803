"""Market-data repository beyond candles: trades, book snapshots, funding, feed values, quarantine and coverage.

All SQL is dialect-neutral (qmark placeholders through `Store.executemany`, window functions that SQLite >= 3.25 and
PostgreSQL share). Writers classify rows against what is stored first, so callers can report exactly how many rows were
inserted, changed or already present, and identical re-writes touch nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from engine.clock import now_ms
from engine.store.db import Store


@dataclass(frozen=True)
class Gap:
    """A run of missing bars inside a stored candle series: first and last missing bar open time (inclusive)."""

    start_ts: int
    end_ts: int
    missing_bars: int


@dataclass(frozen=True)
class WriteCount:
    """What a write did: rows newly inserted, rows whose values changed, rows already stored unchanged."""

    inserted: int = 0
    changed: int = 0
    unchanged: int = 0


def _query(store: Store, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run a read query with qmark placeholders on any dialect."""
    with store.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql if store.is_sqlite else sql.replace("?", "%s"),
                                                       tuple(args)).fetchall()]


def _classify(rows: Sequence[tuple[Any, ...]], existing: dict[Any, tuple[Any, ...]], key_len: int
              ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int]:
    """Split rows into (new, changed, unchanged count) against stored values keyed by the first key_len fields."""
    new, changed, same = [], [], 0
    for row in rows:
        key = row[0] if key_len == 1 else row[:key_len]
        stored = existing.get(key)
        if stored is None:
            new.append(row)
        elif tuple(stored) != tuple(row[key_len:]):
            changed.append(row)
        else:
            same += 1
    return new, changed, same


# --- candles: classification and gaps ----------------------------------------------------------------------------
def stored_candles(store: Store, exchange: str, symbol: str, timeframe: str, ts_min: int, ts_max: int
                   ) -> dict[int, tuple[float, float, float, float, float]]:
    """Stored bars keyed by ts in [ts_min, ts_max], for classifying a batch before it is upserted."""
    rows = _query(store, "SELECT ts, open, high, low, close, volume FROM candles WHERE exchange = ? AND symbol = ? "
                  "AND timeframe = ? AND ts >= ? AND ts <= ?", (exchange, symbol, timeframe, ts_min, ts_max))
    return {int(r[0]): tuple(float(x) for x in r[1:]) for r in rows}  # type: ignore[misc]


def candle_bounds(store: Store, exchange: str, symbol: str, timeframe: str) -> tuple[int, int | None, int | None]:
    """(row count, first ts, last ts) of one candle series."""
    row = _query(store, "SELECT COUNT(*), MIN(ts), MAX(ts) FROM candles WHERE exchange = ? AND symbol = ? "
                 "AND timeframe = ?", (exchange, symbol, timeframe))[0]
    return int(row[0]), (None if row[1] is None else int(row[1])), (None if row[2] is None else int(row[2]))


def candle_span(store: Store, exchange: str, symbol: str, timeframe: str) -> tuple[int | None, int | None]:
    """(first ts, last ts) of one candle series: two primary-key seeks, flat however long the series grows (unlike
    candle_bounds, whose row count reads the whole series)."""
    key = (exchange, symbol, timeframe)
    where = "exchange = ? AND symbol = ? AND timeframe = ?"
    first = _query(store, f"SELECT ts FROM candles WHERE {where} ORDER BY ts ASC LIMIT 1", key)
    last = _query(store, f"SELECT ts FROM candles WHERE {where} ORDER BY ts DESC LIMIT 1", key)
    return (int(first[0][0]) if first else None), (int(last[0][0]) if last else None)


def candle_gaps(store: Store, exchange: str, symbol: str, timeframe_ms: int, timeframe: str,
                since: int | None = None, until: int | None = None) -> list[Gap]:
    """Runs of missing bars between stored bars (optionally only those in [since, until)).

    With a range, only the stored bars in it (plus the neighbours just outside it) are scanned, through the primary
    key, so a live pull every few seconds does not rescan a long series.
    """
    key = (exchange, symbol, timeframe)
    where = "exchange = ? AND symbol = ? AND timeframe = ?"
    bounds: list[Any] = []
    if since is not None:
        before = _query(store, f"SELECT MAX(ts) FROM candles WHERE {where} AND ts < ?", (*key, since))[0][0]
        where += " AND ts >= ?"
        bounds.append(since if before is None else int(before))
    if until is not None:
        after = _query(store, f"SELECT MIN(ts) FROM candles WHERE {where.split(' AND ts')[0]} AND ts >= ?",
                       (*key, until))[0][0]
        where += " AND ts <= ?"
        bounds.append(until if after is None else int(after))
    # One aggregate over the key range first (~20x cheaper than the window scan): n distinct bars on one step grid
    # spanning exactly n - 1 steps cannot have a gap. Off-grid bars (a monthly series) take the scan.
    count, lo, hi, off = _query(store, f"SELECT COUNT(*), MIN(ts), MAX(ts), MAX(ts - (ts / ?) * ?) FROM candles "
                                       f"WHERE {where}", (timeframe_ms, timeframe_ms, *key, *bounds))[0]
    if not count or (int(off) == 0 and int(hi) - int(lo) == (int(count) - 1) * timeframe_ms):
        return []
    sql = (f"SELECT prev_ts, ts FROM (SELECT ts, LAG(ts) OVER (ORDER BY ts) AS prev_ts FROM candles WHERE {where}) "
           "AS t WHERE ts - prev_ts > ? ORDER BY ts")
    gaps = []
    for prev_ts, ts in _query(store, sql, (*key, *bounds, timeframe_ms)):
        start, end = int(prev_ts) + timeframe_ms, int(ts) - timeframe_ms
        if since is not None:
            start = max(start, since + (-since) % timeframe_ms)
        if until is not None:
            end = min(end, until - 1 - (until - 1) % timeframe_ms)
        if end >= start:
            gaps.append(Gap(start, end, (end - start) // timeframe_ms + 1))
    return gaps


# --- trades ------------------------------------------------------------------------------------------------------
_TRADE_UPSERT = ("INSERT INTO trades (exchange, symbol, trade_id, ts, price, amount, side) VALUES (?, ?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT (exchange, symbol, trade_id) DO UPDATE SET ts = excluded.ts, price = excluded.price, "
                 "amount = excluded.amount, side = excluded.side")


def write_trades(store: Store, exchange: str, symbol: str, rows: Sequence[tuple[str, int, float, float, str]]
                 ) -> WriteCount:
    """Store (id, ts, price, amount, side) trades; identical re-writes are skipped and counted as unchanged."""
    if not rows:
        return WriteCount()
    ids = [r[0] for r in rows]
    existing: dict[Any, tuple[Any, ...]] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        marks = ",".join("?" * len(chunk))
        for r in _query(store, f"SELECT trade_id, ts, price, amount, side FROM trades WHERE exchange = ? AND "
                        f"symbol = ? AND trade_id IN ({marks})", (exchange, symbol, *chunk)):
            existing[str(r[0])] = (int(r[1]), float(r[2]), float(r[3]), str(r[4]))
    new, changed, same = _classify(rows, existing, 1)
    todo = new + changed
    if todo:
        store.executemany(_TRADE_UPSERT, [(exchange, symbol, *r) for r in todo])
    return WriteCount(len(new), len(changed), same)


def stored_trades(store: Store, exchange: str, symbol: str, since: int, limit: int = 100_000
                  ) -> list[dict[str, Any]]:
    """Stored trades with ts >= since, oldest first, as ccxt trade dicts (id, timestamp, side, price, amount, cost)."""
    rows = _query(store, "SELECT trade_id, ts, price, amount, side FROM trades WHERE exchange = ? AND symbol = ? AND "
                  "ts >= ? ORDER BY ts, trade_id LIMIT ?", (exchange, symbol, int(since), int(limit)))
    return [{"id": str(r[0]), "timestamp": int(r[1]), "symbol": symbol, "side": str(r[4]), "price": float(r[2]),
             "amount": float(r[3]), "cost": float(r[2]) * float(r[3])} for r in rows]


def last_trade_ts(store: Store, exchange: str, symbol: str) -> int | None:
    """Timestamp of the newest stored trade of a series."""
    row = _query(store, "SELECT MAX(ts) FROM trades WHERE exchange = ? AND symbol = ?", (exchange, symbol))[0]
    return None if row[0] is None else int(row[0])


# --- order book snapshots ----------------------------------------------------------------------------------------
def write_book_snapshot(store: Store, exchange: str, symbol: str, ts: int, bids: Sequence[Sequence[float]],
                        asks: Sequence[Sequence[float]], mid: float, spread_bps: float, depth_bid: float,
                        depth_ask: float) -> WriteCount:
    """Store one book snapshot keyed by ts; a second identical snapshot is unchanged."""
    payload = (json.dumps([list(x) for x in bids]), json.dumps([list(x) for x in asks]), mid, spread_bps, depth_bid,
               depth_ask)
    stored = _query(store, "SELECT bids, asks, mid, spread_bps, depth_bid, depth_ask FROM book_snapshots "
                    "WHERE exchange = ? AND symbol = ? AND ts = ?", (exchange, symbol, ts))
    if stored and tuple(stored[0]) == payload:
        return WriteCount(unchanged=1)
    store.executemany(
        "INSERT INTO book_snapshots (exchange, symbol, ts, bids, asks, mid, spread_bps, depth_bid, depth_ask) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (exchange, symbol, ts) DO UPDATE SET bids = excluded.bids, "
        "asks = excluded.asks, mid = excluded.mid, spread_bps = excluded.spread_bps, depth_bid = excluded.depth_bid, "
        "depth_ask = excluded.depth_ask", [(exchange, symbol, ts, *payload)])
    return WriteCount(changed=1) if stored else WriteCount(inserted=1)


# --- funding -----------------------------------------------------------------------------------------------------
_FUNDING_UPSERT = ("INSERT INTO funding_rates (exchange, symbol, ts, rate, mark_price, index_price) "
                   "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (exchange, symbol, ts) DO UPDATE SET rate = excluded.rate, "
                   "mark_price = excluded.mark_price, index_price = excluded.index_price")


def write_funding(store: Store, exchange: str, symbol: str,
                  rows: Sequence[tuple[int, float, float | None, float | None]]) -> WriteCount:
    """Store settled funding rates (ts, rate, mark, index) with exact inserted/changed/unchanged counts."""
    if not rows:
        return WriteCount()
    existing = {int(r[0]): (float(r[1]), r[2], r[3]) for r in _query(
        store, "SELECT ts, rate, mark_price, index_price FROM funding_rates WHERE exchange = ? AND symbol = ? "
        "AND ts >= ? AND ts <= ?", (exchange, symbol, rows[0][0], rows[-1][0]))}
    new, changed, same = _classify(rows, existing, 1)  # type: ignore[arg-type]
    if new or changed:
        store.executemany(_FUNDING_UPSERT, [(exchange, symbol, *r) for r in new + changed])
    return WriteCount(len(new), len(changed), same)


def last_funding_ts(store: Store, exchange: str, symbol: str) -> int | None:
    """Timestamp of the newest stored funding rate of a series."""
    row = _query(store, "SELECT MAX(ts) FROM funding_rates WHERE exchange = ? AND symbol = ?", (exchange, symbol))[0]
    return None if row[0] is None else int(row[0])


# --- feeds -------------------------------------------------------------------------------------------------------
_FEED_UPSERT = ("INSERT INTO feed_values (feed, series, ts, published_ts, value) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (feed, series, ts) DO UPDATE SET published_ts = excluded.published_ts, "
                "value = excluded.value")


def write_feed_values(store: Store, feed: str, rows: Sequence[tuple[str, int, int, float]]) -> WriteCount:
    """Store (series, ts, published_ts, value) feed observations with exact counts."""
    if not rows:
        return WriteCount()
    lo, hi = min(r[1] for r in rows), max(r[1] for r in rows)
    existing = {(str(r[0]), int(r[1])): (int(r[2]), float(r[3])) for r in _query(
        store, "SELECT series, ts, published_ts, value FROM feed_values WHERE feed = ? AND ts >= ? AND ts <= ?",
        (feed, lo, hi))}
    new, changed, same = _classify(rows, existing, 2)  # type: ignore[arg-type]
    if new or changed:
        store.executemany(_FEED_UPSERT, [(feed, *r) for r in new + changed])
    return WriteCount(len(new), len(changed), same)


def last_feed_ts(store: Store, feed: str) -> int | None:
    """Observation time of the newest stored value of a feed."""
    row = _query(store, "SELECT MAX(ts) FROM feed_values WHERE feed = ?", (feed,))[0]
    return None if row[0] is None else int(row[0])


def feed_resume_ts(store: Store, feed: str) -> int | None:
    """The oldest of the per-series newest observations: where an incremental pull must resume so that a slower
    (daily, later-published) series of the feed is not skipped past by a faster one."""
    row = _query(store, "SELECT MIN(mx) FROM (SELECT MAX(ts) AS mx FROM feed_values WHERE feed = ? "
                 "GROUP BY series) AS t", (feed,))[0]
    return None if row[0] is None else int(row[0])


# --- quarantine --------------------------------------------------------------------------------------------------
def quarantine_rows(store: Store, kind: str, source: str, series: str,
                    rejected: Iterable[tuple[int | None, Any, str]]) -> tuple[int, int]:
    """Record rejected (ts, payload, reason) rows; a row already quarantined with the same reason is not repeated.

    Returns (newly quarantined, already quarantined), so re-running an ingest over the same bad rows changes nothing.
    """
    items = [(ts, json.dumps(payload, sort_keys=True, default=str), reason) for ts, payload, reason in rejected]
    if not items:
        return 0, 0
    known = {(r[0], r[1], r[2]) for r in _query(
        store, "SELECT ts, payload, reason FROM quarantine WHERE kind = ? AND series = ?", (kind, series))}
    fresh, seen = [], set()
    for ts, payload, reason in items:
        key = (ts, payload, reason)
        if key in known or key in seen:
            continue
        seen.add(key)
        fresh.append((now_ms(), kind, source, series, ts, payload, reason))
    if fresh:
        store.executemany("INSERT INTO quarantine (created_at, kind, source, series, ts, payload, reason) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)", fresh)
    return len(fresh), len(items) - len(fresh)


def quarantine_counts(store: Store) -> dict[str, int]:
    """Quarantined rows per series name."""
    return {str(r[0]): int(r[1]) for r in _query(store, "SELECT series, COUNT(*) FROM quarantine GROUP BY series")}


def list_quarantine(store: Store, series: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Newest quarantined rows (optionally of one series) with their reasons."""
    sql = "SELECT id, created_at, kind, source, series, ts, payload, reason FROM quarantine"
    args: list[Any] = []
    if series:
        sql += " WHERE series = ?"
        args.append(series)
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(int(limit))
    keys = ("id", "created_at", "kind", "source", "series", "ts", "payload", "reason")
    return [dict(zip(keys, r)) for r in _query(store, sql, args)]


# --- coverage ----------------------------------------------------------------------------------------------------
def table_series(store: Store, table: str) -> list[tuple[str, str, int, int | None, int | None]]:
    """(exchange or feed, symbol or series, rows, first ts, last ts) per series of trades/book/funding/feed table."""
    first, second = ("feed", "series") if table == "feed_values" else ("exchange", "symbol")
    if table not in ("trades", "book_snapshots", "funding_rates", "feed_values"):
        raise ValueError(f"table: not a market-data series table: {table!r}")
    return [(str(r[0]), str(r[1]), int(r[2]), r[3], r[4]) for r in _query(
        store, f"SELECT {first}, {second}, COUNT(*), MIN(ts), MAX(ts) FROM {table} GROUP BY {first}, {second} "
        f"ORDER BY {first}, {second}")]
