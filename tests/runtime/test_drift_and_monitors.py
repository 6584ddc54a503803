"""Drift vs the backtest twin, and the monitors' edge-triggered alerts, on a real state.db."""

from __future__ import annotations

import dataclasses

import pytest

from tests.support.backends import raw
from engine.config import Settings, StrategyInstanceConfig, settings_with
from engine.execution.orders import Fill, OrderRequest, insert_order, record_fill
from engine.monitoring import drift
from engine.trading import lifecycle
from engine.monitoring.monitors import Monitors
from engine.store.candles import upsert_candles
from engine.store.ops import list_alerts

MIN = 60_000
T0 = 1_767_225_600_000


def _settings(**lc) -> Settings:
    s = dataclasses.replace(Settings(), strategies={"qm": StrategyInstanceConfig(strategy="quantum_momentum")})
    return settings_with(s, lifecycle=lc) if lc else s


def _bars(store, n: int = 150) -> None:
    rows = [[T0 + i * MIN, 100.0 + 0.1 * (i % 7), 101.0, 99.0, 100.0 + 0.1 * ((i + 1) % 7), 50.0] for i in range(n)]
    upsert_candles(store, "sim", "BTC/USDT", "1m", rows)


def _trade(store, coid: str, side: str, price: float, fee: float, created: int) -> None:
    insert_order(store, OrderRequest(instance_id="qm", symbol="BTC/USDT", side=side, qty=2.0, client_order_id=coid),
                 created)
    record_fill(store, Fill(f"{coid}:1", coid, "qm", "BTC/USDT", side, 2.0, price, fee, "taker", created + 50))


def test_each_fill_is_paired_with_the_twin_on_the_same_bar(store):
    settings = _settings()
    lifecycle.sync_instances(store, settings)
    _bars(store)
    created = T0 + 120 * MIN + 1_500  # decided after bar 119 closed: the twin fills at bar 120's open
    _trade(store, "c1", "buy", 100.30, 0.1003, created)
    assert drift.pair_fills(store, settings, "sim") == 1
    assert drift.pair_fills(store, settings, "sim") == 0  # paired once
    with raw(store) as conn:
        (row,) = conn.execute("SELECT live_price, twin_price, live_fee, twin_fee, slippage_bps, drift_bps, leg "
                              "FROM twin_trades").fetchall()
    sigma = drift.bar_sigma(store, "sim", "BTC/USDT", "1m", T0 + 120 * MIN)
    bt = settings.backtest
    open_120 = 100.0 + 0.1 * (120 % 7)
    expected_twin = open_120 * (1 + bt.half_spread_bps / 1e4 + bt.impact_coef * sigma * (2.0 / 50.0) ** 0.5)
    assert sigma > 0 and row[1] == pytest.approx(expected_twin)
    assert row[4] == pytest.approx((100.30 - expected_twin) / expected_twin * 1e4)
    assert row[3] == pytest.approx(2.0 * expected_twin * bt.fee_taker)
    assert row[5] == pytest.approx(row[4] + (0.1003 - row[3]) / (2.0 * expected_twin) * 1e4)
    assert row[6] == "entry"


def test_drift_beyond_tolerance_raises_an_alert(store):
    settings = _settings(max_drift_bps=5.0)
    lifecycle.sync_instances(store, settings)
    _bars(store)
    _trade(store, "c2", "sell", 99.0, 0.5, T0 + 121 * MIN + 900)  # sold ~1% below the twin
    drift.pair_fills(store, settings, "sim")
    (breach,) = drift.check_drift(store, settings)
    assert breach["instance_id"] == "qm" and breach["mean_abs_drift_bps"] > 5.0
    assert any(a.rule == "drift.twin" for a in list_alerts(store))


class _Source:
    """A MarketSource stand-in that only tells the time (monitors read data from state.db)."""

    id = "sim"
    speed = 1.0

    def __init__(self, now: int) -> None:
        self.now = now

    def milliseconds(self) -> int:
        return self.now

    def fetch_order_book(self, symbol, limit=None):
        raise RuntimeError("no book in this test")


def test_stale_data_alerts_on_the_edge_and_clears(store):
    settings = settings_with(_settings(), data={"symbols": ("BTC/USDT",), "stale_after_s": 120.0})
    _bars(store, 10)
    src = _Source(T0 + 10 * MIN + 30_000)
    mon = Monitors(store, settings, src)
    assert mon.stale_data()["BTC/USDT:1m"] == pytest.approx(30.0)
    assert not [a for a in list_alerts(store) if a.rule == "monitor.stale_data"]
    src.now += 10 * MIN
    mon.stale_data()
    mon.stale_data()  # still stale: no second alert
    alerts = [a for a in list_alerts(store) if a.rule == "monitor.stale_data"]
    assert len(alerts) == 1 and alerts[0].severity == "warning" and alerts[0].values["age_s"] > 120
    _bars(store, 25)
    mon.stale_data()
    alerts = [a for a in list_alerts(store) if a.rule == "monitor.stale_data"]
    assert len(alerts) == 2 and alerts[0].message.startswith("cleared")


def test_toxicity_reads_vpin_from_the_simulated_tape_and_withholds_an_unfilled_cdf(store):
    from engine.data.ingest import ingest_candles
    from engine.data.simulator import SimulatedExchange
    from engine.monitoring.toxicity import ToxicityBook

    clock = [T0 / 1000]
    sim = SimulatedExchange(seed=3, symbols=["BTC/USDT"], clock=lambda: clock[0])
    ingest_candles(store, sim, "BTC/USDT", "1m", sim.milliseconds() - 2 * 86_400_000)
    settings = settings_with(_settings(), data={"symbols": ("BTC/USDT",)})
    book = ToxicityBook(store, settings, sim)
    book.update()
    clock[0] += 900
    book.update()
    assert 0 < book.vpin["BTC/USDT"] < 1
    tracker = book.trackers["BTC/USDT"]
    assert tracker.buckets_completed > tracker.window  # warmed on stored bars, then fed trades
    assert "BTC/USDT" not in book.cdf  # ~2 days of buckets < window + cdf_window: no CDF for the trigger yet
    full = settings_with(settings, risk={"vpin_cdf_window": 20, "vpin_window": 10})
    book2 = ToxicityBook(store, full, sim)
    book2.update()
    assert 0 < book2.cdf["BTC/USDT"] <= 1
