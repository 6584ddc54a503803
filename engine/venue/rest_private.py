"""Binance's signed REST endpoints on the twin: account, orders, cancels, trades, positions, leverage, listen keys.

Spot under /api/v3, USD-M under /fapi/v1-v3. Every handler gets the request's parameters after the server checked
the key, signature and timestamp (USER_STREAM endpoints need the key only). Unknown orders answer -2013.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any, Callable

from engine.venue import shapes
from engine.venue.errors import VenueError, bad_param
from engine.venue.markets import FUTURES, SPOT, fmt, parse_int

if TYPE_CHECKING:
    from engine.venue.server import Twin

Handler = Callable[["Twin", str, dict[str, str]], Any]
SIGNED, USER_STREAM = "signed", "user_stream"


def _order_ref(params: dict[str, str]) -> tuple[int | None, str | None]:
    return parse_int(params, "orderId"), params.get("origClientOrderId") or None


def account(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """GET /api/v3/account (spot balances) or /fapi/v2|v3/account (USD-M wallet, margins, positions)."""
    now = int(time.time() * 1000)
    if market == SPOT:
        rows = twin.books.balances(SPOT)
        return {"makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
                "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000",
                                    "seller": "0.00000000"},
                "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
                "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now, "accountType": "SPOT",
                "balances": [{"asset": a, "free": fmt(f, 8), "locked": fmt(lk, 8)} for a, (f, lk) in rows.items()],
                "permissions": ["SPOT"], "uid": 1}
    acct = twin.matcher.futures_account()
    wb, up, mg, av = (fmt(acct[k], 8) for k in ("wallet", "upnl", "margin", "available"))
    margin_balance = fmt(acct["wallet"] + acct["upnl"], 8)
    return {"totalInitialMargin": mg, "totalMaintMargin": "0", "totalWalletBalance": wb,
            "totalUnrealizedProfit": up, "totalMarginBalance": margin_balance, "totalPositionInitialMargin": mg,
            "totalOpenOrderInitialMargin": "0", "totalCrossWalletBalance": wb, "totalCrossUnPnl": up,
            "availableBalance": av, "maxWithdrawAmount": av, "canTrade": True, "feeTier": 0, "updateTime": now,
            "assets": [{"asset": "USDT", "walletBalance": wb, "unrealizedProfit": up, "marginBalance": margin_balance,
                        "maintMargin": "0", "initialMargin": mg, "positionInitialMargin": mg,
                        "openOrderInitialMargin": "0", "crossWalletBalance": wb, "crossUnPnl": up,
                        "availableBalance": av, "maxWithdrawAmount": av, "marginAvailable": True,
                        "updateTime": now}],
            "positions": [_position(twin, p, now, short=True) for p in twin.books.positions()]}


def balance(twin: "Twin", market: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /fapi/v2|v3/balance."""
    acct = twin.matcher.futures_account()
    wb = fmt(acct["wallet"], 8)
    return [{"accountAlias": "twin", "asset": "USDT", "balance": wb, "crossWalletBalance": wb,
             "crossUnPnl": fmt(acct["upnl"], 8), "availableBalance": fmt(acct["available"], 8),
             "maxWithdrawAmount": fmt(acct["available"], 8), "marginAvailable": True,
             "updateTime": int(time.time() * 1000)}]


def _position(twin: "Twin", p: dict[str, Any], now: int, short: bool = False) -> dict[str, Any]:
    listing = twin.listings.by_symbol(p["symbol"])
    mark = twin.feed.last_price(listing)
    qty, entry = float(p["qty"]), float(p["entry_price"])
    notional = qty * mark
    upnl = qty * (mark - entry) if qty else 0.0
    ad = listing.inst.amount_decimals
    body: dict[str, Any] = {"symbol": listing.id, "positionSide": "BOTH", "positionAmt": fmt(qty, ad),
                            "unrealizedProfit": fmt(upnl, 8), "isolatedMargin": "0", "notional": fmt(notional, 8),
                            "isolatedWallet": "0", "initialMargin": fmt(abs(notional) / p["leverage"], 8),
                            "maintMargin": "0", "updateTime": now}
    if short:
        return {**body, "leverage": str(p["leverage"]), "entryPrice": fmt(entry, 8)}
    return {**body, "entryPrice": fmt(entry, 8), "breakEvenPrice": fmt(entry, 8), "markPrice": fmt(mark, 8),
            "unRealizedProfit": fmt(upnl, 8), "liquidationPrice": "0", "leverage": str(p["leverage"]),
            "maxNotionalValue": "10000000", "marginType": "cross", "isAutoAddMargin": "false",
            "marginAsset": "USDT", "adl": 0}


