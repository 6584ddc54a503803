"""Flatten until flat on a real state.db and the paper broker over the simulated exchange (issue 13, item 2).

The over-the-wire version (exchange twin: resting limits, protective stops, an open perp) is in tests/faults."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.data.simulator import SimulatedExchange
from engine.execution.flatten import flatten_until_flat, is_protective
from engine.execution.orders import (Fill, OrderRequest, insert_order, load_positions, open_orders, record_fill)
from engine.execution.paper_broker import PaperBroker
from engine.risk.trading_state import TradingState, set_state
from engine.store.ops import list_alerts
from engine.store.schema import audit_log

T0 = 1_767_225_600.0


@pytest.fixture
def paper(store):
    sim = SimulatedExchange(seed=5, symbols=["BTC/USDT", "ETH/USDT", "BTC/USDT:USDT"], speed=1.0, clock=lambda: T0)
    return PaperBroker(store, sim, latency_ms=0.0)


def _hold(store, inst: str, symbol: str, qty: float, price: float) -> None:
    coid = f"qd-seed-{inst}-{symbol}".replace("/", "").replace(":", "")
    req = OrderRequest(instance_id=inst, symbol=symbol, side="buy" if qty > 0 else "sell", qty=abs(qty),
                       client_order_id=coid)
    insert_order(store, req, 1, venue="paper")
    record_fill(store, Fill(f"{coid}:1", coid, inst, symbol, req.side, abs(qty), price, 0.0, "taker", 1))


def _rest(broker, inst: str, coid: str, side: str, price: float, reason: str = "") -> None:
    broker.submit(OrderRequest(instance_id=inst, symbol="BTC/USDT", side=side, qty=0.01, client_order_id=coid,
                               type="limit", price=price, reason=reason))


def test_flatten_cancels_everything_protective_last_and_closes_every_position(store, paper):
    mid = paper.mark_price("BTC/USDT")
    _hold(store, "a", "BTC/USDT", 0.3, mid)
    _hold(store, "b", "BTC/USDT:USDT", -0.2, mid)
    _hold(store, "b", "ETH/USDT", 1.5, paper.mark_price("ETH/USDT"))
    _rest(paper, "a", "qd-a-rest", "buy", mid * 0.8)
    _rest(paper, "a", "qd-a-stop", "sell", mid * 1.5, reason="protect stop 0.3 BTC/USDT")
    _rest(paper, "b", "qd-b-rest", "sell", mid * 1.3)
    set_state(store, TradingState.HALTED, "emergency stop", "cli", "op")  # flatten must pass a HALTED gate
    report = flatten_until_flat(store, [paper], round_wait_s=0.0)
    assert report.flat and report.rounds == 1 and report.canceled == 3 and report.close_orders == 3
    assert load_positions(store) == [] and open_orders(store) == []
    with store.connect() as conn:
        done = conn.execute(select(audit_log.c.details).where(audit_log.c.action == "flatten.done")).scalar()
    assert report.canceled_ids == ["qd-a-rest", "qd-b-rest", "qd-a-stop"]  # the protective stop is pulled last
    assert is_protective({"reason": "protect stop"}) and not is_protective({"reason": "bar 1 target"})
    assert '"flat": true' in done


def test_leftovers_are_named_in_a_critical_alert_and_the_audit(store, paper):
    mid = paper.mark_price("BTC/USDT")
    _hold(store, "a", "BTC/USDT", 0.1, mid)
    _hold(store, "a", "DOGE/USDT", 500.0, 0.1)  # the venue cannot quote it: every close fails
    naps = []
    report = flatten_until_flat(store, [paper], max_rounds=3, round_wait_s=0.25, sleep=naps.append)
    assert not report.flat and report.rounds == 3 and naps == [0.25, 0.25]
    assert [(p["instance_id"], p["symbol"]) for p in report.leftover_positions] == [("a", "DOGE/USDT")]
    (alert,) = [a for a in list_alerts(store) if a.rule == "flatten.leftover"]
    assert alert.severity == "critical" and "a/DOGE/USDT +500" in alert.message
    with store.connect() as conn:
        assert conn.execute(select(audit_log.c.id).where(audit_log.c.action == "flatten.incomplete")).first()
    assert [p["symbol"] for p in load_positions(store)] == ["DOGE/USDT"]  # the BTC one was closed


def test_a_promoted_instance_first_closes_its_paper_positions(store, paper):
    from engine.execution.flatten import settle_venue

    _hold(store, "p", "BTC/USDT", 0.2, paper.mark_price("BTC/USDT"))
    _hold(store, "q", "BTC/USDT", 0.1, paper.mark_price("BTC/USDT"))
    assert settle_venue(store, [paper], "p", "paper", round_wait_s=0.0) == ""  # still on paper: nothing to do
    done = settle_venue(store, [paper], "p", "exchange", round_wait_s=0.0)
    assert "closed p's paper orders and positions" in done and "flat=True" in done
    assert [(r["instance_id"], r["qty"]) for r in load_positions(store)] == [("q", 0.1)]  # only p was closed


def test_an_instance_leaving_a_venue_with_only_a_resting_order_has_it_canceled(store, paper):
    """A retired challenger (or a promoted instance) whose first order still rested on paper, with no position yet:
    settle_venue skipped it (it looked only at positions), so the order stayed open and filled later into the
    sub-ledger of an instance that no longer trades there."""
    from engine.execution.flatten import settle_venue

    mid = paper.mark_price("BTC/USDT")
    _rest(paper, "c", "qd-c-first", "buy", mid * 0.9)
    _rest(paper, "d", "qd-d-other", "buy", mid * 0.9)
    done = settle_venue(store, [paper], "c", None, round_wait_s=0.0)
    assert "flat=True" in done and [o["client_order_id"] for o in open_orders(store)] == ["qd-d-other"]
    assert load_positions(store) == []
