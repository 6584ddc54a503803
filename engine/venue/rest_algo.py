"""Binance USD-M's Algo Order API on the twin: conditional orders (STOP / STOP_MARKET / TAKE_PROFIT /
TAKE_PROFIT_MARKET) live under /fapi/v1/algoOrder since Binance moved them off /fapi/v1/order (which now answers
-4120 for those types), and ccxt sends them there.

- POST /fapi/v1/algoOrder (algoType=CONDITIONAL, type, side, quantity or closePosition=true, triggerPrice, price,
  reduceOnly, clientAlgoId) -> the algo order: algoId, clientAlgoId, orderType, algoStatus NEW, triggerPrice, ...
- GET /fapi/v1/algoOrder (algoId or clientAlgoId), GET /fapi/v1/openAlgoOrders (symbol optional),
  DELETE /fapi/v1/algoOrder (-> code "200", msg "success"), DELETE /fapi/v1/algoOpenOrders.
- When the last trade reaches triggerPrice the algo order turns TRIGGERED and its actual order (actualOrderId; on
  the twin it keeps the clientAlgoId as its clientOrderId) is matched like any order: read its fills with GET
  /fapi/v1/order?orderId=actualOrderId. FINISHED once that order is final, CANCELED / EXPIRED as Binance says.
The twin keeps one row per algo order in its orders table (algo = 1); the actual order is that row once triggered.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from engine.venue.errors import VenueError
from engine.venue.markets import FUTURES, Listing, fmt, parse_int

if TYPE_CHECKING:
    from engine.venue.server import Twin

SIGNED = "signed"


def algo_json(listing: Listing, order: dict[str, Any]) -> dict[str, Any]:
    """An algo order as the Algo Order API answers it."""
    pd, ad = listing.inst.price_decimals, listing.inst.amount_decimals
    if order["status"] == "CANCELED" and not order["triggered"]:
        status = "CANCELED"
    elif not order["triggered"]:
        status = "NEW"
    else:
        status = "TRIGGERED" if order["status"] in ("NEW", "PARTIALLY_FILLED") else "FINISHED"
    body: dict[str, Any] = {
        "algoId": order["order_id"], "clientAlgoId": order["client_id"], "algoType": "CONDITIONAL",
        "orderType": order["type"], "symbol": listing.id, "side": order["side"], "positionSide": "BOTH",
        "timeInForce": order["tif"] or "GTC", "quantity": fmt(order["qty"], ad), "algoStatus": status,
        "triggerPrice": fmt(order["stop_price"] or 0.0, pd), "price": fmt(order["price"] or 0.0, pd),
        "icebergQuantity": None, "selfTradePreventionMode": "EXPIRE_MAKER", "workingType": "CONTRACT_PRICE",
        "priceMatch": "NONE", "closePosition": False, "priceProtect": False, "reduceOnly": bool(order["reduce_only"]),
        "createTime": order["created"], "updateTime": order["updated"],
        "triggerTime": order["updated"] if order["triggered"] else 0, "goodTillDate": 0}
    if order["triggered"]:
        body.update(actualOrderId=str(order["order_id"]),
                    actualPrice=fmt(order["cum_quote"] / order["executed"] if order["executed"] else 0.0, pd))
    return body


def _find(twin: "Twin", params: dict[str, str]) -> tuple[Listing, dict[str, Any]]:
    algo_id, client = parse_int(params, "algoId"), params.get("clientAlgoId") or None
    if algo_id is None and client is None:
        raise VenueError(-1102, "Param 'algoId' or 'clientAlgoId' must be sent, but both were empty/null!")
    order = twin.books.order(FUTURES, order_id=algo_id, client_id=client)
    if order is None or not order["algo"]:
        raise VenueError(-2013, "Order does not exist.")
    return twin.listings.by_symbol(order["symbol"]), order


def new_algo(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """POST /fapi/v1/algoOrder: a conditional order, resting until its trigger price trades."""
    if (params.get("algoType") or "").upper() != "CONDITIONAL":
        raise VenueError(-1102, "Mandatory parameter 'algoType' was not sent, was empty/null, or malformed.")
    listing = twin.listings.get(FUTURES, params.get("symbol"))
    p = {k: v for k, v in params.items() if k not in ("algoType", "triggerPrice", "clientAlgoId")}
    p["stopPrice"] = params.get("triggerPrice", "")
    if params.get("clientAlgoId"):
        p["newClientOrderId"] = params["clientAlgoId"]
    if str(params.get("closePosition", "false")).lower() == "true":  # the whole position, reduce-only
        held = float(twin.books.position(listing.symbol)["qty"])
        if held == 0:
            raise VenueError(-2022, "ReduceOnly Order is rejected.")
        p.update(quantity=fmt(abs(held), listing.inst.amount_decimals), reduceOnly="true")
    return algo_json(listing, twin.matcher.place(listing, p, algo=True))


def get_algo(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """GET /fapi/v1/algoOrder."""
    listing, order = _find(twin, params)
    return algo_json(listing, order)


def cancel_algo(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """DELETE /fapi/v1/algoOrder: only while it has not triggered (-2011 after)."""
    listing, order = _find(twin, params)
    if order["triggered"] or order["status"] not in ("NEW", "PARTIALLY_FILLED"):
        raise VenueError(-2011, "Unknown order sent.")
    twin.matcher.cancel(listing, order["order_id"], None)
    return {"algoId": order["order_id"], "clientAlgoId": order["client_id"], "code": "200", "msg": "success"}


def open_algos(twin: "Twin", market: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /fapi/v1/openAlgoOrders (one symbol or all)."""
    symbol = twin.listings.get(FUTURES, params["symbol"]).symbol if params.get("symbol") else None
    return [algo_json(twin.listings.by_symbol(o["symbol"]), o)
            for o in twin.books.open_orders(FUTURES, symbol, algo=True)]


def cancel_all_algos(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """DELETE /fapi/v1/algoOpenOrders: every untriggered conditional order of a symbol."""
    twin.matcher.cancel_all(twin.listings.get(FUTURES, params.get("symbol")), algo=True)
    return {"code": 200, "msg": "The operation of cancel all open order is done.", "time": int(time.time() * 1000)}


def routes() -> dict[tuple[str, str], tuple[Any, str, int, str]]:
    """(method, path) -> (handler, market, weight, security) of the Algo Order API."""
    return {("POST", "/fapi/v1/algoOrder"): (new_algo, FUTURES, 1, SIGNED),
            ("GET", "/fapi/v1/algoOrder"): (get_algo, FUTURES, 1, SIGNED),
            ("DELETE", "/fapi/v1/algoOrder"): (cancel_algo, FUTURES, 1, SIGNED),
            ("GET", "/fapi/v1/openAlgoOrders"): (open_algos, FUTURES, 1, SIGNED),
            ("DELETE", "/fapi/v1/algoOpenOrders"): (cancel_all_algos, FUTURES, 1, SIGNED)}
