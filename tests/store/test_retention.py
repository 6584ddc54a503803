"""Finding 6: per-table retention (audit and fills forever by default, snapshots thinned not deleted, open alerts
and unfinished commands kept) and a candle span query that seeks the primary key instead of reading the series."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from engine.config import RetentionConfig
from engine.store.db import open_store
from engine.store.market_repo import candle_bounds, candle_span
from engine.store.retention import DAY_MS, HOUR_MS, apply_retention

NOW = 1_800_000_000_000


def _count(store, table: str, where: str = "1=1") -> int:
    with store.raw() as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])


def _fill(store) -> None:
    old, new = NOW - 200 * DAY_MS, NOW - HOUR_MS
    with store.raw() as conn:
        for ts in (old, new):
            conn.execute("INSERT INTO audit_log (ts, source, user, action, details) VALUES (?, 'cli', 'u', 'x', '{}')",
                         (ts,))
            for acked in (0, 1):
                conn.execute("INSERT INTO alerts (ts, severity, rule, source, message, values_json, acked) "
                             "VALUES (?, 'info', 'r', 's', 'm', '{}', ?)", (ts, acked))
            for status in ("pending", "done"):
                conn.execute("INSERT INTO commands (created_at, source, user, command, args, status) "
                             "VALUES (?, 'cli', 'u', 'halt', '{}', ?)", (ts, status))
            conn.execute("INSERT INTO sizing_decisions (ts, instance_id, symbol, side, raw_size, cap_applied, "
                         "final_size, inputs) VALUES (?, 'qm', 'BTC/USDT', 1, 0.1, '', 0.1, '{}')", (ts,))
        for minute in range(180):  # three old hours of 1-minute equity and book snapshots, plus recent ones
            for base in (old, new - 3 * HOUR_MS):
                ts = base - base % HOUR_MS + minute * 60_000
                conn.execute("INSERT INTO equity_snapshots (ts, scope, equity, cash, gross_exposure, net_exposure, "
                             "unrealized_pnl, realized_pnl) VALUES (?, 'portfolio', 1, 1, 0, 0, 0, 0)", (ts,))
                conn.execute("INSERT INTO book_snapshots (exchange, symbol, ts, bids, asks, mid, spread_bps, "
                             "depth_bid, depth_ask) VALUES ('sim', 'BTC/USDT', ?, '[]', '[]', 1, 1, 1, 1)", (ts,))


def test_retention_per_table(tmp_path: Path) -> None:
    store = open_store(tmp_path / "state.db")
    _fill(store)
    removed = apply_retention(store, RetentionConfig(), NOW)
    assert _count(store, "audit_log") == 2  # forever by default
    assert _count(store, "alerts") == 3  # the old acknowledged alert went; the old open one stays
    assert _count(store, "alerts", "acked = 0") == 2
    assert _count(store, "commands") == 3  # the old finished command went; the old pending one stays
    assert _count(store, "sizing_decisions") == 1
    # snapshots older than their window are thinned to one per hour, never deleted; recent ones are untouched
    old_cut = NOW - 7 * DAY_MS
    assert _count(store, "equity_snapshots", f"ts < {old_cut}") == 3
    assert _count(store, "equity_snapshots", f"ts >= {old_cut}") == 180
    assert _count(store, "book_snapshots", f"ts < {NOW - 2 * DAY_MS}") == 3
    assert removed == {"alerts": 1, "commands": 1, "sizing_decisions": 1, "equity_snapshots": 177,
                       "book_snapshots": 177}
    assert apply_retention(store, RetentionConfig(), NOW) == {}  # idempotent
    forever_off = dataclasses.replace(RetentionConfig(), audit_days=30.0)
    assert apply_retention(store, forever_off, NOW) == {"audit_log": 1}


def test_candle_span_seeks_the_primary_key(tmp_path: Path) -> None:
    store = open_store(tmp_path / "state.db")
    rows = [("sim", "BTC/USDT", "1m", NOW + i * 60_000, 1, 1, 1, 1, 1) for i in range(5000)]
    rows += [("sim", "ETH/USDT", "1m", NOW + i * 60_000, 1, 1, 1, 1, 1) for i in range(10)]
    store.executemany("INSERT INTO candles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    assert candle_span(store, "sim", "BTC/USDT", "1m") == candle_bounds(store, "sim", "BTC/USDT", "1m")[1:]
    assert candle_span(store, "sim", "XRP/USDT", "1m") == (None, None)
    with store.raw() as conn:
        for order in ("ASC", "DESC"):
            plan = " ".join(str(r[-1]) for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT ts FROM candles WHERE exchange = ? AND symbol = ? AND timeframe = ? "
                f"ORDER BY ts {order} LIMIT 1", ("sim", "BTC/USDT", "1m")))
            assert "SEARCH" in plan and "PRIMARY KEY" in plan and "TEMP B-TREE" not in plan, plan
    assert json.dumps(candle_span(store, "sim", "ETH/USDT", "1m")) == json.dumps([NOW, NOW + 9 * 60_000])
