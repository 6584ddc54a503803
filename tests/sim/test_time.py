"""Simulated time: nothing after now is returned, and live mode advances with an injected clock."""

from __future__ import annotations

from engine.data.simulator import SimulatedExchange

T = 1_790_000_123.4


class FakeClock:
    """A settable wall clock (seconds)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_nothing_after_now() -> None:
    """Bars, trades, books, funding and feed publications never lie after simulated now."""
    sim = SimulatedExchange(seed=5, clock=lambda: T)
    now = sim.milliseconds()
    assert now == int(T * 1000)
    for tf in ("1m", "5m", "1h", "1d"):
        bars = sim.fetch_ohlcv("BTC/USDT", tf, since=now - 3 * 86_400_000, limit=100_000)
        assert bars[-1][0] <= now
        assert bars[-1][0] + sim_tf(tf) > now  # the last bar is the forming one
    trades = sim.fetch_trades("ETH/USDT:USDT", since=now - 600_000, limit=100_000)
    assert trades and max(t["timestamp"] for t in trades) <= now
    assert sim.fetch_trades("ETH/USDT", since=now + 1, limit=10) == []
    assert sim.fetch_ohlcv("ETH/USDT", since=now + 60_000) == []
    assert max(r["timestamp"] for r in sim.fetch_funding_rate_history("BTC/USDT:USDT")) <= now
    for feed in ("macro", "sentiment", "onchain"):
        points = sim.feed_source(feed).fetch_feed(now - 10 * 86_400_000, now + 10 * 86_400_000)
        assert points and max(p.published_ts for p in points) <= now
        assert all(p.published_ts > p.ts for p in points)
    truth = sim.truth("BTC/USDT", now - 3_600_000, now + 3_600_000)
    assert truth.index[-1].value // 1_000_000 < now


def sim_tf(tf: str) -> int:
    """Timeframe in ms."""
    from engine.clock import timeframe_ms

    return timeframe_ms(tf)


def test_live_mode_with_fake_clock_and_speedup() -> None:
    """At speed 60, one wall second is one simulated minute; the forming bar completes into the stored bar."""
    clock = FakeClock(T)
    sim = SimulatedExchange(seed=9, clock=clock, speed=60.0)
    start = sim.milliseconds()
    clock.t += 10.0
    assert sim.milliseconds() == start + 600_000
    forming = sim.fetch_ohlcv("SOL/USDT", "1m", limit=1)[0]
    partial_trades = sim.fetch_trades("SOL/USDT", since=forming[0], limit=1000)
    assert forming[5] == round(sum(t["amount"] for t in partial_trades), 3)
    assert forming[1] == partial_trades[0]["price"] and forming[4] == partial_trades[-1]["price"]
    clock.t += 3.0  # three more simulated minutes
    bars = sim.fetch_ohlcv("SOL/USDT", "1m", since=forming[0], limit=10)
    assert len(bars) == 4
    done = bars[0]
    assert done[0] == forming[0] and done[1] == forming[1]
    assert done[2] >= forming[2] and done[3] <= forming[3] and done[5] >= forming[5]
    # A later, non-live instance agrees.
    fresh = SimulatedExchange(seed=9, clock=lambda: clock.t + 10_000, shared_cache=False)
    assert fresh.fetch_ohlcv("SOL/USDT", "1m", since=forming[0], limit=3) == bars[:3]
    book = sim.fetch_order_book("SOL/USDT")
    assert book["timestamp"] == sim.milliseconds()