def position_risk(twin: "Twin", market: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /fapi/v2|v3/positionRisk: every USD-M symbol (flat ones with positionAmt 0), or one symbol."""
    now = int(time.time() * 1000)
    listings = [twin.listings.get(FUTURES, params["symbol"])] if params.get("symbol") else twin.listings.all(FUTURES)
    return [_position(twin, twin.books.position(x.symbol), now) for x in listings]


def leverage(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """POST /fapi/v1/leverage (1-125)."""
    listing = twin.listings.get(FUTURES, params.get("symbol"))
    lev = parse_int(params, "leverage")
    if lev is None:
        raise bad_param("leverage")
    if not 1 <= lev <= 125:
        raise VenueError(-4028, f"Leverage {lev} is not valid")
    pos = twin.books.position(listing.symbol)
    with twin.books.tx():
        twin.books.set_position(listing.symbol, pos["qty"], pos["entry_price"], lev)
    return {"leverage": lev, "maxNotionalValue": "10000000", "symbol": listing.id}


def leverage_brackets(twin: "Twin", market: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /fapi/v1/leverageBracket: one bracket per symbol (20x up to 10M notional, 0.5 % maintenance)."""
    listings = [twin.listings.get(FUTURES, params["symbol"])] if params.get("symbol") else twin.listings.all(FUTURES)
    return [{"symbol": x.id, "brackets": [{"bracket": 1, "initialLeverage": 125, "notionalCap": 10_000_000,
                                           "notionalFloor": 0, "maintMarginRatio": 0.005, "cum": 0.0}]}
            for x in listings]


def dual_side(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """GET /fapi/v1/positionSide/dual: the twin runs one-way mode only."""
    return {"dualSidePosition": False}


def new_order(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """POST order: accept (and fill what is marketable); spot answers FULL with its fills."""
    listing = twin.listings.get(market, params.get("symbol"))
    order = twin.matcher.place(listing, params)
    fills = twin.books.fills(market, listing.symbol, order_id=order["order_id"]) if market == SPOT else None
    return shapes.order_json(listing, order, fills)


def cancel_replace(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """POST /api/v3/order/cancelReplace: cancel one order and place another in one request. STOP_ON_FAILURE: no new
    order when the cancel fails (-2022); a new order that fails leaves the cancel done (-2021)."""
    listing = twin.listings.get(SPOT, params.get("symbol"))
    mode = (params.get("cancelReplaceMode") or "").upper()
    if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
        raise bad_param("cancelReplaceMode")
    cancel_id, cancel_client = parse_int(params, "cancelOrderId"), params.get("cancelOrigClientOrderId") or None
    try:
        canceled: dict[str, Any] | None = twin.matcher.cancel(listing, cancel_id, cancel_client)
    except VenueError:
        if mode == "STOP_ON_FAILURE":
            raise VenueError(-2022, "Order cancel-replace failed.") from None
        canceled = None
    new = {k: v for k, v in params.items() if k not in ("cancelReplaceMode", "cancelOrderId", "cancelOrigClientOrderId",
                                                        "cancelNewClientOrderId", "cancelRestrictions")}
    try:
        order = twin.matcher.place(listing, new)
    except VenueError:
        raise VenueError(-2021, "Order cancel-replace partially failed.") from None
    return {"cancelResult": "SUCCESS" if canceled is not None else "FAILURE", "newOrderResult": "SUCCESS",
            "cancelResponse": shapes.order_json(listing, canceled) if canceled is not None else {},
            "newOrderResponse": shapes.order_json(listing, order,
                                                  twin.books.fills(SPOT, listing.symbol, order_id=order["order_id"]))}


def get_order(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """GET order by orderId or origClientOrderId (-2013 when unknown)."""
    listing = twin.listings.get(market, params.get("symbol"))
    order_id, client_id = _order_ref(params)
    if order_id is None and client_id is None:
        raise VenueError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    order = twin.books.order(market, order_id=order_id, client_id=client_id)
    if order is None or order["symbol"] != listing.symbol or (order["algo"] and not order["triggered"]):
        raise VenueError(-2013, "Order does not exist.")  # a conditional order is an order once it triggered
    return shapes.order_json(listing, order)


def cancel_order(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """DELETE order."""
    listing = twin.listings.get(market, params.get("symbol"))
    order_id, client_id = _order_ref(params)
    found = twin.books.order(market, order_id=order_id, client_id=client_id)
    if found is not None and found["algo"] and not found["triggered"]:
        raise VenueError(-2011, "Unknown order sent.")  # cancel it through DELETE /fapi/v1/algoOrder
    return shapes.order_json(listing, twin.matcher.cancel(listing, order_id, client_id))


def cancel_all(twin: "Twin", market: str, params: dict[str, str]) -> Any:
    """DELETE /api/v3/openOrders (the canceled orders) or /fapi/v1/allOpenOrders (a 200 code message)."""
    listing = twin.listings.get(market, params.get("symbol"))
    canceled = twin.matcher.cancel_all(listing)
    if market == FUTURES:
        return {"code": 200, "msg": "The operation of cancel all open order is done."}
    return [shapes.order_json(listing, o) for o in canceled]


def open_orders(twin: "Twin", market: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET openOrders (one symbol or all)."""
    symbol = twin.listings.get(market, params["symbol"]).symbol if params.get("symbol") else None
    return [shapes.order_json(twin.listings.by_symbol(o["symbol"]), o)
            for o in twin.books.open_orders(market, symbol, algo=False)]


def all_orders(twin: "Twin", market: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET allOrders of a symbol."""
    listing = twin.listings.get(market, params.get("symbol"))
    rows = twin.books.orders(market, listing.symbol, parse_int(params, "startTime"),
                             min(parse_int(params, "limit", 500) or 500, 1000))
    return [shapes.order_json(listing, o) for o in rows if not (o["algo"] and not o["triggered"])]


def my_trades(twin: "Twin", market: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /api/v3/myTrades or /fapi/v1/userTrades."""
    listing = twin.listings.get(market, params.get("symbol"))
    rows = twin.books.fills(market, listing.symbol, parse_int(params, "startTime"),
                            min(parse_int(params, "limit", 500) or 500, 1000), parse_int(params, "orderId"))
    return [shapes.trade_json(listing, f) for f in rows]


def listen_key(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """POST userDataStream / listenKey: a key for the user-data websocket (the same key is kept while valid)."""
    key = twin.listen_keys.get(market) or secrets.token_hex(32)
    twin.listen_keys[market] = key
    return {"listenKey": key}


def keep_alive(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """PUT userDataStream / listenKey: keep the listen key alive (USD-M answers it back)."""
    key = twin.listen_keys.get(market)
    if key is None:
        raise VenueError(-1125, "This listenKey does not exist.")
    return {"listenKey": key} if market == FUTURES else {}


def close_key(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """DELETE userDataStream / listenKey."""
    twin.listen_keys.pop(market, None)
    return {}


def routes() -> dict[tuple[str, str], tuple[Handler, str, int, str]]:
    """(method, path) -> (handler, market, weight, security) for every private endpoint."""
    t: dict[tuple[str, str], tuple[Handler, str, int, str]] = {}
    for market, base in ((SPOT, "/api/v3"), (FUTURES, "/fapi/v1")):
        t[("POST", f"{base}/order")] = (new_order, market, 1, SIGNED)
        t[("GET", f"{base}/order")] = (get_order, market, 4, SIGNED)
        t[("DELETE", f"{base}/order")] = (cancel_order, market, 1, SIGNED)
        t[("GET", f"{base}/openOrders")] = (open_orders, market, 6, SIGNED)
        t[("GET", f"{base}/allOrders")] = (all_orders, market, 20, SIGNED)
    t[("DELETE", "/api/v3/openOrders")] = (cancel_all, SPOT, 1, SIGNED)
    t[("POST", "/api/v3/order/cancelReplace")] = (cancel_replace, SPOT, 1, SIGNED)
    t[("DELETE", "/fapi/v1/allOpenOrders")] = (cancel_all, FUTURES, 1, SIGNED)
    t[("GET", "/api/v3/account")] = (account, SPOT, 20, SIGNED)
    t[("GET", "/api/v3/myTrades")] = (my_trades, SPOT, 20, SIGNED)
    t[("GET", "/fapi/v1/userTrades")] = (my_trades, FUTURES, 5, SIGNED)
    for v in ("v2", "v3"):
        t[("GET", f"/fapi/{v}/account")] = (account, FUTURES, 5, SIGNED)
        t[("GET", f"/fapi/{v}/balance")] = (balance, FUTURES, 5, SIGNED)
        t[("GET", f"/fapi/{v}/positionRisk")] = (position_risk, FUTURES, 5, SIGNED)
    from engine.venue import rest_algo

    t.update(rest_algo.routes())
    from engine.venue import funding, oco

    t.update(oco.routes())
    t.update(funding.routes())
    t[("POST", "/fapi/v1/leverage")] = (leverage, FUTURES, 1, SIGNED)
    t[("GET", "/fapi/v1/leverageBracket")] = (leverage_brackets, FUTURES, 1, SIGNED)
    t[("GET", "/fapi/v1/positionSide/dual")] = (dual_side, FUTURES, 30, SIGNED)
    for market, path in ((SPOT, "/api/v3/userDataStream"), (FUTURES, "/fapi/v1/listenKey")):
        t[("POST", path)] = (listen_key, market, 2, USER_STREAM)
        t[("PUT", path)] = (keep_alive, market, 2, USER_STREAM)
        t[("DELETE", path)] = (close_key, market, 2, USER_STREAM)
    return t
