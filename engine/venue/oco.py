"""Binance spot OCO order lists on the twin: a stop-loss and a take-profit leg sharing the same coins.

- POST /api/v3/orderList/oco (the current endpoint; /api/v3/order/oco is deprecated): symbol, side, quantity,
  listClientOrderId, aboveType / belowType with above|belowClientOrderId, above|belowPrice, above|belowStopPrice,
  above|belowTimeInForce. A SELL list has a LIMIT_MAKER (or TAKE_PROFIT_LIMIT) leg above the last price and a
  STOP_LOSS_LIMIT leg below it; a BUY list the mirror. Prices on the wrong side answer -2010 "The relationship of
  the prices for the orders is not correct.", as Binance does. Answer: orderListId, contingencyType OCO,
  listStatusType EXEC_STARTED, listOrderStatus EXECUTING, listClientOrderId, transactionTime, symbol, orders
  [{symbol, orderId, clientOrderId}] and orderReports (each leg as POST order answers it, orderListId set).
- The legs are ordinary orders (GET /api/v3/order, openOrders, allOrders show them with their orderListId). They
  lock the coins once (the first leg holds the lock; the leg that executes takes it over). When one leg triggers
  or fills, the other EXPIRES; canceling one leg (DELETE /api/v3/order) cancels the whole list.
- GET /api/v3/orderList (orderListId or origClientOrderId = listClientOrderId), GET /api/v3/openOrderList,
  GET /api/v3/allOrderList, DELETE /api/v3/orderList (symbol + orderListId or listClientOrderId: both legs CANCELED,
  listStatusType ALL_DONE, with orderReports). Unknown lists answer -2011 (cancel) / -2013 (query).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.venue import shapes
from engine.venue.books import OPEN_STATUSES
from engine.venue.errors import VenueError, bad_param
from engine.venue.markets import SPOT, Listing, parse_float, parse_int

if TYPE_CHECKING:
    from engine.venue.matching import Matcher
    from engine.venue.server import Twin

SIGNED = "signed"
# (side, leg) -> the types Binance allows there
LEG_TYPES = {("SELL", "above"): ("LIMIT_MAKER", "TAKE_PROFIT_LIMIT"), ("SELL", "below"): ("STOP_LOSS_LIMIT",),
             ("BUY", "above"): ("STOP_LOSS_LIMIT",), ("BUY", "below"): ("LIMIT_MAKER", "TAKE_PROFIT_LIMIT")}
BAD_PRICES = "The relationship of the prices for the orders is not correct."


def list_json(twin: "Twin", lst: dict[str, Any], reports: bool = False) -> dict[str, Any]:
    """An order list as Binance answers it (orderReports on POST and DELETE)."""
    listing = twin.listings.by_symbol(lst["symbol"])
    legs = twin.books.list_orders(lst["list_id"])
    body: dict[str, Any] = {
        "orderListId": lst["list_id"], "contingencyType": lst["contingency"], "listStatusType": lst["status_type"],
        "listOrderStatus": lst["order_status"], "listClientOrderId": lst["list_client_id"],
        "transactionTime": lst["updated"], "symbol": lst["market_id"],
        "orders": [{"symbol": lst["market_id"], "orderId": o["order_id"], "clientOrderId": o["client_id"]}
                   for o in legs]}
    if reports:
        body["orderReports"] = [shapes.order_json(listing, o) for o in legs]
    return body


def _leg(p: dict[str, str], side: str, where: str, qty: str) -> dict[str, str]:
    """The POST-order parameters of one leg (above|below...) of an OCO request."""
    otype = (p.get(f"{where}Type") or "").upper()
    if otype not in LEG_TYPES[(side, where)]:
        raise bad_param(f"{where}Type")
    leg = {"side": side, "type": otype, "quantity": qty,
           "newClientOrderId": p.get(f"{where}ClientOrderId") or shapes.random_client_id()}
    for src, dst in (("Price", "price"), ("StopPrice", "stopPrice"), ("TimeInForce", "timeInForce")):
        if p.get(f"{where}{src}"):
            leg[dst] = p[f"{where}{src}"]
    return leg


def _level(leg: dict[str, str]) -> float:
    """The price at which a leg acts: a stop's trigger, a LIMIT_MAKER's limit."""
    key = "price" if leg["type"] == "LIMIT_MAKER" else "stopPrice"
    value = parse_float(leg, key, required=True)
    assert value is not None
    return value


def place_oco(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """POST /api/v3/orderList/oco: both legs or neither (one transaction)."""
    listing = twin.listings.get(SPOT, params.get("symbol"))
    side = (params.get("side") or "").upper()
    if side not in ("BUY", "SELL"):
        raise bad_param("side")
    qty = params.get("quantity") or ""
    if parse_float(params, "quantity", required=True) is None:
        raise bad_param("quantity")
    above, below = _leg(params, side, "above", qty), _leg(params, side, "below", qty)
    last = twin.feed.last_price(listing)
    if not _level(above) > last > _level(below):
        raise VenueError(-2010, BAD_PRICES)
    list_client = params.get("listClientOrderId") or shapes.random_client_id()
    if any(lst["list_client_id"] == list_client for lst in twin.books.open_lists()):
        raise VenueError(-2010, "Duplicate order sent.")
    now = twin.feed.now()
    with twin.books.tx():
        list_id = twin.books.insert_list(symbol=listing.symbol, market_id=listing.id, list_client_id=list_client,
                                         status_type="EXEC_STARTED", order_status="EXECUTING", created=now,
                                         updated=now)
        first, second = (below, above) if side == "SELL" else (above, below)  # the stop leg first, holding the lock
        twin.matcher.place(listing, {"symbol": listing.id, **first}, list_id=list_id)
        twin.matcher.place(listing, {"symbol": listing.id, **second}, list_id=list_id, lock=False)
    lst = twin.books.order_list(list_id)
    assert lst is not None
    return list_json(twin, lst, reports=True)


def leg_active(matcher: "Matcher", listing: Listing, order: dict[str, Any]) -> dict[str, Any]:
    """One leg triggered or starts filling: the other legs EXPIRE and their lock on the coins passes to this one."""
    books, now = matcher.books, matcher.feed.now()
    moved = 0.0
    for other in books.list_orders(order["list_id"]):
        if other["order_id"] == order["order_id"] or other["status"] not in OPEN_STATUSES:
            continue
        moved += other["locked"]
        books.update_order(other["order_id"], status="EXPIRED", locked=0.0, updated=now)
        expired = books.order(listing.market, order_id=other["order_id"]) or other
        matcher.emit(listing.market, shapes.order_event(listing, expired, None, "EXPIRED", now))
    current = books.order(listing.market, order_id=order["order_id"]) or order
    if moved:
        books.update_order(order["order_id"], locked=current["locked"] + moved)
    sync_list(matcher, listing, order["list_id"])
    return {**order, **(books.order(listing.market, order_id=order["order_id"]) or {}), "triggered": 1}


def cancel_siblings(matcher: "Matcher", listing: Listing, order: dict[str, Any]) -> None:
    """A leg was canceled: so is every other open leg of its list (Binance cancels the whole list)."""
    for other in matcher.books.list_orders(order["list_id"]):
        if other["order_id"] != order["order_id"] and other["status"] in OPEN_STATUSES:
            matcher.finish(listing, other, "CANCELED")
    sync_list(matcher, listing, order["list_id"])


def sync_list(matcher: "Matcher", listing: Listing, list_id: int) -> None:
    """A list whose legs are all final is ALL_DONE."""
    legs = matcher.books.list_orders(list_id)
    if legs and all(o["status"] not in OPEN_STATUSES for o in legs):
        matcher.books.update_list(list_id, status_type="ALL_DONE", order_status="ALL_DONE",
                                  updated=matcher.feed.now())


def _find(twin: "Twin", params: dict[str, str], client_key: str, missing: int) -> dict[str, Any]:
    list_id, client = parse_int(params, "orderListId"), params.get(client_key) or None
    if list_id is None and client is None:
        raise VenueError(-1102, f"Param '{client_key}' or 'orderListId' must be sent, but both were empty/null!")
    lst = twin.books.order_list(list_id=list_id, list_client_id=client)
    if lst is None:
        raise VenueError(missing, "Order list does not exist." if missing == -2013 else "Unknown order sent.")
    return lst


def get_list(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """GET /api/v3/orderList."""
    return list_json(twin, _find(twin, params, "origClientOrderId", -2013))


def open_lists(twin: "Twin", market: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /api/v3/openOrderList: every list still executing."""
    return [list_json(twin, lst) for lst in twin.books.open_lists()]


