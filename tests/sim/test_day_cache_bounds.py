"""The simulator's day caches stay bounded on a long run: a live engine walking through simulated weeks keeps only a
few days of minute data (it grew ~0.8 MB per simulated day for ~100 days with caps of months), and evicted days come
back bit for bit."""

from __future__ import annotations

import numpy as np

from engine.data.simulator import SimulatedExchange

T = 1_790_000_000.0  # 2026-09-21, a fixed wall clock (seconds)
DAY = 86_400_000
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")


def _day(sim: SimulatedExchange, symbol: str, start: int) -> np.ndarray:
    """One day of 1m bars of a symbol, in pages as an ingest reads them, plus the day's first trades."""
    rows = []
    for k in range(3):
        rows += sim.fetch_ohlcv(symbol, "1m", since=start + k * 480 * 60_000, limit=480)
    sim.fetch_trades(symbol, since=start, limit=50)
    return np.asarray(rows)


def test_a_month_of_simulated_days_keeps_the_minute_caches_within_their_caps() -> None:
    sim = SimulatedExchange(seed=11, clock=lambda: T, shared_cache=False)
    first_day = int(T * 1000) - 40 * DAY
    first_day -= first_day % DAY
    before = {s: _day(sim, s, first_day) for s in SYMBOLS}
    sizes = []
    for d in range(1, 31):  # a month of days, every instrument's bars and trades, like a live engine's pulls
        for s in SYMBOLS:
            _day(sim, s, first_day + d * DAY)
        sizes.append(sum(v for k, v in sim._store.cached_bytes().items() if k != "hourly"))
    assert max(sizes) < 30 * 2**20, f"minute caches reached {max(sizes) / 2**20:.1f} MB"
    assert sizes[-1] <= sizes[9] * 1.05, "the caches still grow after ten days"
    again = {s: _day(sim, s, first_day) for s in SYMBOLS}  # long evicted: regenerated
    assert all(np.array_equal(before[s], again[s]) for s in SYMBOLS)
