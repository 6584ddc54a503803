"""Unified ccxt shapes, market rules, and consistency between bars, trades, books and timeframes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.data.simulator import SimulatedExchange
from engine.data.source import FeedSource, MarketSource

T = 1_790_000_000.0
NOW = int(T * 1000)


@pytest.fixture(scope="module")
def sim() -> SimulatedExchange:
    """One exchange at a fixed clock."""
    return SimulatedExchange(seed=7, clock=lambda: T)


def test_protocols_and_markets(sim: SimulatedExchange) -> None:
    """It satisfies MarketSource; markets carry ccxt type, precision and limits the sizer rounds to."""
    assert isinstance(sim, MarketSource) and sim.id == "sim"
    assert set(sim.symbols) == {"BTC/USDT", "ETH/USDT", "SOL/USDT", "BTC/USDT:USDT", "ETH/USDT:USDT",
                                "SOL/USDT:USDT"}
    for symbol in sim.symbols:
        m = sim.market(symbol)
        assert m["symbol"] == symbol and m["quote"] == "USDT"
        assert m["type"] == ("swap" if symbol.endswith(":USDT") else "spot")
        assert m["spot"] is (m["type"] == "spot") and m["swap"] is (m["type"] == "swap")
        assert 0 < m["precision"]["amount"] <= 1 and 0 < m["precision"]["price"] <= 0.1
        assert m["limits"]["amount"]["min"] == m["precision"]["amount"]
        assert m["limits"]["cost"]["min"] >= 5
    assert sim.market("BTC/USDT:USDT")["settle"] == "USDT" and sim.market("BTC/USDT:USDT")["linear"] is True
    with pytest.raises(ValueError, match="symbol.*DOGE/USDT"):
        sim.market("DOGE/USDT")
    with pytest.raises(ValueError, match="symbols.*XRP/USDT"):
        SimulatedExchange(symbols=["XRP/USDT"], clock=lambda: T)
    with pytest.raises(ValueError, match="speed"):
        SimulatedExchange(speed=0, clock=lambda: T)
    assert isinstance(sim.feed_source("macro"), FeedSource)
    with pytest.raises(ValueError, match="feed.*weather"):
        sim.feed_source("weather")


def test_ohlcv_shape_grid_and_consistency(sim: SimulatedExchange) -> None:
    """Bars are [ts, o, h, l, c, v] on the price tick and amount step; highs/lows bracket opens/closes."""
    for symbol in sim.symbols:
        m = sim.market(symbol)
        bars = sim.fetch_ohlcv(symbol, "1m", since=NOW - 86_400_000, limit=1440)
        assert len(bars) == 1440
        arr = np.array(bars)
        assert all(len(b) == 6 and isinstance(b[0], int) for b in bars)
        assert np.all(np.diff(arr[:, 0]) == 60_000)
        assert np.all(arr[:, 2] >= np.maximum(arr[:, 1], arr[:, 4])) and np.all(arr[:, 3] <= np.minimum(arr[:, 1],
                                                                                                        arr[:, 4]))
        assert np.all(arr[1:, 1] == arr[:-1, 4])  # continuous: open = previous close
        assert np.all(arr[:, 5] > 0)
        for col, step in ((1, m["precision"]["price"]), (5, m["precision"]["amount"])):
            units = arr[:, col] / step
            assert np.allclose(units, np.round(units), atol=1e-6)
    with pytest.raises(ValueError, match="timeframe"):
        sim.fetch_ohlcv("BTC/USDT", "7m")
    with pytest.raises(ValueError, match="limit"):
        sim.fetch_ohlcv("BTC/USDT", limit=0)


@pytest.mark.parametrize("tf", ["5m", "15m", "1h", "4h", "1d"])
def test_higher_timeframes_aggregate_1m(sim: SimulatedExchange, tf: str) -> None:
    """Every higher timeframe equals the aggregation of its 1m bars (complete bars only)."""
    from engine.clock import timeframe_ms

    step = timeframe_ms(tf)
    since = NOW - NOW % 86_400_000 - 2 * 86_400_000
    big = sim.fetch_ohlcv("ETH/USDT:USDT", tf, since=since, limit=3)
    today = sim.fetch_ohlcv("ETH/USDT:USDT", tf, limit=3)  # the latest bars, in the partial current day
    assert today[-1][0] <= NOW < today[-1][0] + step
    for bar in big + today:
        if bar[0] + step > NOW:
            continue
        ones = np.array(sim.fetch_ohlcv("ETH/USDT:USDT", "1m", since=bar[0], limit=step // 60_000))
        assert ones[0, 0] == bar[0] and ones[-1, 0] == bar[0] + step - 60_000
        assert bar[1] == ones[0, 1] and bar[4] == ones[-1, 4]
        assert bar[2] == ones[:, 2].max() and bar[3] == ones[:, 3].min()
        assert math.isclose(bar[5], ones[:, 5].sum(), rel_tol=1e-9)


def test_trades_match_bars(sim: SimulatedExchange) -> None:
    """Per minute: amounts sum to the volume, prices stay in [low, high], first/last = open/close, ids unique."""
    bars = sim.fetch_ohlcv("BTC/USDT", "1m", since=NOW - 7_200_000, limit=60)
    trades = sim.fetch_trades("BTC/USDT", since=bars[0][0], limit=100_000)
    keys = {"id", "timestamp", "datetime", "symbol", "side", "price", "amount", "cost"}
    assert keys <= set(trades[0]) and trades[0]["symbol"] == "BTC/USDT"
    assert len({t["id"] for t in trades}) == len(trades) and all(isinstance(t["id"], str) for t in trades)
    assert all(t["side"] in ("buy", "sell") for t in trades)
    assert [t["timestamp"] for t in trades] == sorted(t["timestamp"] for t in trades)
    by_minute: dict[int, list[dict]] = {}
    for t in trades:
        by_minute.setdefault(t["timestamp"] - t["timestamp"] % 60_000, []).append(t)
    counts = []
    for ts, o, h, low, c, v in bars:
        group = by_minute[ts]
        counts.append(len(group))
        assert math.isclose(sum(t["amount"] for t in group), v, rel_tol=1e-9)
        assert group[0]["price"] == o and group[-1]["price"] == c
        assert max(t["price"] for t in group) == h and min(t["price"] for t in group) == low
        assert all(math.isclose(t["cost"], t["price"] * t["amount"]) for t in group)
    assert 5 <= min(counts) and max(counts) <= 60
    recent = sim.fetch_trades("BTC/USDT", limit=50)
    assert len(recent) == 50 and recent[-1]["timestamp"] <= NOW


def test_order_book_shape(sim: SimulatedExchange) -> None:
    """20+ levels a side, best first, positive sizes on the grid, crossed never, around the last trade."""
    for symbol in ("BTC/USDT", "SOL/USDT:USDT"):
        book = sim.fetch_order_book(symbol)
        assert {"symbol", "bids", "asks", "timestamp", "datetime", "nonce"} <= set(book)
        bids, asks = np.array(book["bids"]), np.array(book["asks"])
        assert len(bids) >= 20 and len(asks) >= 20
        assert np.all(np.diff(bids[:, 0]) < 0) and np.all(np.diff(asks[:, 0]) > 0)
        assert bids[0, 0] < asks[0, 0] and np.all(bids[:, 1] > 0) and np.all(asks[:, 1] > 0)
        last = sim.fetch_trades(symbol, limit=1)[0]["price"]
        assert bids[0, 0] <= last <= asks[0, 0]
        assert all(type(p) is float and type(a) is float for p, a in book["bids"])
        assert len(sim.fetch_order_book(symbol, limit=5)["asks"]) == 5
        with pytest.raises(ValueError, match="limit"):
            sim.fetch_order_book(symbol, limit=0)
        ticker = sim.fetch_ticker(symbol)
        assert ticker["bid"] == bids[0, 0] and ticker["ask"] == asks[0, 0] and ticker["last"] == last


def test_funding_shapes(sim: SimulatedExchange) -> None:
    """Funding rate and history carry ccxt's fields; funding happens every 8 hours; spot has none."""
    fr = sim.fetch_funding_rate("BTC/USDT:USDT")
    assert {"symbol", "fundingRate", "markPrice", "indexPrice", "timestamp", "fundingTimestamp"} <= set(fr)
    assert fr["fundingTimestamp"] > NOW and fr["fundingTimestamp"] % (8 * 3_600_000) == 0
    assert abs(fr["markPrice"] / fr["indexPrice"] - 1) < 0.01
    hist = sim.fetch_funding_rate_history("BTC/USDT:USDT", since=NOW - 10 * 86_400_000)
    assert len(hist) == 30 and all(b["timestamp"] - a["timestamp"] == 8 * 3_600_000 for a, b in zip(hist, hist[1:]))
    assert {"symbol", "fundingRate", "timestamp", "datetime"} <= set(hist[0])
    with pytest.raises(ValueError, match="BTC/USDT.*spot"):
        sim.fetch_funding_rate("BTC/USDT")
