"""`candle_gaps` answers a complete series from one aggregate instead of the window scan (the retrain checks 2 years
x 3 symbols of 1h bars every time); the answer must stay the scan's for every series: random holes, off-grid
bars, ranges starting and ending inside holes, on SQLite and PostgreSQL (`backend_url`, tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.store import open_store
from engine.store.market_repo import _query, candle_gaps
from engine.store.candles import upsert_candles

H = 3_600_000
T0 = 1_726_927_200_000


def _scan(store, symbol: str, since: int | None, until: int | None) -> list[tuple[int, int, int]]:  # noqa: ANN001
    """The window-scan answer alone (the reference the fast path must equal)."""
    key, where, bounds = ("t", symbol, "1h"), "exchange = ? AND symbol = ? AND timeframe = ?", []
    if since is not None:
        before = _query(store, f"SELECT MAX(ts) FROM candles WHERE {where} AND ts < ?", (*key, since))[0][0]
        where += " AND ts >= ?"
        bounds.append(since if before is None else int(before))
    if until is not None:
        after = _query(store, f"SELECT MIN(ts) FROM candles WHERE {where.split(' AND ts')[0]} AND ts >= ?",
                       (*key, until))[0][0]
        where += " AND ts <= ?"
        bounds.append(until if after is None else int(after))
    sql = (f"SELECT prev_ts, ts FROM (SELECT ts, LAG(ts) OVER (ORDER BY ts) AS prev_ts FROM candles WHERE {where}) "
           "AS t WHERE ts - prev_ts > ? ORDER BY ts")
    out = []
    for prev_ts, ts in _query(store, sql, (*key, *bounds, H)):
        start, end = int(prev_ts) + H, int(ts) - H
        if since is not None:
            start = max(start, since + (-since) % H)
        if until is not None:
            end = min(end, until - 1 - (until - 1) % H)
        if end >= start:
            out.append((start, end, (end - start) // H + 1))
    return out


@pytest.fixture
def st(backend_url: str):  # noqa: ANN201
    store = open_store(backend_url)
    yield store
    store.dispose()


def test_candle_gaps_equal_the_window_scan_on_complete_holed_and_off_grid_series(st) -> None:  # noqa: ANN001
    rng = np.random.default_rng(7)
    series = {"FULL": np.arange(300) * H, "HOLES": np.delete(np.arange(300) * H, rng.choice(300, 25, replace=False)),
              # two bars off the hour grid and two hours missing: n bars over n - 1 steps, so a count alone would
              # call it complete
              "OFFGRID": np.r_[np.arange(100) * H, 99 * H + H // 3, 99 * H + 2 * H // 3, np.arange(102, 200) * H],
              "ONE": np.array([5 * H]), "EMPTY": np.zeros(0, dtype=np.int64)}
    for sym, offs in series.items():
        upsert_candles(st, "t", sym, "1h", [(int(T0 + o), 1.0, 1.0, 1.0, 1.0, 1.0) for o in offs])
    assert [(g.start_ts, g.end_ts) for g in candle_gaps(st, "t", "OFFGRID", H, "1h")] == [
        (T0 + 100 * H + 2 * H // 3, T0 + 101 * H)]
    ranges = [(None, None), (T0, T0 + 300 * H)] + [tuple(sorted(int(T0 + x) for x in rng.integers(-5 * H, 305 * H, 2)))
                                                     for _ in range(25)]
    for sym in series:
        for since, until in ranges:
            got = [(g.start_ts, g.end_ts, g.missing_bars) for g in candle_gaps(st, "t", sym, H, "1h", since, until)]
            assert got == _scan(st, sym, since, until), (sym, since, until)
    assert candle_gaps(st, "t", "FULL", H, "1h") == [] and len(candle_gaps(st, "t", "HOLES", H, "1h")) > 5
