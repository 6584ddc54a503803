"""Emergency flatten over HTTP on the twin: a USD-M perp position, a resting limit and a protective order end with the
account flat and no open order (issue 13, "emergency stop with resting limits, protective stops and an open perp")."""

from __future__ import annotations

from engine.execution.ccxt_broker import CcxtBroker
from engine.execution.flatten import flatten_until_flat
from engine.execution.orders import OrderRequest, load_positions
from engine.risk.trading_state import TradingState, set_state

PERP = "BTC/USDT:USDT"


def test_emergency_flatten_closes_a_perp_and_pulls_every_order(store, twin):
    broker = CcxtBroker(store, twin.exchange(), max_retries=2, symbols=[PERP], sleep=lambda s: None)
    ex = broker.exchange
    ex.load_markets()
    last = ex.fetch_ticker(PERP)["last"]
    broker.submit(OrderRequest(instance_id="ls", symbol=PERP, side="sell", qty=0.01, client_order_id="qd-ls-open1"))
    broker.submit(OrderRequest(instance_id="ls", symbol=PERP, side="sell", qty=0.01, client_order_id="qd-ls-rest1",
                               type="limit", price=float(ex.price_to_precision(PERP, last * 1.3))))
    broker.submit(OrderRequest(instance_id="ls", symbol=PERP, side="buy", qty=0.01, client_order_id="qd-ls-prot1",
                               type="limit", price=float(ex.price_to_precision(PERP, last * 0.7)), reduce_only=True,
                               reason="protect take-profit"))
    assert [p["qty"] for p in load_positions(store)] == [-0.01]
    assert len(ex.fetch_open_orders(PERP)) == 2
    set_state(store, TradingState.HALTED, "emergency stop", "cli", "op")
    report = flatten_until_flat(store, [broker], round_wait_s=0.1)
    assert report.flat, report.summary()
    assert report.canceled_ids == ["qd-ls-rest1", "qd-ls-prot1"]  # the protective order is pulled last
    assert ex.fetch_open_orders(PERP) == []
    assert [p for p in ex.fetch_positions([PERP]) if float(p.get("contracts") or 0) != 0] == []
    assert load_positions(store) == []
