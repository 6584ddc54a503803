"""Feeds (series, publication lags), ground truth and events, and behaviour at the edges of simulated time."""

from __future__ import annotations

import pytest

from engine.data.simulator import EPOCH_MS, REGIMES, SimulatedExchange
from engine.data.source import FeedPoint

T = 1_790_000_000.0
NOW = int(T * 1000)
DAY = 86_400_000
HOUR = 3_600_000


@pytest.fixture(scope="module")
def sim() -> SimulatedExchange:
    """One exchange at a fixed clock."""
    return SimulatedExchange(seed=7, clock=lambda: T)


def test_feed_series_and_publication_lags(sim: SimulatedExchange) -> None:
    """Daily macro/sentiment published after the day closes; hourly on-chain 15 minutes after the hour closes."""
    since = NOW - NOW % DAY - 5 * DAY
    macro = sim.feed_source("macro").fetch_feed(since, NOW)
    senti = sim.feed_source("sentiment").fetch_feed(since, NOW)
    chain = sim.feed_source("onchain").fetch_feed(NOW - 6 * HOUR, NOW)
    assert all(isinstance(p, FeedPoint) for p in macro + senti + chain)
    assert {p.series for p in macro} == {"risk_index"} and {p.series for p in senti} == {"fear_greed"}
    assert {p.series for p in chain} == {"BTC_netflow", "ETH_netflow", "SOL_netflow"}
    assert len(macro) == 5 and len(senti) == 5  # today's value is not published yet
    assert all(p.ts % DAY == 0 and p.published_ts == p.ts + DAY + HOUR for p in macro)
    assert all(p.published_ts == p.ts + DAY + 5 * 60_000 and 0 <= p.value <= 100 for p in senti)
    assert all(p.ts % HOUR == 0 and p.published_ts == p.ts + HOUR + 15 * 60_000 for p in chain)
    assert [p.ts for p in chain] == sorted(p.ts for p in chain)
    assert max(p.published_ts for p in chain) <= NOW


def test_truth_and_events(sim: SimulatedExchange) -> None:
    """Truth is per minute with known labels; events carry flow start, move start and a 15-90 minute lead."""
    cur_min = NOW - NOW % 60_000
    truth = sim.truth("ETH/USDT:USDT", cur_min - 2 * DAY, NOW)  # complete minutes only
    assert list(truth.columns)[:4] == ["regime", "informed", "informed_side", "stress"]
    assert len(truth) == 2 * 1440 and truth.index.tz is not None and truth.index.name == "ts"
    assert set(truth["regime"].astype(str)) <= set(REGIMES)
    assert truth["informed"].between(0, 1).all() and (truth["stress"] >= 0).all()
    ev = sim.events(NOW - 60 * DAY, NOW)
    assert len(ev) >= 5
    lead = (ev["move_start"] - ev["flow_start"]) / 60_000
    assert lead.between(15, 90).all() and (ev["move_end"] > ev["move_start"]).all()
    assert set(ev["kind"]) <= {"crash", "pump"} and ((ev["kind"] == "crash") == (ev["size"] < 0)).all()
    inside = sim.truth("BTC/USDT", int(ev["flow_start"].iloc[0]), int(ev["move_start"].iloc[0]))
    assert (inside["informed"] >= 0.5).all()  # flow is one-sided throughout the lead


def test_edges_of_time(sim: SimulatedExchange) -> None:
    """Before the epoch there is nothing; the default fetches return the most recent data."""
    assert sim.fetch_ohlcv("BTC/USDT", since=EPOCH_MS - 10 * DAY, limit=5)[0][0] == EPOCH_MS
    old = SimulatedExchange(seed=7, clock=lambda: (EPOCH_MS - DAY) / 1000)
    assert old.fetch_ohlcv("BTC/USDT") == [] and old.fetch_trades("BTC/USDT") == []
    assert old.fetch_funding_rate_history("BTC/USDT:USDT") == []
    with pytest.raises(ValueError, match="ts"):
        old.order_book_at("BTC/USDT", EPOCH_MS - 2 * DAY)
    latest = sim.fetch_ohlcv("SOL/USDT", "15m", limit=10)
    assert len(latest) == 10 and latest[-1][0] == NOW - NOW % (15 * 60_000)
    assert len(sim.fetch_trades("SOL/USDT:USDT", since=NOW - 10 * DAY, limit=5000)) == 5000
    assert sim.history_start() == NOW - 30 * DAY
