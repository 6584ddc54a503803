"""A spot position with a take-profit is protected on the exchange by ONE OCO order list (issue 13): the stop and
the take-profit share the coins; when one leg executes the exchange expires the other. Real CcxtBroker + Protector,
real ccxt over HTTP to the twin's POST /api/v3/orderList/oco."""

from __future__ import annotations

import pytest

from engine.execution.ccxt_broker import CcxtBroker
from engine.execution.ccxt_oco import is_oco_leg
from engine.execution.flatten import flatten_until_flat
from engine.execution.orders import OrderRequest, get_order, open_orders, position_qty
from engine.execution.protection import ProtectionSpec, Protector, parse_protective_id
from engine.store.ops import list_alerts
from tests.support.backends import raw

SPOT = "BTC/USDT"


def _broker(store, twin, stop=0.05, take=0.05):
    broker = CcxtBroker(store, twin.exchange(), max_retries=1, symbols=[SPOT], sleep=lambda s: None)
    broker.exchange.load_markets()
    broker.protector = Protector(store, broker, lambda _i, _s=None: ProtectionSpec(stop, take), limit_offset=0.01)
    return broker


def _buy(broker, coid, qty, side="buy"):
    return broker.submit(OrderRequest(instance_id="ls", symbol=SPOT, side=side, qty=qty, client_order_id=coid,
                                      reason="test trade"))


def _lists(twin):
    return twin.exchange().privateGetOpenOrderList()


def _legs(twin):
    return {o["info"]["type"]: o for o in twin.exchange().fetch_open_orders(SPOT)
            if parse_protective_id(str(o["clientOrderId"]))}


def _held(broker, store):
    return float(broker.exchange.amount_to_precision(SPOT, position_qty(store, "ls", SPOT)))


def test_a_spot_position_with_a_take_profit_rests_as_one_oco_and_is_resized_as_a_list(store, twin):
    broker = _broker(store, twin)
    _buy(broker, "qd-ls-t1", 0.02)
    (lst,) = _lists(twin)
    assert lst["listClientOrderId"].startswith("qd-ls-pl") and lst["contingencyType"] == "OCO"
    legs = _legs(twin)
    assert sorted(legs) == ["LIMIT_MAKER", "STOP_LOSS_LIMIT"]
    assert {str(o["info"]["orderListId"]) for o in legs.values()} == {str(lst["orderListId"])}
    entry = get_order(store, "qd-ls-t1")["avg_price"]
    assert float(legs["STOP_LOSS_LIMIT"]["triggerPrice"]) == pytest.approx(entry * 0.95, rel=1e-4)
    assert float(legs["LIMIT_MAKER"]["price"]) == pytest.approx(entry * 1.05, rel=1e-4)
    assert {float(o["amount"]) for o in legs.values()} == {_held(broker, store)}
    rows = [o for o in open_orders(store, "ls", "exchange")]
    assert sorted(o["type"] for o in rows) == ["stop", "take"] and all(is_oco_leg(o) for o in rows)
    # the next check keeps the list (no churn)
    assert sorted(broker.reconcile()["protection"]["kept"]) == sorted(o["clientOrderId"] for o in legs.values())
    assert [x["orderListId"] for x in _lists(twin)] == [lst["orderListId"]]
    # the position grows: one new list for the new size, the old one gone
    _buy(broker, "qd-ls-t2", 0.01)
    (lst2,) = _lists(twin)
    assert lst2["orderListId"] != lst["orderListId"]
    assert {float(o["amount"]) for o in _legs(twin).values()} == {_held(broker, store)}
    # a partial sell: the list comes off for the sell, a list for what is left goes back on
    _buy(broker, "qd-ls-t3", 0.01, side="sell")
    assert get_order(store, "qd-ls-t3")["status"] == "filled"
    (lst3,) = _lists(twin)
    assert {float(o["amount"]) for o in _legs(twin).values()} == {_held(broker, store)}
    assert not any(a.rule == "protect.failed" for a in list_alerts(store))


