"""Protection lives on the exchange (issue 13): every live position gets a reduce-only protective stop on the twin,
placed through the real ccxt client over HTTP, resized when the position changes and canceled when it closes; a
protective order state.db lost is adopted at start; one deleted on the exchange is re-placed."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.support.backends import raw
from engine.execution.ccxt_broker import CcxtBroker
from engine.execution.orders import OrderRequest, get_order, open_orders, position_qty
from engine.execution.protection import (ProtectionSpec, Protector, parse_protective_id, protective_client_id,
                                         protective_levels)
from engine.store.ops import list_alerts

SPOT = "BTC/USDT"


def _broker(store, twin, stop=0.05, take=None):
    broker = CcxtBroker(store, twin.exchange(), max_retries=1, symbols=[SPOT], sleep=lambda s: None)
    broker.exchange.load_markets()
    broker.protector = Protector(store, broker, lambda _i, _s=None: ProtectionSpec(stop, take), limit_offset=0.01)
    return broker


def _protective_on_twin(twin, symbol=SPOT):
    return [o for o in twin.exchange().fetch_open_orders(symbol)
            if parse_protective_id(str(o["clientOrderId"]))]


def _buy(broker, coid, qty, side="buy", instance="ls", symbol=SPOT):
    return broker.submit(OrderRequest(instance_id=instance, symbol=symbol, side=side, qty=qty, client_order_id=coid,
                                      reason="test trade"))


def test_levels_and_client_ids():
    assert protective_levels("long", 100.0, 0.05, 0.1) == (pytest.approx(95.0), pytest.approx(110.0))
    assert protective_levels("short", 100.0, 0.05) == (pytest.approx(105.0), None)
    with pytest.raises(ValueError, match="side"):
        protective_levels("flat", 100.0, 0.05)
    coid = protective_client_id("live-small-1", SPOT, "stop", 123)
    assert coid.startswith("qd-livesmal-ps") and len(coid) <= 32
    assert parse_protective_id(coid) == ("livesmal", "stop")
    assert parse_protective_id("qd-ls-0123456789abcdef0123") is None


def test_spot_position_gets_a_stop_on_the_exchange_resized_and_canceled(store, twin):
    broker = _broker(store, twin)
    _buy(broker, "qd-ls-t1", 0.02)
    held = position_qty(store, "ls", SPOT)
    assert held > 0
    prot = _protective_on_twin(twin)
    assert len(prot) == 1, prot
    o = prot[0]
    entry = get_order(store, "qd-ls-t1")["avg_price"]
    assert o["info"]["type"] == "STOP_LOSS_LIMIT" and o["side"] == "sell" and o["reduceOnly"] in (None, False, True)
    assert o["clientOrderId"].startswith("qd-ls-ps")
    assert float(o["amount"]) == pytest.approx(float(broker.exchange.amount_to_precision(SPOT, held)))
    assert float(o["triggerPrice"] or o["stopPrice"]) == pytest.approx(entry * 0.95, rel=1e-4)
    assert float(o["price"]) < float(o["triggerPrice"] or o["stopPrice"])  # the limit sits past the trigger
    # the position grows: the stop is replaced by one for the new size (never two at once)
    _buy(broker, "qd-ls-t2", 0.01)
    prot2 = _protective_on_twin(twin)
    assert len(prot2) == 1 and prot2[0]["clientOrderId"] != o["clientOrderId"]
    assert float(prot2[0]["amount"]) == pytest.approx(float(broker.exchange.amount_to_precision(
        SPOT, position_qty(store, "ls", SPOT))))
    # a partial sell: the locked base is freed first, the sell goes through, the stop is re-placed for the rest
    _buy(broker, "qd-ls-t3", 0.01, side="sell")
    assert get_order(store, "qd-ls-t3")["status"] == "filled"
    prot3 = _protective_on_twin(twin)
    assert len(prot3) == 1 and float(prot3[0]["amount"]) == pytest.approx(float(
        broker.exchange.amount_to_precision(SPOT, position_qty(store, "ls", SPOT))))
    # closed: no protective order is left, on the exchange or in state.db
    rest = float(broker.exchange.amount_to_precision(SPOT, position_qty(store, "ls", SPOT)))
    _buy(broker, "qd-ls-t4", rest, side="sell")
    assert _protective_on_twin(twin) == []
    assert [o for o in open_orders(store, venue="exchange")] == []


def test_a_protective_order_deleted_on_the_exchange_is_replaced_by_the_next_check(store, twin):
    broker = _broker(store, twin)
    _buy(broker, "qd-ls-t1", 0.02)
    (o,) = _protective_on_twin(twin)
    twin.exchange().cancel_order(o["id"], SPOT)  # signed cancel: someone pulled it by hand
    broker.reconcile()
    (o2,) = _protective_on_twin(twin)
    assert o2["clientOrderId"] != o["clientOrderId"]
    assert get_order(store, o["clientOrderId"])["status"] == "canceled"


def test_a_protective_order_state_db_lost_is_adopted_not_canceled(store, twin, tmp_path):
    broker = _broker(store, twin)
    _buy(broker, "qd-ls-t1", 0.02)
    (o,) = _protective_on_twin(twin)
    with store.begin() as conn:  # a restored backup without the protective row
        conn.execute(text("DELETE FROM orders WHERE client_order_id = :c"), {"c": o["clientOrderId"]})
    fresh = _broker(store, twin)
    summary = fresh.recover()
    assert summary["orphans"]["adopted"] == [o["clientOrderId"]]
    assert [p["clientOrderId"] for p in _protective_on_twin(twin)] == [o["clientOrderId"]]  # kept, not replaced
    row = get_order(store, o["clientOrderId"])
    assert row["instance_id"] == "ls" and row["status"] == "open" and row["type"] == "stop"
    assert any(a.rule == "recon.protective_adopted" for a in list_alerts(store))


def test_halt_cancel_keeps_protective_orders_and_a_crossed_stop_closes_at_market(store, twin):
    broker = _broker(store, twin)
    _buy(broker, "qd-ls-t1", 0.02)
    assert broker.cancel_all(None) == 0  # a HALT pulls resting orders, never the protective stop
    assert len(_protective_on_twin(twin)) == 1
    # the stop is gone and the price is through its level (engine was down): the check closes at market
    (o,) = _protective_on_twin(twin)
    broker.cancel(o["clientOrderId"])
    broker.protector.spec_of = lambda _i, _s=None: ProtectionSpec(0.5)
    with store.begin() as conn:  # an entry far above the market puts the stop above the mark
        conn.execute(text("UPDATE positions SET avg_price = avg_price * 3 WHERE instance_id = 'ls'"))
    done = broker.reconcile()["protection"]
    assert done["closed"] and not done["placed"]
    assert position_qty(store, "ls", SPOT) * broker.mark_price(SPOT) < 5.0  # closed down to dust
    assert any(a.rule == "protect.stop_crossed" for a in list_alerts(store))


PERP = "BTC/USDT:USDT"


def _perp_broker(store, twin, stop=0.05, take=0.08):
    broker = CcxtBroker(store, twin.exchange(), max_retries=1, symbols=[PERP], sleep=lambda s: None)
    broker.exchange.load_markets()
    broker.protector = Protector(store, broker, lambda _i, _s=None: ProtectionSpec(stop, take))
    return broker


def _algo_on_twin(twin):
    return twin.exchange().fetch_open_orders(PERP, params={"trigger": True})


def test_perp_position_gets_stop_market_and_take_profit_through_the_algo_api(store, twin):
    broker = _perp_broker(store, twin)
    _buy(broker, "qd-ls-p1", 0.01, side="sell", symbol=PERP)  # a short
    assert position_qty(store, "ls", PERP) == pytest.approx(-0.01)
    entry = get_order(store, "qd-ls-p1")["avg_price"]
    algo = {parse_protective_id(o["clientOrderId"])[1]: o for o in _algo_on_twin(twin)}
    assert set(algo) == {"stop", "take"}, algo
    assert algo["stop"]["info"]["orderType"] == "STOP_MARKET" and algo["take"]["info"]["orderType"] == \
        "TAKE_PROFIT_MARKET"
    assert all(o["side"] == "buy" and o["reduceOnly"] is True for o in algo.values())
    assert float(algo["stop"]["triggerPrice"]) == pytest.approx(entry * 1.05, rel=1e-4)
    assert float(algo["take"]["triggerPrice"]) == pytest.approx(entry * 0.92, rel=1e-4)
    assert twin.exchange().fetch_open_orders(PERP) == []  # conditional orders are not regular open orders
    # the twin refuses a conditional type on the regular endpoint, as Binance does since the algo migration
    import ccxt

    with pytest.raises(ccxt.ExchangeError, match="4120"):
        twin.exchange().fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "STOP_MARKET",
                                              "quantity": "0.01", "stopPrice": str(round(entry * 1.2)),
                                              "reduceOnly": "true"})
    # closing the short cancels both
    _buy(broker, "qd-ls-p2", 0.01, side="buy", symbol=PERP)
    assert _algo_on_twin(twin) == []
    assert open_orders(store, venue="exchange") == []


@pytest.mark.slow
def test_a_perp_stop_that_fires_is_booked_to_its_instance(store, tmp_path):
    """The twin's price goes through the stop: the algo order triggers, the actual order fills; the next poll books
    the fill to the instance that owned the stop and cancels its take-profit."""
    from tests.support.twin import start_twin
    from tests.support.waiting import wait_for

    twin = start_twin(tmp_path / "fast-venue.db", speed=60.0)
    try:
        # a 5% stop: the test moves the market through it below; a 0.2% one was crossed by the 60x market itself
        # between the fill and the stop's placement at some hours (mark beyond the stop: closed at market instead)
        broker = _perp_broker(store, twin, stop=0.05, take=0.5)
        _buy(broker, "qd-ls-p1", 0.01, side="buy", symbol=PERP)
        stop = next(o for o in _algo_on_twin(twin) if parse_protective_id(o["clientOrderId"])[1] == "stop")
        stop_id = stop["clientOrderId"]
        # the market dips through the stop now (a random walk need not move 5% against us within the wait)
        trigger = float(stop.get("triggerPrice") or stop.get("stopPrice"))
        twin.print_trade(PERP, round(trigger * 0.995, 1), 0.5, market="futures")

        def fired() -> bool:
            broker.process()
            return get_order(store, stop_id)["status"] == "filled"

        wait_for(fired, 60, "the stop to fire on the twin", interval=0.5)
        assert position_qty(store, "ls", PERP) == pytest.approx(0.0, abs=1e-12)
        with raw(store) as conn:
            fills = conn.execute("SELECT instance_id, qty FROM fills WHERE client_order_id = ?",
                                 (stop_id,)).fetchall()
        assert fills == [("ls", pytest.approx(0.01))]
        assert _algo_on_twin(twin) == []  # the take-profit went with the position
        assert [p for p in twin.exchange().fetch_positions([PERP]) if float(p.get("contracts") or 0)] == []
    finally:
        twin.stop()


def test_perp_orphans_at_start_ours_adopted_or_canceled_by_the_algo_api(store, twin):
    broker = _perp_broker(store, twin)
    _buy(broker, "qd-ls-p1", 0.01, side="sell", symbol=PERP)
    algo = {parse_protective_id(o["clientOrderId"])[1]: o["clientOrderId"] for o in _algo_on_twin(twin)}
    ex = twin.exchange()
    ex.load_markets()
    stray = protective_client_id("gone", PERP, "stop", 1)  # an instance that holds nothing any more
    ex.create_order(PERP, "STOP_MARKET", "buy", 0.01, None, {"stopPrice": float(ex.price_to_precision(
        PERP, get_order(store, "qd-ls-p1")["avg_price"] * 1.5)), "reduceOnly": True, "clientOrderId": stray})
    with store.begin() as conn:  # a restored backup without the protective rows
        conn.execute(text("DELETE FROM orders WHERE client_order_id LIKE 'qd-ls-p_%' AND type != 'market'"))
    summary = _perp_broker(store, twin).recover()
    assert sorted(summary["orphans"]["adopted"]) == sorted(algo.values())
    assert summary["orphans"]["canceled"] == [stray]
    assert sorted(o["clientOrderId"] for o in _algo_on_twin(twin)) == sorted(algo.values())


def test_a_trade_order_recorded_before_a_crash_is_not_sent_late_but_protection_is(store, twin):
    """The engine died between recording an order and sending it; it restarts later. The stale trade decision is
    dropped (alerted), never sent to the exchange; an unsent protective order of the same moment is still sent."""
    from engine.execution.orders import insert_order

    broker = _broker(store, twin)
    _buy(broker, "qd-ls-t1", 0.02)
    ts = broker.exchange.milliseconds() - 60_000  # a minute ago
    insert_order(store, OrderRequest(instance_id="ls", symbol=SPOT, side="buy", qty=0.01,
                                     client_order_id="qd-ls-stale1", reason="bar 1 target 0.03"), ts,
                 venue="exchange")
    fresh = _broker(store, twin)
    fresh.recover()
    assert get_order(store, "qd-ls-stale1")["status"] == "canceled"
    assert "stale" in get_order(store, "qd-ls-stale1")["reason"]
    assert "qd-ls-stale1" not in [o["clientOrderId"] for o in twin.exchange().fetch_orders(SPOT)]
    assert any(a.rule == "broker.stale_order" for a in list_alerts(store))
    assert len(_protective_on_twin(twin)) == 1


def test_each_instance_quote_share_is_reconciled_against_the_account(store, twin):
    """Two instances trade spot on one account: the USDT the account holds is the external part plus each
    instance's quote flow; a trade by hand on the account shows up as a USDT mismatch (alerted once, adopted)."""
    broker = _broker(store, twin)
    _buy(broker, "qd-ls-q1", 0.02)
    _buy(broker, "qd-l2-q1", 0.01, instance="l2")
    _buy(broker, "qd-ls-q2", 0.01, side="sell")
    first = broker.reconcile()["quote"]
    assert [q["asset"] for q in first] == ["USDT"] and abs(first[0]["diff"]) < 0.01
    assert set(first[0]["instances"]) == {"ls", "l2"} and first[0]["instances"]["l2"] < 0
    assert first[0]["external"] == pytest.approx(100_000.0, abs=0.01)  # the account's USDT before any trade
    ex = twin.exchange()
    ex.create_order(SPOT, "market", "buy", 0.001, None, {"clientOrderId": "by-hand-1"})
    spent = float(ex.fetch_order(None, SPOT, {"clientOrderId": "by-hand-1"})["cost"])
    assert broker.reconcile()["quote"][0].get("pending") is True  # once could be a fill in flight
    third = broker.reconcile()["quote"][0]
    assert third["mismatch"] == pytest.approx(-spent, abs=0.01)
    alerts = [a for a in list_alerts(store) if a.rule == "recon.quote_mismatch"]
    assert len(alerts) == 1 and "USDT" in alerts[0].message
    assert abs(broker.reconcile()["quote"][0]["diff"]) < 0.01  # adopted: not reported again


