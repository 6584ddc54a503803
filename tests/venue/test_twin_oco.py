"""Binance spot OCO order lists on the twin (POST /api/v3/orderList/oco and friends), driven over HTTP by the real
ccxt client's implicit API methods (ccxt 4.5 has no unified OCO call for Binance spot)."""

from __future__ import annotations

import ccxt
import pytest

from tests.support.twin import twin  # noqa: F401 - fixture

SYMBOL, QTY = "BTC/USDT", 0.05


def _long(ex) -> float:
    """Buy QTY BTC at market; returns the last price."""
    ex.load_markets()
    ex.create_order(SYMBOL, "market", "buy", QTY)
    return float(ex.fetch_ticker(SYMBOL)["last"])


def _oco(ex, last: float, coid: str = "qd-t-pl1", take: float = 1.05, stop: float = 0.95,
         held: float | None = None) -> dict:
    """A SELL OCO over what the account holds (free BTC): LIMIT_MAKER above, STOP_LOSS_LIMIT below."""
    held = float(ex.fetch_balance()["BTC"]["free"]) if held is None else held
    return ex.privatePostOrderListOco({
        "symbol": "BTCUSDT", "side": "SELL", "quantity": ex.amount_to_precision(SYMBOL, held),
        "listClientOrderId": coid, "aboveType": "LIMIT_MAKER", "aboveClientOrderId": coid + "-tp",
        "abovePrice": ex.price_to_precision(SYMBOL, last * take), "belowType": "STOP_LOSS_LIMIT",
        "belowClientOrderId": coid + "-sl", "belowStopPrice": ex.price_to_precision(SYMBOL, last * stop),
        "belowPrice": ex.price_to_precision(SYMBOL, last * stop * 0.99), "belowTimeInForce": "GTC"})


def test_an_oco_rests_both_legs_on_one_lock_and_answers_in_binances_shapes(twin):  # noqa: F811
    ex = twin.exchange()
    last = _long(ex)
    held = float(ex.fetch_balance()["BTC"]["total"])
    res = _oco(ex, last)
    assert res["contingencyType"] == "OCO" and res["listStatusType"] == "EXEC_STARTED"
    assert res["listOrderStatus"] == "EXECUTING" and res["listClientOrderId"] == "qd-t-pl1"
    assert res["symbol"] == "BTCUSDT" and isinstance(res["orderListId"], int) and res["transactionTime"]
    assert sorted(o["clientOrderId"] for o in res["orders"]) == ["qd-t-pl1-sl", "qd-t-pl1-tp"]
    reports = {r["clientOrderId"]: r for r in res["orderReports"]}
    assert reports["qd-t-pl1-sl"]["type"] == "STOP_LOSS_LIMIT" and reports["qd-t-pl1-tp"]["type"] == "LIMIT_MAKER"
    assert all(r["orderListId"] == res["orderListId"] and r["status"] == "NEW" for r in reports.values())
    bal = ex.fetch_balance()["BTC"]
    assert float(bal["used"]) == pytest.approx(held) and float(bal["free"]) == pytest.approx(0.0, abs=1e-9)
    legs = ex.fetch_open_orders(SYMBOL)  # the legs are ordinary orders, with their list id
    assert sorted(o["clientOrderId"] for o in legs) == ["qd-t-pl1-sl", "qd-t-pl1-tp"]
    assert {o["info"]["orderListId"] for o in legs} == {res["orderListId"]}
    (open_list,) = ex.privateGetOpenOrderList()
    assert open_list["orderListId"] == res["orderListId"] and "orderReports" not in open_list
    by_client = ex.privateGetOrderList({"origClientOrderId": "qd-t-pl1"})
    assert by_client["orderListId"] == res["orderListId"] and len(by_client["orders"]) == 2
    with pytest.raises(ccxt.ExchangeError, match="relationship of the prices"):  # take-profit below the market
        _oco(ex, last, coid="qd-t-pl2", take=0.99, held=held)
    with pytest.raises(ccxt.ExchangeError, match="insufficient balance"):  # the coins are locked by the first list
        ex.create_order(SYMBOL, "limit", "sell", QTY / 2, ex.price_to_precision(SYMBOL, last * 1.5))


