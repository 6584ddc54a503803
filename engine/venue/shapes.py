"""Binance's JSON shapes for the twin's orders, fills and user-data events (spot and USD-M).

Field names follow Binance's documentation and the fields ccxt's parsers read (`parse_order`, `parse_trade`,
`handle_order_update`, `handle_balance`, `handle_acount_update`).
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from engine.venue.books import Books
from engine.venue.markets import FUTURES, SPOT, Listing, fmt

_ALPHA = string.ascii_letters + string.digits


def random_client_id() -> str:
    """A client order id like Binance generates when none is sent."""
    return "".join(secrets.choice(_ALPHA) for _ in range(22))


def _avg(order: dict[str, Any]) -> float:
    return order["cum_quote"] / order["executed"] if order["executed"] else 0.0


def order_json(listing: Listing, order: dict[str, Any], fills: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An order as GET/POST/DELETE order answers it (spot: FULL response with fills; USD-M: RESULT)."""
    pd, ad = listing.inst.price_decimals, listing.inst.amount_decimals
    price = fmt(order["price"] or 0.0, pd)
    stop = fmt(order["stop_price"] or 0.0, pd)
    if listing.market == SPOT:
        body: dict[str, Any] = {
            "symbol": listing.id, "orderId": order["order_id"], "orderListId": order.get("list_id", -1),
            "clientOrderId": order["client_id"],
            "transactTime": order["updated"], "time": order["created"], "updateTime": order["updated"],
            "price": price, "origQty": fmt(order["qty"], ad), "executedQty": fmt(order["executed"], ad),
            "cummulativeQuoteQty": fmt(order["cum_quote"], 8), "status": order["status"],
            "timeInForce": order["tif"] or "GTC", "type": order["type"], "side": order["side"], "stopPrice": stop,
            "workingTime": order["created"], "isWorking": bool(order["triggered"]),
            "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "NONE"}
        if fills is not None:
            body["fills"] = [{"price": fmt(f["price"], pd), "qty": fmt(f["qty"], ad),
                              "commission": fmt(f["commission"], 8), "commissionAsset": f["commission_asset"],
                              "tradeId": f["trade_id"]} for f in fills]
        return body
    return {
        "orderId": order["order_id"], "symbol": listing.id, "status": order["status"],
        "clientOrderId": order["client_id"], "price": price, "avgPrice": fmt(_avg(order), pd),
        "origQty": fmt(order["qty"], ad), "executedQty": fmt(order["executed"], ad),
        "cumQty": fmt(order["executed"], ad), "cumQuote": fmt(order["cum_quote"], 8),
        "timeInForce": order["tif"] or "GTC", "type": order["type"], "reduceOnly": bool(order["reduce_only"]),
        "closePosition": False, "side": order["side"], "positionSide": "BOTH", "stopPrice": stop,
        "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": order["type"],
        "priceMatch": "NONE", "selfTradePreventionMode": "NONE", "goodTillDate": 0, "time": order["created"],
        "updateTime": order["updated"]}


def trade_json(listing: Listing, fill: dict[str, Any]) -> dict[str, Any]:
    """A fill as myTrades (spot) or userTrades (USD-M) answers it."""
    pd, ad = listing.inst.price_decimals, listing.inst.amount_decimals
    buy = fill["side"] == "BUY"
    body: dict[str, Any] = {"symbol": listing.id, "id": fill["trade_id"], "orderId": fill["order_id"],
                            "price": fmt(fill["price"], pd), "qty": fmt(fill["qty"], ad),
                            "quoteQty": fmt(fill["quote_qty"], 8), "commission": fmt(fill["commission"], 8),
                            "commissionAsset": fill["commission_asset"], "time": fill["time"]}
    if listing.market == SPOT:
        body.update({"orderListId": -1, "isBuyer": buy, "isMaker": bool(fill["maker"]), "isBestMatch": True})
    else:
        body.update({"side": fill["side"], "positionSide": "BOTH", "buyer": buy, "maker": bool(fill["maker"]),
                     "realizedPnl": fmt(fill["realized_pnl"], 8), "marginAsset": "USDT"})
    return body


def order_event(listing: Listing, order: dict[str, Any], fill: dict[str, Any] | None, exec_type: str,
                now: int) -> dict[str, Any]:
    """executionReport (spot) or ORDER_TRADE_UPDATE (USD-M) for an order change; `fill` for TRADE events."""
    pd, ad = listing.inst.price_decimals, listing.inst.amount_decimals
    last_qty = fmt(fill["qty"], ad) if fill else fmt(0.0, ad)
    last_px = fmt(fill["price"], pd) if fill else fmt(0.0, pd)
    fee = fmt(fill["commission"], 8) if fill else "0"
    fee_asset = fill["commission_asset"] if fill else None
    trade_id = fill["trade_id"] if fill else -1
    maker = bool(fill["maker"]) if fill else False
    if listing.market == SPOT:
        return {"e": "executionReport", "E": now, "s": listing.id, "c": order["client_id"], "S": order["side"],
                "o": order["type"], "f": order["tif"] or "GTC", "q": fmt(order["qty"], ad),
                "p": fmt(order["price"] or 0.0, pd), "P": fmt(order["stop_price"] or 0.0, pd), "F": "0.00000000",
                "g": -1, "C": order["client_id"] if exec_type == "CANCELED" else "", "x": exec_type,
                "X": order["status"], "r": "NONE", "i": order["order_id"], "l": last_qty,
                "z": fmt(order["executed"], ad), "L": last_px, "n": fee, "N": fee_asset, "T": now, "t": trade_id,
                "I": order["order_id"] * 2, "w": order["status"] in ("NEW", "PARTIALLY_FILLED"), "m": maker,
                "M": False, "O": order["created"], "Z": fmt(order["cum_quote"], 8),
                "Y": fmt(fill["price"] * fill["qty"], 8) if fill else "0.00000000", "Q": "0.00000000",
                "W": order["created"], "V": "NONE"}
    o = {"s": listing.id, "c": order["client_id"], "S": order["side"], "o": order["type"],
         "f": order["tif"] or "GTC", "q": fmt(order["qty"], ad), "p": fmt(order["price"] or 0.0, pd),
         "ap": fmt(_avg(order), pd), "sp": fmt(order["stop_price"] or 0.0, pd), "x": exec_type, "X": order["status"],
         "i": order["order_id"], "l": last_qty, "z": fmt(order["executed"], ad), "L": last_px, "N": fee_asset or "USDT",
         "n": fee, "T": now, "t": trade_id if fill else 0, "b": "0", "a": "0", "m": maker,
         "R": bool(order["reduce_only"]), "wt": "CONTRACT_PRICE", "ot": order["type"], "ps": "BOTH", "cp": False,
         "rp": fmt(fill["realized_pnl"], 8) if fill else "0", "pP": False, "si": 0, "ss": 0, "V": "NONE",
         "pm": "NONE", "gtd": 0}
    return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": o}


def account_event(books: Books, listing: Listing, now: int) -> dict[str, Any]:
    """outboundAccountPosition (spot: the order's two assets) or ACCOUNT_UPDATE (USD-M: wallet and position)."""
    if listing.market == SPOT:
        rows = []
        for asset in (listing.base, listing.quote):
            free, locked = books.balance(SPOT, asset)
            rows.append({"a": asset, "f": fmt(free, 8), "l": fmt(locked, 8)})
        return {"e": "outboundAccountPosition", "E": now, "u": now, "B": rows}
    wallet = books.balance(FUTURES, "USDT")[0]
    pos = books.position(listing.symbol)
    return {"e": "ACCOUNT_UPDATE", "E": now, "T": now,
            "a": {"m": "ORDER", "B": [{"a": "USDT", "wb": fmt(wallet, 8), "cw": fmt(wallet, 8), "bc": "0"}],
                  "P": [{"s": listing.id, "pa": fmt(pos["qty"], listing.inst.amount_decimals),
                         "ep": fmt(pos["entry_price"], 8), "cr": "0", "up": "0", "mt": "cross", "iw": "0",
                         "ps": "BOTH", "bep": fmt(pos["entry_price"], 8)}]}}
