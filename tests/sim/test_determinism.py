"""The simulated world is a function of (seed, symbol, absolute time), not of when or how the simulator started."""

from __future__ import annotations

from engine.data.simulator import SimulatedExchange

T = 1_790_000_000.0  # 2026-09-21, a fixed wall clock
DAY = 86_400_000


class FakeClock:
    """A settable wall clock (seconds)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _pull(sim: SimulatedExchange, symbol: str, since: int, until: int) -> list[list[float]]:
    """Bars with open time in [since, until), paged like an ingest job."""
    out: list[list[float]] = []
    cursor = since
    while cursor < until:
        page = sim.fetch_ohlcv(symbol, "1m", since=cursor, limit=500)
        if not page:
            break
        out.extend(b for b in page if b[0] < until)
        cursor = int(page[-1][0]) + 60_000
    return out


def test_backfill_and_later_live_run_agree_on_overlap() -> None:
    """A backfill today and a sped-up live run started days earlier produce identical overlapping data."""
    backfill = SimulatedExchange(seed=7, clock=lambda: T, shared_cache=False)
    clock = FakeClock(T - 3 * 86_400)
    live = SimulatedExchange(seed=7, clock=clock, speed=60.0, shared_cache=False)
    clock.t += 3 * 86_400 / 60 + 1_800  # live run catches up past T
    assert live.milliseconds() > backfill.milliseconds()
    since, until = int(T * 1000) - 2 * DAY, int(T * 1000) - 60_000 * (int(T * 1000) % 60_000 > 0)
    until -= until % 60_000
    for symbol in ("BTC/USDT", "SOL/USDT:USDT"):
        # Access order differs too: newest day first on one side.
        live.fetch_ohlcv(symbol, "1m", since=until - 3_600_000, limit=10)
        a = _pull(backfill, symbol, since, until)
        b = _pull(live, symbol, since, until)
        assert len(a) == 2 * 1440 - 0 or len(a) > 2800
        assert a == b
        ta = backfill.fetch_trades(symbol, since=since + 3_600_000, limit=300)
        tb = live.fetch_trades(symbol, since=since + 3_600_000, limit=300)
        assert ta == tb and len(ta) == 300
    fa = backfill.fetch_funding_rate_history("ETH/USDT:USDT", since=int(T * 1000) - 20 * DAY, limit=30)
    fb = live.fetch_funding_rate_history("ETH/USDT:USDT", since=int(T * 1000) - 20 * DAY, limit=30)
    assert fa == fb and len(fa) == 30
    ba = backfill.order_book_at("BTC/USDT", int(T * 1000) - DAY + 12_345)
    bb = live.order_book_at("BTC/USDT", int(T * 1000) - DAY + 12_345)
    assert ba == bb


def test_repeat_pull_is_identical_and_symbol_subset_does_not_matter() -> None:
    """Pulling twice rewrites identical values; listing fewer symbols does not change any symbol's data."""
    full = SimulatedExchange(seed=3, clock=lambda: T)
    only_eth = SimulatedExchange(seed=3, symbols=["ETH/USDT"], clock=lambda: T, shared_cache=False)
    first = full.fetch_ohlcv("ETH/USDT", "1h", since=int(T * 1000) - 10 * DAY, limit=200)
    second = full.fetch_ohlcv("ETH/USDT", "1h", since=int(T * 1000) - 10 * DAY, limit=200)
    third = only_eth.fetch_ohlcv("ETH/USDT", "1h", since=int(T * 1000) - 10 * DAY, limit=200)
    assert first == second == third
    feeds_a = full.feed_source("onchain").fetch_feed(int(T * 1000) - 3 * DAY, int(T * 1000))
    feeds_b = only_eth.feed_source("onchain").fetch_feed(int(T * 1000) - 3 * DAY, int(T * 1000))
    assert feeds_a == feeds_b and len(feeds_a) > 60


def test_different_seed_gives_a_different_world() -> None:
    """Another seed changes bars, trades and funding."""
    a = SimulatedExchange(seed=7, clock=lambda: T)
    b = SimulatedExchange(seed=8, clock=lambda: T)
    since = int(T * 1000) - DAY
    assert a.fetch_ohlcv("BTC/USDT", since=since, limit=50) != b.fetch_ohlcv("BTC/USDT", since=since, limit=50)
    assert a.fetch_trades("BTC/USDT", since=since, limit=50) != b.fetch_trades("BTC/USDT", since=since, limit=50)
    fa = [r["fundingRate"] for r in a.fetch_funding_rate_history("SOL/USDT:USDT", limit=200)]
    fb = [r["fundingRate"] for r in b.fetch_funding_rate_history("SOL/USDT:USDT", limit=200)]
    assert fa != fb
