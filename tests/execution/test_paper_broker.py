"""PaperBroker against the real simulated exchange (a controlled clock makes it deterministic)."""

from __future__ import annotations

import pytest

from engine.data.simulator import SimulatedExchange
from engine.execution.broker import Broker
from engine.execution.orders import (OrderBlocked, OrderError, OrderRequest, check_positions_match_fills,
                                     client_order_id, get_order, insert_order, load_positions, position_qty)
from engine.execution.paper_broker import PaperBroker, walk_book
from engine.risk.trading_state import TradingState, set_state
from engine.store.schema import fills

T0 = 1_767_225_600.0  # 2026-01-01 UTC, seconds


class Clock:
    """A settable wall clock for the simulator."""

    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def sim():
    clock = Clock()
    ex = SimulatedExchange(seed=11, symbols=["BTC/USDT", "ETH/USDT", "BTC/USDT:USDT"], speed=1.0, clock=clock)
    ex.test_clock = clock
    return ex


@pytest.fixture
def broker(store, sim):
    return PaperBroker(store, sim, fee_maker=0.0002, fee_taker=0.0005, latency_ms=0.0, queue_ahead_fraction=0.5)


def _req(coid: str, side: str = "buy", qty: float = 0.5, **kw) -> OrderRequest:
    return OrderRequest(instance_id="inst", symbol=kw.pop("symbol", "BTC/USDT"), side=side, qty=qty,
                        client_order_id=coid, **kw)


def _fill_rows(store):
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(fills.select().order_by(fills.c.id)).mappings()]


def test_satisfies_broker_protocol(broker):
    assert isinstance(broker, Broker)


def test_market_order_walks_the_book_and_charges_taker_fee(store, sim, broker):
    book = sim.fetch_order_book("BTC/USDT", 50)
    qty = sum(a for _p, a in book["asks"][:3]) * 0.9  # needs the first three levels
    exp_qty, exp_vwap = walk_book(book["asks"], qty, None, "buy")
    order = broker.submit(_req("m1", qty=qty))
    assert order["status"] == "filled"
    (f,) = _fill_rows(store)
    assert f["qty"] == pytest.approx(exp_qty) and f["price"] == pytest.approx(exp_vwap)
    assert f["price"] > book["asks"][0][0]  # walked past the best ask
    assert f["fee"] == pytest.approx(exp_qty * exp_vwap * 0.0005)
    assert position_qty(store, "inst", "BTC/USDT") == pytest.approx(qty)
    assert check_positions_match_fills(store) == []


def test_market_order_larger_than_the_book_fills_partially(store, sim, broker):
    depth = sum(a for _p, a in sim.fetch_order_book("ETH/USDT", 50)["bids"])
    order = broker.submit(_req("m2", side="sell", qty=depth * 3, symbol="ETH/USDT"))
    assert order["status"] == "canceled" and "book exhausted" in order["reason"]
    assert order["filled_qty"] == pytest.approx(depth)
    assert position_qty(store, "inst", "ETH/USDT") == pytest.approx(-depth)


def test_same_client_order_id_never_doubles(store, broker):
    first = broker.submit(_req("dup"))
    again = broker.submit(_req("dup"))
    assert first["id"] == again["id"]
    assert len(_fill_rows(store)) == 1
    assert position_qty(store, "inst", "BTC/USDT") == pytest.approx(0.5)


def test_limit_order_rests_then_fills_from_crossing_trades_with_queue(store, sim, broker):
    bid = sim.fetch_order_book("BTC/USDT", 5)["bids"][0][0]
    limit = round(bid * 0.9995, 2)
    order = broker.submit(_req("l1", qty=0.3, type="limit", price=limit))
    assert order["status"] == "open" and order["filled_qty"] == 0
    filled_over_time = []
    for _ in range(240):  # four simulated hours, a minute at a time
        sim.test_clock.t += 60
        broker.process()
        filled_over_time.append(get_order(store, "l1")["filled_qty"])
        if filled_over_time[-1] >= 0.3 - 1e-12:
            break
    rows = _fill_rows(store)
    assert rows, "the price never traded through the limit in four hours"
    assert all(r["price"] == pytest.approx(limit) and r["liquidity"] == "maker" for r in rows)
    assert all(r["fee"] == pytest.approx(r["qty"] * limit * 0.0002) for r in rows)
    assert sum(r["qty"] for r in rows) == pytest.approx(filled_over_time[-1])
    assert check_positions_match_fills(store) == []


