"""The account risk budget is checked before each order, not only on the monitors' interval (issue 13): an order that
would take the account past a REDUCING threshold is refused with the reason in the audit log; reducing orders pass."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import insert, select

from engine.config import Settings, StrategyInstanceConfig
from engine.data.simulator import SimulatedExchange
from engine.execution.orders import OrderBlocked, OrderRequest, position_qty
from engine.execution.paper_broker import PaperBroker
from engine.execution.router import StageRouter
from engine.risk.account_budget import budget_breach, order_budget_check
from engine.store.schema import audit_log, equity_snapshots
from engine.trading import lifecycle
from tests.support.backends import raw


def _equity(store, value: float, ts: int) -> None:
    with store.begin() as conn:
        conn.execute(insert(equity_snapshots).values(ts=ts, scope="portfolio", equity=value, cash=value,
                                                     gross_exposure=0.0, net_exposure=0.0, unrealized_pnl=0.0,
                                                     realized_pnl=0.0))


@pytest.fixture
def router(store):
    inst = {"pp": StrategyInstanceConfig(strategy="quantum_momentum", capital=10_000.0, stage="paper",
                                         symbols=("BTC/USDT",))}
    lifecycle.sync_instances(store, dataclasses.replace(Settings(), strategies=inst))
    sim = SimulatedExchange(seed=3, symbols=["BTC/USDT"], speed=1.0, clock=lambda: 1_767_225_600.0)
    r = StageRouter(store, PaperBroker(store, sim, latency_ms=0.0), None, lambda i: "paper")
    r.budget = order_budget_check(store, Settings().triggers, r.mark_price)
    return r, sim


def test_an_order_past_the_symbol_budget_is_refused_and_audited(store, router):
    r, sim = router
    mark = r.mark_price("BTC/USDT")
    _equity(store, 10_000.0, sim.milliseconds())
    qty_ok = round(0.4 * 10_000.0 / mark, 4)  # 0.4 x equity: under symbol_exposure_reduce 0.5
    r.submit(OrderRequest(instance_id="pp", symbol="BTC/USDT", side="buy", qty=qty_ok, client_order_id="qd-pp-1"))
    assert position_qty(store, "pp", "BTC/USDT") > 0
    with pytest.raises(OrderBlocked, match="BTC/USDT exposure would be"):  # +0.2 x equity -> 0.6 > 0.5
        r.submit(OrderRequest(instance_id="pp", symbol="BTC/USDT", side="buy", qty=round(0.2 * 10_000 / mark, 4),
                              client_order_id="qd-pp-2"))
    with store.connect() as conn:
        refused = conn.execute(select(audit_log.c.action, audit_log.c.details)
                               .where(audit_log.c.action == "order.refused")).all()
    assert len(refused) == 1 and "qd-pp-2" in refused[0][1] and "0.5" in refused[0][1]
    # reducing always passes
    r.submit(OrderRequest(instance_id="pp", symbol="BTC/USDT", side="sell", qty=qty_ok, client_order_id="qd-pp-3"))
    assert position_qty(store, "pp", "BTC/USDT") == pytest.approx(0.0, abs=1e-9)


def test_a_day_past_the_loss_budget_refuses_new_exposure(store):
    trig = Settings().triggers
    _equity(store, 10_000.0, 1_767_225_600_000)
    _equity(store, 9_600.0, 1_767_225_660_000)  # -4 % from today's peak > daily_drawdown_reduce 3 %
    why = budget_breach(store, "BTC/USDT", 0.001, 50_000.0, trig, now=1_767_225_700_000)
    assert why is not None and "daily loss 4.00%" in why
    _equity(store, 9_900.0, 1_767_225_720_000)
    assert budget_breach(store, "BTC/USDT", 0.001, 50_000.0, trig, now=1_767_225_730_000) is None


def test_held_positions_are_valued_at_the_current_mark_not_their_entry(store):
    """A position entered at a quarter of today's price is four times the exposure its entry price says: an order
    that fits the budget at entry prices is refused at marks (failed before: held symbols were valued at entry)."""
    inst = {"pp": StrategyInstanceConfig(strategy="quantum_momentum", capital=10_000.0, stage="paper",
                                         symbols=("BTC/USDT", "ETH/USDT"))}
    lifecycle.sync_instances(store, dataclasses.replace(Settings(), strategies=inst))
    sim = SimulatedExchange(seed=3, symbols=["BTC/USDT", "ETH/USDT"], speed=1.0, clock=lambda: 1_767_225_600.0)
    r = StageRouter(store, PaperBroker(store, sim, latency_ms=0.0), None, lambda i: "paper")
    r.budget = order_budget_check(store, Settings().triggers, r.mark_price)
    _equity(store, 10_000.0, sim.milliseconds())
    eth = r.mark_price("ETH/USDT")
    qty = round(0.35 * 10_000.0 / eth, 4)  # 0.35 x equity at today's mark
    with raw(store) as conn:  # held since the price was a quarter of today's
        conn.execute("INSERT INTO positions (instance_id, symbol, qty, avg_price, realized_pnl, fees, "
                             "funding, updated_at) VALUES ('pp', 'ETH/USDT', ?, ?, 0, 0, 0, 0)", (qty, eth / 4))
    btc = r.mark_price("BTC/USDT")
    order = round(0.45 * 10_000.0 / btc, 4)  # ETH 0.35 + BTC 0.45 = 0.80 gross at marks, under 1.75
    trig = dataclasses.replace(Settings().triggers, gross_exposure_reduce=0.7)
    assert budget_breach(store, "BTC/USDT", order, btc, trig) is None  # no marks: at entry 0.09 + 0.45 = 0.54
    assert "(valued at entry, no mark for ETH/USDT)" in budget_breach(store, "BTC/USDT", order * 2, btc, trig)
    why = budget_breach(store, "BTC/USDT", order, btc, trig, mark=r.mark_price)  # at the sim's marks: 0.80
    assert why is not None and why.startswith("gross exposure would be 0.80 x equity") and "entry" not in why
    r.budget = order_budget_check(store, trig, r.mark_price)
    with pytest.raises(OrderBlocked, match="gross exposure would be 0.80"):
        r.submit(OrderRequest(instance_id="pp", symbol="BTC/USDT", side="buy", qty=order, client_order_id="qd-pp-m"))
