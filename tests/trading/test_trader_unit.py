"""Trader and LiveSizer as a unit: candle -> signal -> size -> order, with a fake market source and an instant-fill
broker (both implement the MarketSource / Broker protocols) over a real state.db.

Covered: the candle-to-order path, lot rounding of the sent quantity, the rebalance band, orders blocked while
HALTED or REDUCING (exposure-adding only), and the model fallback (a champion that cannot score sizes without the
overlay, with one alert).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.clock import floor_ts
from engine.config import Settings, StrategyInstanceConfig, settings_with
from engine.execution.broker import check_order_allowed
from engine.execution.orders import Fill, OrderRequest, insert_order, load_positions, record_fill
from engine.risk.limits import round_to_lot
from engine.risk.trading_state import TradingState, set_state
from engine.store import open_store
from engine.store.candles import upsert_candles
from engine.store.db import Store
from engine.store.ops import list_alerts
from engine.trading.lifecycle import get_instance, sync_instances
from engine.trading.trader import Trader

MIN = 60_000
T0 = 1_790_000_000_000 - 1_790_000_000_000 % MIN  # a minute boundary
SYMS = ("AAA/USDT", "BBB/USDT")


class FakeSource:
    """A MarketSource with a settable clock and price, one lot step per symbol and a deep book."""

    id = "fake"

    def __init__(self, lot: float = 0.001) -> None:
        self.now = T0
        self.price = {s: 100.0 for s in SYMS}
        self.lot = lot

    def milliseconds(self) -> int:
        """Source time."""
        return self.now

    def market(self, symbol: str) -> dict[str, Any]:
        """ccxt market structure: amount precision as a tick size."""
        return {"symbol": symbol, "precision": {"amount": self.lot}, "limits": {"amount": {"min": 0.0}}}

    def fetch_order_book(self, symbol: str, limit: int | None = None) -> dict[str, Any]:
        """A deep book around the price (depth never binds)."""
        p = self.price[symbol]
        return {"bids": [[p * 0.9999, 1e6]], "asks": [[p * 1.0001, 1e6]], "timestamp": self.now}


class InstantBroker:
    """A Broker that checks the real trading-state rule, then fills at the mark at once (real orders/fills)."""

    mode = "paper"
    venue = "paper"

    def __init__(self, store: Store, source: FakeSource) -> None:
        self.store, self.source, self.sent = store, source, []
        self.no_short: set[str] = set()  # symbols this venue cannot hold short (a spot market on an exchange)

    def submit(self, req: OrderRequest) -> dict[str, Any]:
        """Refuse what the trading state blocks; otherwise store the order and fill it in full."""
        check_order_allowed(self.store, req)
        insert_order(self.store, req, self.source.now, venue=self.venue)
        record_fill(self.store, Fill(f"{req.client_order_id}:1", req.client_order_id, req.instance_id, req.symbol,
                                     req.side, req.qty, self.mark_price(req.symbol), 0.0, "taker", self.source.now))
        self.sent.append(req)
        return {"client_order_id": req.client_order_id, "status": "filled"}

    def cancel(self, client_order_id: str) -> bool:
        """Nothing rests: nothing to cancel."""
        return False

    def cancel_all(self, instance_id: str | None = None) -> int:
        """Nothing rests: nothing to cancel."""
        return 0

    def process(self) -> int:
        """Fills are instant."""
        return 0

    def recover(self) -> dict[str, Any]:
        """Nothing in flight."""
        return {}

    def mark_price(self, symbol: str) -> float:
        """The fake source's price."""
        return self.source.price[symbol]

    def min_amount(self, symbol: str) -> float:
        """The lot step."""
        return self.source.lot

    def set_capital_cap(self, instance_id: str, capital: float) -> None:
        """No caps in this broker."""

    def can_short(self, instance_id: str, symbol: str) -> bool:
        """Every symbol but those the test marks as spot-on-an-exchange."""
        return symbol not in self.no_short

    def reconcile(self) -> dict[str, Any]:
        """Nothing to reconcile."""
        return {}

    def apply_funding(self) -> int:
        """Spot only."""
        return 0