def test_crumbs_below_the_minimum_amount_need_no_protection(store, twin):
    """What a stop leaves of a spot buy whose fee was paid in BTC is below the minimum amount: no order, no error."""
    broker = _broker(store, twin)
    _buy(broker, "qd-ls-t1", 0.00146)  # the 0.1 % fee in BTC leaves 0.00145854: off the 0.00001 step
    rest = float(broker.exchange.amount_to_precision(SPOT, position_qty(store, "ls", SPOT)))
    _buy(broker, "qd-ls-t2", rest, side="sell")
    assert 0 < position_qty(store, "ls", SPOT) < broker.min_amount(SPOT)  # the base-asset fee's crumbs
    done = broker.reconcile()["protection"]
    assert done["errors"] == [] and done["placed"] == []
    assert not [a for a in list_alerts(store) if a.rule.startswith("protect.")]


def test_flatten_pulls_the_stop_and_protection_stays_off_until_flat(store, twin):
    """Flatten cancels the protective stop last and closes: the protective check must not put it back in between
    (it did: the re-placed stop locked the BTC and the close was sized to crumbs)."""
    from engine.execution.flatten import flatten_until_flat

    broker = _broker(store, twin)
    _buy(broker, "qd-ls-t1", 0.00146)
    _buy(broker, "qd-l2-t1", 0.002, instance="l2")
    assert len(_protective_on_twin(twin)) == 2
    report = flatten_until_flat(store, [broker], round_wait_s=0.05)
    assert report.flat, report.summary()
    assert report.errors == []
    assert twin.exchange().fetch_open_orders(SPOT) == []
    assert broker.protector.paused == 0
    every = [o["clientOrderId"] for o in twin.exchange().fetch_orders(SPOT) if parse_protective_id(o["clientOrderId"])]
    assert len(every) == 2  # the two stops of before the flatten, none put back while it ran
    assert broker.reconcile()["protection"]["placed"] == []  # only crumbs below the minimum are left