def all_lists(twin: "Twin", market: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /api/v3/allOrderList: every list, oldest first (at most `limit`, default 500)."""
    limit = min(parse_int(params, "limit", 500) or 500, 1000)
    rows = twin.books.conn.execute("SELECT * FROM order_lists ORDER BY list_id LIMIT ?", (limit,))
    return [list_json(twin, dict(r)) for r in rows]


def cancel_list(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """DELETE /api/v3/orderList: cancel every open leg; -2011 for an unknown or finished list."""
    listing = twin.listings.get(SPOT, params.get("symbol"))
    lst = _find(twin, params, "listClientOrderId", -2011)
    legs = [o for o in twin.books.list_orders(lst["list_id"]) if o["status"] in OPEN_STATUSES]
    if lst["symbol"] != listing.symbol or not legs:
        raise VenueError(-2011, "Unknown order sent.")
    with twin.books.tx():
        for leg in legs:
            current = twin.books.order(SPOT, order_id=leg["order_id"]) or leg
            if current["status"] in OPEN_STATUSES:
                twin.matcher.finish(listing, current, "CANCELED")
        sync_list(twin.matcher, listing, lst["list_id"])
    done = twin.books.order_list(lst["list_id"])
    assert done is not None
    return list_json(twin, done, reports=True)


def routes() -> dict[tuple[str, str], tuple[Any, str, int, str]]:
    """(method, path) -> (handler, market, weight, security) of the order-list endpoints."""
    return {("POST", "/api/v3/orderList/oco"): (place_oco, SPOT, 1, SIGNED),
            ("GET", "/api/v3/orderList"): (get_list, SPOT, 4, SIGNED),
            ("GET", "/api/v3/openOrderList"): (open_lists, SPOT, 6, SIGNED),
            ("GET", "/api/v3/allOrderList"): (all_lists, SPOT, 20, SIGNED),
            ("DELETE", "/api/v3/orderList"): (cancel_list, SPOT, 1, SIGNED)}