class FixedWeights:
    """A strategy whose weight per symbol the test sets (every bar gets the current weights)."""

    warmup_bars = 0

    def __init__(self) -> None:
        self.w: dict[str, float] = {s: 0.0 for s in SYMS}

    def weights(self, panel: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """The current weights on every bar of the panel."""
        index = next(iter(panel.values())).index
        return pd.DataFrame({s: np.full(len(index), self.w[s]) for s in panel}, index=index)


@pytest.fixture
def desk(tmp_path: Path):  # noqa: ANN201 - (trader, source, broker, strategy, store, instance)
    settings = settings_with(dataclasses.replace(Settings(), strategies={
        "t1": StrategyInstanceConfig(strategy="quantum_momentum", capital=100_000.0, symbols=SYMS, timeframe="1m")}),
        store={"path": str(tmp_path / "state.db")}, risk={"sizing": "fixed"})
    store = open_store(settings.store_url())
    sync_instances(store, settings)
    source = FakeSource()
    broker = InstantBroker(store, source)
    trader = Trader(store, settings, broker, source)
    strat = FixedWeights()
    trader._strategies["t1"] = strat
    yield trader, source, broker, strat, store, get_instance(store, "t1")
    store.dispose()


def _next_bar(source: FakeSource, store: Store, price: dict[str, float] | None = None) -> int:
    """Advance one minute and store the bar that just closed (and a short history before it)."""
    source.now += MIN
    source.price.update(price or {})
    bar = floor_ts(source.now, "1m") - MIN
    for s in SYMS:
        p = source.price[s]
        upsert_candles(store, "fake", s, "1m", [[bar - k * MIN, p, p, p, p, 1.0] for k in range(5)])
    return bar


def test_a_closed_candle_becomes_a_signal_a_size_and_a_lot_rounded_order(desk) -> None:  # noqa: ANN001
    trader, source, broker, strat, store, inst = desk
    source.lot = 0.01
    strat.w["AAA/USDT"] = 1.0
    bar = _next_bar(source, store)
    res = trader.tick(inst, 100_000.0)
    assert res.bar_ts == bar and len(res.orders) == 1 and res.targets["BBB/USDT"] == 0.0
    (req,) = broker.sent
    assert req.side == "buy" and req.symbol == "AAA/USDT" and not req.reduce_only
    assert req.qty > 0 and math.isclose(req.qty / 0.01, round(req.qty / 0.01), abs_tol=1e-6)  # whole lots
    assert req.qty == pytest.approx(abs(round_to_lot(res.targets["AAA/USDT"], 0.01)))
    assert not trader.due(inst)  # one tick per closed bar
    with store.connect() as conn:
        overlay = conn.exec_driver_sql("SELECT inputs FROM sizing_decisions WHERE symbol='AAA/USDT'").scalar()
    assert "overlay" in overlay  # the decision is recorded with why it was sized that way


def test_held_positions_inside_the_rebalance_band_are_left_alone(desk) -> None:  # noqa: ANN001
    trader, source, broker, strat, store, inst = desk
    strat.w["AAA/USDT"] = 1.0
    _next_bar(source, store)
    trader.tick(inst, 100_000.0)
    held = load_positions(store, "t1")[0]["qty"]
    _next_bar(source, store, {"AAA/USDT": 103.0})  # target moves ~3%: inside the 10% band
    assert trader.tick(inst, 100_000.0).orders == []
    _next_bar(source, store, {"AAA/USDT": 125.0})  # ~20% off target: re-sized toward it
    res = trader.tick(inst, 100_000.0)
    assert len(res.orders) == 1 and broker.sent[-1].side == "sell" and broker.sent[-1].reduce_only
    assert abs(load_positions(store, "t1")[0]["qty"]) < abs(held)


def test_halted_blocks_every_order_and_reducing_blocks_only_new_exposure(desk) -> None:  # noqa: ANN001
    trader, source, broker, strat, store, inst = desk
    strat.w["AAA/USDT"] = 1.0
    set_state(store, TradingState.HALTED, "test", "console")
    _next_bar(source, store)
    assert trader.tick(inst, 100_000.0).orders == [] and broker.sent == []
    set_state(store, TradingState.ACTIVE, "test", "console", confirmed=True)
    _next_bar(source, store)
    trader.tick(inst, 100_000.0)
    assert len(broker.sent) == 1
    set_state(store, TradingState.REDUCING, "test", "console")
    strat.w["BBB/USDT"] = 1.0  # new exposure: blocked
    _next_bar(source, store)
    assert trader.tick(inst, 100_000.0).orders == []
    strat.w["AAA/USDT"] = 0.0  # closing the held position: allowed
    _next_bar(source, store)
    res = trader.tick(inst, 100_000.0)
    assert len(res.orders) == 1 and broker.sent[-1].symbol == "AAA/USDT" and broker.sent[-1].reduce_only
    assert [p["symbol"] for p in load_positions(store, "t1")] == []


class Unscorable:
    """A 'model' whose features the live panel does not have: scoring fails every time."""

    def predict_proba(self, x: Any) -> np.ndarray:
        """Never reached: the features cannot be built."""
        raise AssertionError("unreachable")


def test_a_champion_that_cannot_score_falls_back_to_sizing_without_it(desk, tmp_path: Path) -> None:  # noqa: ANN001
    from engine.ml.registry import ModelRegistry

    trader, source, broker, strat, store, inst = desk
    trader.settings = settings_with(trader.settings, ml={"overlay_requires_evidence": False})
    trader.sizer.settings = trader.settings
    registry = ModelRegistry(store, tmp_path / "models")
    rec = registry.save("quantum_momentum", Unscorable(), ["no_such_feature"], 0, 1, "h", {}, 0.6, 1.5)
    registry.promote("quantum_momentum", rec.version)
    strat.w["AAA/USDT"] = 1.0
    for _ in range(2):
        _next_bar(source, store)
        trader.tick(inst, 100_000.0)
    assert len(broker.sent) == 1  # sized and sent without the overlay ...
    with store.connect() as conn:
        alerts = conn.exec_driver_sql("SELECT COUNT(*) FROM alerts WHERE rule = 'sizing.model'").scalar()
    assert alerts == 1  # ... and said so once, not on every tick


def test_round_to_lot_is_signed_and_float_safe() -> None:
    assert round_to_lot(0.3, 0.1) == 0.3  # 0.3 / 0.1 is 2.999... in floats
    assert round_to_lot(-0.379, 0.01) == -0.37  # toward zero, sign kept
    assert round_to_lot(0.009, 0.01) == 0.0 and round_to_lot(1.23456, 0.0) == 1.23456


def test_a_stop_that_fired_on_the_exchange_is_not_re_entered_on_the_same_signal(desk) -> None:  # noqa: ANN001
    """Live: the exchange's protective stop closed the position (perhaps while the engine was down); the next ticks
    keep it flat while the weight is unchanged, and trade again once it changes (as paper and the backtest)."""
    trader, source, broker, strat, store, inst = desk
    strat.w["AAA/USDT"] = 1.0
    _next_bar(source, store)
    trader.tick(inst, 100_000.0)
    held = load_positions(store, "t1")[0]["qty"]
    stop = OrderRequest(instance_id="t1", symbol="AAA/USDT", side="sell", qty=held, client_order_id="qd-t1-ps1",
                        type="stop", price=95.0, reduce_only=True, intent="protect", reason="protect stop")
    insert_order(store, stop, source.now, venue="exchange")
    record_fill(store, Fill("qd-t1-ps1:1", "qd-t1-ps1", "t1", "AAA/USDT", "sell", held, 95.0, 0.0, "taker",
                            source.now))
    assert load_positions(store, "t1") == []
    sent = len(broker.sent)
    for _ in range(3):
        _next_bar(source, store, {"AAA/USDT": 95.0})
        trader.tick(inst, 100_000.0)
    assert len(broker.sent) == sent and load_positions(store, "t1") == []  # stopped out: no re-entry
    strat.w["AAA/USDT"] = 0.5  # the signal changes: trading resumes
    _next_bar(source, store)
    trader.tick(inst, 100_000.0)
    assert len(broker.sent) == sent + 1 and load_positions(store, "t1")[0]["qty"] > 0


def test_a_short_signal_where_the_venue_cannot_short_is_held_flat_without_an_order(desk) -> None:  # noqa: ANN001
    """A live instance on a spot market got -1 from its strategy: the exchange refused every sell (no BTC to sell)
    and the trader sent it again on every bar, one alert each (seen in benchmarks/rehearse_live.sh). The trader now
    asks the broker whether the instance can hold a short there, closes a long, and otherwise holds flat."""
    trader, source, broker, strat, store, inst = desk
    broker.no_short = {"AAA/USDT"}
    strat.w["AAA/USDT"] = 1.0
    _next_bar(source, store)
    trader.tick(inst, 100_000.0)
    assert broker.sent[-1].side == "buy"  # long is allowed
    strat.w["AAA/USDT"] = -1.0
    _next_bar(source, store)
    res = trader.tick(inst, 100_000.0)
    assert res.targets["AAA/USDT"] == 0.0 and broker.sent[-1].side == "sell" and broker.sent[-1].reduce_only
    assert all(abs(p["qty"]) < 1e-12 for p in load_positions(store, "t1") if p["symbol"] == "AAA/USDT")
    bar = _next_bar(source, store)
    assert trader.tick(inst, 100_000.0).orders == []  # and no order on the next bars
    with store.connect() as conn:
        cap, inputs = conn.exec_driver_sql("SELECT cap_applied, inputs FROM sizing_decisions WHERE symbol='AAA/USDT' "
                                           "AND ts=? ORDER BY id DESC LIMIT 1", (bar,)).one()
    assert cap == "no_short" and '"strategy_weight": -1.0' in inputs and "cannot hold a short" in inputs
    (told,) = [a for a in list_alerts(store) if a.rule == "trading.no_short"]  # once, not on every bar
    assert "t1: AAA/USDT" in told.message and "perpetual" in told.message
    strat.w["BBB/USDT"] = -1.0  # a symbol the venue can short is sold short as before
    _next_bar(source, store)
    trader.tick(inst, 100_000.0)
    assert broker.sent[-1].symbol == "BBB/USDT" and broker.sent[-1].side == "sell" and not broker.sent[-1].reduce_only