def test_spot_stops_are_swapped_in_one_request_never_pulled_first(store, twin):
    """Growing and shrinking a spot position swaps its stop with Binance's cancelReplace (ccxt edit_order): one
    request, so a crash can never fall between pulling the old stop and placing the new one."""
    import ccxt

    broker = _broker(store, twin)
    _buy(broker, "qd-ls-t1", 0.02)
    (first,) = _protective_on_twin(twin)
    seen = []
    real = broker.exchange.cancel_order
    broker.exchange.cancel_order = lambda *a, **k: seen.append(a) or real(*a, **k)  # count plain cancels
    _buy(broker, "qd-ls-t2", 0.01)  # grows: the stop is swapped for a bigger one
    _buy(broker, "qd-ls-t3", 0.005, side="sell")  # shrinks first, so the sell's base is free, then sells
    assert seen == []  # never a bare cancel of the stop
    (now,) = _protective_on_twin(twin)
    assert float(now["amount"]) == pytest.approx(float(broker.exchange.amount_to_precision(
        SPOT, position_qty(store, "ls", SPOT))))
    rows = twin.exchange().fetch_orders(SPOT)
    stops = [o for o in rows if parse_protective_id(o["clientOrderId"])]
    assert len(stops) == 3 and [o["status"] for o in stops].count("open") == 1
    # the twin's endpoint: STOP_ON_FAILURE places nothing when the cancel fails
    ex = twin.exchange()
    with pytest.raises(ccxt.BaseError, match="2022"):
        ex.edit_order("999999999", SPOT, "STOP_LOSS_LIMIT", "sell", 0.001, float(now["price"]),
                      {"stopPrice": float(now["triggerPrice"] or now["stopPrice"]), "clientOrderId": "qd-x-never"})
    assert "qd-x-never" not in [o["clientOrderId"] for o in ex.fetch_orders(SPOT)]
    assert first["clientOrderId"] != now["clientOrderId"]