def test_the_take_profit_filling_expires_the_stop_and_releases_the_lock(twin):  # noqa: F811
    ex = twin.exchange()
    last = _long(ex)
    res = _oco(ex, last)
    usdt = float(ex.fetch_balance()["USDT"]["total"])
    twin.print_trade(SYMBOL, last * 1.06, 1.0)
    tp = ex.fetch_order(None, SYMBOL, {"clientOrderId": "qd-t-pl1-tp"})
    sl = ex.fetch_order(None, SYMBOL, {"clientOrderId": "qd-t-pl1-sl"})
    assert tp["status"] == "closed" and tp["filled"] == pytest.approx(tp["amount"])
    assert sl["status"] == "expired" and sl["filled"] == 0
    done = ex.privateGetOrderList({"orderListId": res["orderListId"]})
    assert done["listStatusType"] == "ALL_DONE" and done["listOrderStatus"] == "ALL_DONE"
    assert ex.privateGetOpenOrderList() == [] and ex.fetch_open_orders(SYMBOL) == []
    bal = ex.fetch_balance()
    assert float(bal["BTC"]["used"]) == pytest.approx(0.0, abs=1e-9)
    assert float(bal["BTC"]["total"]) < 1e-6  # sold, not sold twice
    assert float(bal["USDT"]["total"]) == pytest.approx(usdt + tp["cost"] * (1 - 0.001), rel=1e-6)


def test_the_stop_triggering_expires_the_take_profit(twin):  # noqa: F811
    ex = twin.exchange()
    last = _long(ex)
    _oco(ex, last)
    twin.print_trade(SYMBOL, last * 0.94, 0.001)
    sl = ex.fetch_order(None, SYMBOL, {"clientOrderId": "qd-t-pl1-sl"})
    tp = ex.fetch_order(None, SYMBOL, {"clientOrderId": "qd-t-pl1-tp"})
    assert tp["status"] == "expired"
    assert sl["filled"] > 0 and sl["status"] in ("closed", "open")  # a stop-limit fills against the book
    assert len(ex.privateGetOpenOrderList()) == (0 if sl["status"] == "closed" else 1)  # ALL_DONE once filled
    assert float(ex.fetch_balance()["BTC"]["total"]) == pytest.approx(sl["remaining"], abs=1e-9)


@pytest.mark.parametrize("how", ["list", "leg"])
def test_canceling_the_list_or_one_leg_cancels_both_and_unlocks(twin, how):  # noqa: F811
    ex = twin.exchange()
    last = _long(ex)
    res = _oco(ex, last)
    if how == "list":
        out = ex.privateDeleteOrderList({"symbol": "BTCUSDT", "listClientOrderId": "qd-t-pl1"})
        assert out["listStatusType"] == "ALL_DONE" and out["listOrderStatus"] == "ALL_DONE"
        assert {r["status"] for r in out["orderReports"]} == {"CANCELED"}
    else:  # Binance: canceling one order of a list cancels the whole list
        ex.cancel_order(None, SYMBOL, {"clientOrderId": "qd-t-pl1-tp"})
    for coid in ("qd-t-pl1-sl", "qd-t-pl1-tp"):
        assert ex.fetch_order(None, SYMBOL, {"clientOrderId": coid})["status"] == "canceled"
    assert ex.privateGetOpenOrderList() == [] and ex.fetch_open_orders(SYMBOL) == []
    bal = ex.fetch_balance()["BTC"]
    assert float(bal["used"]) == pytest.approx(0.0, abs=1e-9) and float(bal["free"]) > 0
    with pytest.raises(ccxt.OrderNotFound):
        ex.privateDeleteOrderList({"symbol": "BTCUSDT", "orderListId": res["orderListId"]})