def test_the_take_profit_leg_filling_expires_the_stop_and_is_booked_to_its_instance(store, twin):
    broker = _broker(store, twin)
    _buy(broker, "qd-ls-t1", 0.02)
    legs = _legs(twin)
    take_coid = legs["LIMIT_MAKER"]["clientOrderId"]
    stop_coid = legs["STOP_LOSS_LIMIT"]["clientOrderId"]
    twin.print_trade(SPOT, float(legs["LIMIT_MAKER"]["price"]) * 1.01, 5.0)  # the market trades through the take
    broker.process()
    take, stop = get_order(store, take_coid), get_order(store, stop_coid)
    assert take["status"] == "filled" and take["instance_id"] == "ls"
    assert take["avg_price"] == pytest.approx(float(legs["LIMIT_MAKER"]["price"]))
    assert stop["status"] == "canceled"  # the exchange expired it: never a second sell
    with raw(store) as conn:
        (n,) = conn.execute("SELECT count(*) FROM fills WHERE client_order_id=? AND instance_id='ls'",
                            (take_coid,)).fetchone()
    assert n >= 1
    assert position_qty(store, "ls", SPOT) < broker.min_amount(SPOT)  # closed (fee crumbs at most)
    assert _lists(twin) == [] and _legs(twin) == {}
    summary = broker.reconcile()
    assert summary["adopted"] == [] and not summary["protection"]["placed"]  # books == account, nothing to protect


def test_a_restart_rearms_a_missing_oco_and_adopts_one_state_db_lost(store, twin):
    broker = _broker(store, twin)
    _buy(broker, "qd-ls-t1", 0.02)
    (lst,) = _lists(twin)
    twin.exchange().privateDeleteOrderList({"symbol": "BTCUSDT", "orderListId": lst["orderListId"]})  # by hand
    assert _lists(twin) == []
    fresh = _broker(store, twin)  # the engine restarts
    done = fresh.rearm()
    (again,) = _lists(twin)
    assert again["orderListId"] != lst["orderListId"] and len(done["placed"]) == 2
    # state.db restored from a backup without the legs' rows: both legs are adopted, the list kept
    legs = _legs(twin)
    with raw(store) as conn:
        for o in legs.values():
            conn.execute("DELETE FROM orders WHERE client_order_id = ?", (o["clientOrderId"],))
    third = _broker(store, twin)
    summary = third.recover()
    assert sorted(summary["orphans"]["adopted"]) == sorted(o["clientOrderId"] for o in legs.values())
    assert [x["orderListId"] for x in _lists(twin)] == [again["orderListId"]]  # kept, not replaced
    assert all(is_oco_leg(get_order(store, o["clientOrderId"])) for o in legs.values())


def test_flatten_pulls_the_oco_and_leaves_no_order_list(store, twin):
    broker = _broker(store, twin)
    _buy(broker, "qd-ls-t1", 0.02)
    assert len(_lists(twin)) == 1
    report = flatten_until_flat(store, [broker], round_wait_s=0.1)
    assert report.flat, report.summary()
    assert _lists(twin) == [] and twin.exchange().fetch_open_orders(SPOT) == []
    assert open_orders(store, "ls", "exchange") == []


def test_an_oco_lost_to_5xx_is_placed_again_as_a_list_never_as_single_orders(store, twin):
    broker = _broker(store, twin)
    twin.set_faults(http_5xx=2, path_prefix="/api/v3/orderList")  # the OCO request fails twice (both tries)
    _buy(broker, "qd-ls-t1", 0.02)
    lost = [o for o in open_orders(store, "ls", "exchange") if is_oco_leg(o)]
    assert sorted(o["status"] for o in lost) == ["new", "new"] and _lists(twin) == []
    assert broker.process() == 2  # both legs dropped (not resent one by one), then a new list placed
    (lst,) = _lists(twin)
    assert sorted(_legs(twin)) == ["LIMIT_MAKER", "STOP_LOSS_LIMIT"]
    for o in lost:
        row = get_order(store, o["client_order_id"])
        assert row["status"] == "canceled" and "never reached the exchange" in row["reason"]
    assert not ({o["clientOrderId"] for o in twin.exchange().fetch_open_orders(SPOT)}
                & {o["client_order_id"] for o in lost})