def test_marketable_limit_takes_only_up_to_its_price(store, sim, broker):
    book = sim.fetch_order_book("BTC/USDT", 50)
    limit = book["asks"][1][0]
    size = sum(a for _p, a in book["asks"][:2]) + 5.0
    order = broker.submit(_req("l2", qty=size, type="limit", price=limit))
    assert order["status"] == "partial"
    (f,) = _fill_rows(store)
    assert f["price"] <= limit and f["liquidity"] == "taker"


def test_halted_blocks_orders_but_not_cancels_or_flatten(store, sim, broker):
    broker.submit(_req("open1", qty=0.2))
    resting = broker.submit(_req("rest", qty=0.1, type="limit", price=1000.0))
    set_state(store, TradingState.HALTED, "test", "cli", "tester")
    with pytest.raises(OrderBlocked, match="HALTED"):
        broker.submit(_req("blocked", qty=0.1))
    assert get_order(store, "blocked") is None
    assert broker.cancel_all() == 1 and get_order(store, resting["client_order_id"])["status"] == "canceled"
    with pytest.raises(OrderBlocked):
        broker.submit(_req("fl0", side="sell", qty=0.2, reduce_only=True))  # an ordinary order stays blocked
    out = broker.submit(_req("fl1", side="sell", qty=0.2, reduce_only=True, intent="flatten"))
    assert out["status"] == "filled" and load_positions(store) == []


def test_reducing_lets_only_exposure_reducing_orders_through(store, broker):
    broker.submit(_req("r1", qty=0.4))
    set_state(store, TradingState.REDUCING, "test", "trigger", "trigger")
    with pytest.raises(OrderBlocked, match="increasing"):
        broker.submit(_req("r2", qty=0.1))
    with pytest.raises(OrderBlocked):
        broker.submit(_req("r3", side="sell", qty=0.8))  # would flip to short
    assert broker.submit(_req("r4", side="sell", qty=0.3))["status"] == "filled"
    assert position_qty(store, "inst", "BTC/USDT") == pytest.approx(0.1)


def test_recover_executes_an_order_recorded_before_a_crash_exactly_once(store, sim, broker):
    req = _req(client_order_id("inst", "BTC/USDT", 123), qty=0.25)
    insert_order(store, req, sim.milliseconds())  # the crash happened right after this commit
    assert broker.recover()["resubmitted"] == 1
    assert broker.recover()["resubmitted"] == 0
    assert len(_fill_rows(store)) == 1 and position_qty(store, "inst", "BTC/USDT") == pytest.approx(0.25)


def test_latency_delays_arrival(store, sim):
    slept = []
    b = PaperBroker(store, sim, latency_ms=75.0, sleep=slept.append)
    b.submit(_req("lat"))
    assert slept == [0.075]


def test_funding_is_charged_on_perp_positions_at_each_funding_time(store, sim, broker):
    broker.submit(_req("p1", qty=1.0, symbol="BTC/USDT:USDT"))
    assert broker.apply_funding() == 0  # first look only records the current funding time
    sim.test_clock.t += 8 * 3600 + 60
    fr = sim.fetch_funding_rate("BTC/USDT:USDT")
    assert broker.apply_funding() == 1
    (pos,) = load_positions(store)
    assert pos["funding"] == pytest.approx(fr["fundingRate"] * 1.0 * fr["markPrice"], rel=1e-6)


def test_bad_requests_name_the_field():
    with pytest.raises(OrderError, match="side"):
        _req("x", side="hold")
    with pytest.raises(OrderError, match="qty"):
        _req("x", qty=0)
    with pytest.raises(OrderError, match="price"):
        _req("x", type="limit")


def test_an_unsent_order_is_not_sent_after_a_restart_into_halted(store, sim, broker):
    req = _req(client_order_id("inst", "BTC/USDT", 456), qty=0.25)
    insert_order(store, req, sim.milliseconds())  # recorded, then the engine died; an operator halted meanwhile
    set_state(store, TradingState.HALTED, "operator", "cli", "tester")
    out = broker.recover()
    assert out["resubmitted"] == 0 and out["blocked"] == 1
    row = get_order(store, req.client_order_id)
    assert row["status"] == "canceled" and "not sent after restart" in row["reason"]
    assert _fill_rows(store) == [] and load_positions(store) == []
