"""The twin's matching engine: orders fill against the simulated book (walking depth) and the live trade tape.

Market and marketable limit orders take liquidity level by level from the twin's current book (taker fee); the rest
of a limit order rests and fills as maker at its price when the tape trades through it (partial fills follow the
traded amount). Conditional orders trigger on the last trade: stop-losses (spot STOP_LOSS_LIMIT, USD-M STOP /
STOP_MARKET) when it reaches stopPrice against the order's side (a sell at or below, a buy at or above), take-profits
(spot TAKE_PROFIT_LIMIT, USD-M TAKE_PROFIT / TAKE_PROFIT_MARKET) when it reaches stopPrice in the order's favour; one
that would trigger at once is refused as Binance does (spot -2010, USD-M -2021). Checks use
Binance's codes: -1013 filter failures (LOT_SIZE, PRICE_FILTER, NOTIONAL), -2010 insufficient balance, -4164 USD-M
min notional, -2019 margin, -2022 reduce-only, -2011/-2013 unknown orders. The simulated book is not depleted by the
twin's own fills (it is regenerated from the simulator); the fills still walk its levels.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from engine.venue import oco, shapes
from engine.venue.books import OPEN_STATUSES, Books
from engine.venue.errors import VenueError, bad_param
from engine.venue.faults import Faults
from engine.venue.feed import MarketFeed
from engine.venue.markets import FUTURES, SPOT, Listing, parse_float

Emit = Callable[[str, dict[str, Any]], None]  # (wallet, user-data event)
SPOT_TYPES = ("MARKET", "LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
FUTURES_TYPES = ("MARKET", "LIMIT", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET")
STOP_LOSS_TYPES = ("STOP_LOSS_LIMIT", "STOP", "STOP_MARKET")
TAKE_PROFIT_TYPES = ("TAKE_PROFIT_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_MARKET")
CONDITIONAL_TYPES = STOP_LOSS_TYPES + TAKE_PROFIT_TYPES
MARKET_TYPES = ("MARKET", "STOP_MARKET", "TAKE_PROFIT_MARKET")  # fill at any price; an unfilled rest expires
INSUFFICIENT = "Account has insufficient balance for requested action."


def _on_step(value: float, step: float) -> bool:
    """True when value is a whole number of steps (within float noise)."""
    k = value / step
    return abs(k - round(k)) < 1e-6


class Matcher:
    """Order entry, cancels and fills over the Books ledger and the MarketFeed's book and tape."""

    def __init__(self, books: Books, feed: MarketFeed, faults: Faults, emit: Emit) -> None:
        self.books = books
        self.feed = feed
        self.faults = faults
        self.emit = emit

    # ----- entry ------------------------------------------------------------------------------------------------
    def place(self, listing: Listing, p: dict[str, str], algo: bool = False, list_id: int = -1,
              lock: bool = True) -> dict[str, Any]:
        """Validate and accept an order (POST order; USD-M conditional types only through the Algo Order API,
        `algo=True`); market and marketable parts fill at once. An OCO leg carries its `list_id`; the second leg
        of a list shares the first one's lock (`lock=False`: both would sell the same coins)."""
        wallet = listing.market
        side = (p.get("side") or "").upper()
        otype = (p.get("type") or "").upper()
        if side not in ("BUY", "SELL"):
            raise bad_param("side")
        allowed = FUTURES_TYPES if wallet == FUTURES else SPOT_TYPES
        if otype not in allowed:
            raise VenueError(-1116, "Invalid orderType.")
        if wallet == FUTURES and (otype in CONDITIONAL_TYPES) != algo:
            raise (VenueError(-4120, "Order type not supported for this endpoint. Please use the Algo Order API "
                                     "endpoints instead.") if not algo else VenueError(-1116, "Invalid orderType."))
        price = parse_float(p, "price", required=otype not in MARKET_TYPES)
        stop = parse_float(p, "stopPrice", required=otype in CONDITIONAL_TYPES)
        quote_qty = parse_float(p, "quoteOrderQty", required=False) if wallet == SPOT and otype == "MARKET" else None
        qty = parse_float(p, "quantity", required=quote_qty is None)
        reduce_only = str(p.get("reduceOnly", "false")).lower() == "true"
        client_id = p.get("newClientOrderId") or shapes.random_client_id()
        if self.faults.reject_orders:
            raise VenueError(-2010, "Order was rejected by the venue (fault injection).")
        if any(o["client_id"] == client_id for o in self.books.open_orders(wallet)):
            raise VenueError(-2010, "Duplicate order sent.")
        inst = listing.inst
        if price is not None and not _on_step(price, inst.price_tick):
            raise VenueError(-1013, "Filter failure: PRICE_FILTER")
        book = self.feed.book(listing)
        if quote_qty is not None:
            qty = self._qty_for_cost(book.floats("asks" if side == "BUY" else "bids"), quote_qty, inst.amount_step)
        assert qty is not None
        if not _on_step(qty, inst.amount_step) or qty < inst.amount_step:
            raise VenueError(-1013, "Filter failure: LOT_SIZE")
        ref = price or (book.floats("asks")[0][0] if side == "BUY" else book.floats("bids")[0][0])
        if wallet == FUTURES:
            qty = self._check_futures(listing, side, qty, ref, reduce_only)
        elif qty * ref < inst.min_cost:
            raise VenueError(-1013, "Filter failure: NOTIONAL")
        if otype == "LIMIT_MAKER" and self._marketable(listing, side, price):
            raise VenueError(-2010, "Order would immediately match and take.")
        if otype in CONDITIONAL_TYPES:
            assert stop is not None
            last = self.feed.last_price(listing)
            if _triggers(otype, side == "BUY", stop, last, last):
                raise (VenueError(-2021, "Order would immediately trigger.") if wallet == FUTURES
                       else VenueError(-2010, "Stop price would trigger immediately."))
        now = self.feed.now()
        triggered = 0 if otype in CONDITIONAL_TYPES else 1
        with self.books.tx():
            locked = self._lock(listing, side, otype, qty, price or ref) if wallet == SPOT and lock else 0.0
            oid = self.books.insert_order(
                wallet=wallet, symbol=listing.symbol, market_id=listing.id, client_id=client_id, side=side,
                type=otype, tif=p.get("timeInForce") or ("GTC" if price else None), price=price, stop_price=stop,
                qty=qty, status="NEW", reduce_only=int(reduce_only), triggered=triggered, locked=locked,
                created=now, updated=now, algo=int(algo), list_id=list_id)
            order = self.books.order(wallet, order_id=oid)
            assert order is not None
            self.emit(wallet, shapes.order_event(listing, order, None, "NEW", now))
            if triggered:
                order = self._take(listing, order)
        return order

    def _qty_for_cost(self, levels: list[tuple[float, float]], cost: float, step: float) -> float:
        """The amount a quoteOrderQty market order buys walking the book (rounded down to the step)."""
        qty, left = 0.0, cost
        for price, amount in levels:
            take = min(amount, left / price)
            qty += take
            left -= take * price
            if left <= 1e-9:
                break
        return math.floor(qty / step + 1e-9) * step

    def _marketable(self, listing: Listing, side: str, price: float | None) -> bool:
        """Whether a limit price crosses the current book."""
        book = self.feed.book(listing)
        if price is None:
            return True
        return price >= book.floats("asks")[0][0] if side == "BUY" else price <= book.floats("bids")[0][0]

    def _lock(self, listing: Listing, side: str, otype: str, qty: float, price: float) -> float:
        """Spot: check and lock the order's funds (quote for buys, base for sells); -2010 when short."""
        asset, need = (listing.quote, qty * price) if side == "BUY" else (listing.base, qty)
        if otype == "MARKET" and side == "BUY":
            need = self._walk_cost(listing, "asks", qty)
        free, _ = self.books.balance(SPOT, asset)
        if need > free + 1e-9:
            raise VenueError(-2010, INSUFFICIENT)
        self.books.move(SPOT, asset, free=-need, locked=need)
        return need

    def _walk_cost(self, listing: Listing, side: str, qty: float) -> float:
        """Quote cost of taking `qty` from one side of the book."""
        cost, left = 0.0, qty
        levels = self.feed.book(listing).floats(side)
        for price, amount in levels:
            take = min(left, amount)
            cost += take * price
            left -= take
            if left <= 1e-12:
                return cost
        return cost + left * levels[-1][0]

    def _check_futures(self, listing: Listing, side: str, qty: float, ref: float, reduce_only: bool) -> float:
        """USD-M checks: reduce-only direction and size, min notional (-4164), margin (-2019)."""
        pos = self.books.position(listing.symbol)
        signed = qty if side == "BUY" else -qty
        if reduce_only:
            if pos["qty"] == 0 or (pos["qty"] > 0) == (signed > 0):
                raise VenueError(-2022, "ReduceOnly Order is rejected.")
            return min(qty, abs(pos["qty"]))
        if qty * ref < listing.inst.min_cost:
            raise VenueError(-4164, f"Order's notional must be no smaller than {listing.inst.min_cost:g} (unless you "
                                    "choose reduce only).")
        increase = max(0.0, abs(pos["qty"] + signed) - abs(pos["qty"]))
        if increase * ref / pos["leverage"] > self.futures_available() + 1e-9:
            raise VenueError(-2019, "Margin is insufficient.")
        return qty

    # ----- fills ------------------------------------------------------------------------------------------------
    def _take(self, listing: Listing, order: dict[str, Any]) -> dict[str, Any]:
        """Fill the marketable part of an order against the book; a market order's unfilled rest expires."""
        side = "asks" if order["side"] == "BUY" else "bids"
        left = order["qty"] - order["executed"]
        if self.faults.partial_fill:
            left = _round_step(left * self.faults.partial_fill, listing.inst.amount_step)
        limit = order["price"] if order["type"] not in MARKET_TYPES else None
        for price, amount in self.feed.book(listing).floats(side):
            if left <= 1e-12 or (limit is not None and ((side == "asks" and price > limit) or
                                                        (side == "bids" and price < limit))):
                break
            take = _round_step(min(left, amount), listing.inst.amount_step)
            if take <= 0:
                break
            order = self._fill(listing, order, price, take, maker=False)
            left -= take
        if order["type"] in MARKET_TYPES and order["status"] in OPEN_STATUSES:
            order = self.finish(listing, order, "EXPIRED")
        return order

    def _fill(self, listing: Listing, order: dict[str, Any], price: float, qty: float, maker: bool) -> dict[str, Any]:
        """Book one fill: balances or position, fee, the order's progress, fill row and user-data events."""
        now = self.feed.now()
        rate = listing.maker if maker else listing.taker
        quote = price * qty
        buy = order["side"] == "BUY"
        pnl = 0.0
        if listing.market == SPOT:
            fee, fee_asset = (qty * rate, listing.base) if buy else (quote * rate, listing.quote)
            if buy:
                unlock = qty * order["price"] if order["type"] != "MARKET" else quote
                unlock = min(unlock, order["locked"])
                self.books.move(SPOT, listing.quote, free=unlock - quote, locked=-unlock)
                self.books.move(SPOT, listing.base, free=qty - fee)
            else:
                unlock = min(qty, order["locked"])
                self.books.move(SPOT, listing.base, locked=-unlock)
                self.books.move(SPOT, listing.quote, free=quote - fee)
            locked = order["locked"] - unlock
        else:
            fee, fee_asset = quote * rate, "USDT"
            pnl = self._apply_position(listing, qty if buy else -qty, price)
            self.books.move(FUTURES, "USDT", free=pnl - fee)
            locked = 0.0
        executed = order["executed"] + qty
        status = "FILLED" if executed >= order["qty"] - 1e-12 else "PARTIALLY_FILLED"
        self.books.update_order(order["order_id"], executed=round(executed, 10), cum_quote=order["cum_quote"] + quote,
                                status=status, updated=now, locked=locked)
        trade_id = self.books.insert_fill(order_id=order["order_id"], wallet=listing.market, symbol=listing.symbol,
                                          side=order["side"], price=price, qty=qty, quote_qty=quote, commission=fee,
                                          commission_asset=fee_asset, maker=int(maker), realized_pnl=pnl, time=now)
        order = self.books.order(listing.market, order_id=order["order_id"]) or order
        if order.get("list_id", -1) >= 0:
            oco.sync_list(self, listing, order["list_id"])
        fill = {"trade_id": trade_id, "price": price, "qty": qty, "commission": fee, "commission_asset": fee_asset,
                "maker": maker, "realized_pnl": pnl, "time": now}
        self.emit(listing.market, shapes.order_event(listing, order, fill, "TRADE", now))
        self.emit(listing.market, shapes.account_event(self.books, listing, now))
        return order

    def _apply_position(self, listing: Listing, delta: float, price: float) -> float:
        """Move a USD-M position by `delta` at `price`; returns the realized PnL of the part that reduced it."""
        pos = self.books.position(listing.symbol)
        q, entry = float(pos["qty"]), float(pos["entry_price"])
        pnl = 0.0
        if q == 0 or (q > 0) == (delta > 0):
            new_q = q + delta
            entry = (abs(q) * entry + abs(delta) * price) / abs(new_q)
        else:
            closed = min(abs(q), abs(delta))
            pnl = closed * (price - entry) * (1 if q > 0 else -1)
            new_q = q + delta
            if abs(new_q) < 1e-12:
                new_q, entry = 0.0, 0.0
            elif (new_q > 0) != (q > 0):
                entry = price
        self.books.set_position(listing.symbol, new_q, entry)
        return pnl

    def finish(self, listing: Listing, order: dict[str, Any], status: str) -> dict[str, Any]:
        """Close an order (CANCELED/EXPIRED), release what it still locks, and report it. An order already final
        (e.g. the other leg of an OCO list canceled just before) is returned as it is."""
        order = self.books.order(listing.market, order_id=order["order_id"]) or order
        if order["status"] not in OPEN_STATUSES:
            return order
        now = self.feed.now()
        released = listing.market == SPOT and order["locked"] > 0
        if released:
            asset = listing.quote if order["side"] == "BUY" else listing.base
            self.books.move(SPOT, asset, free=order["locked"], locked=-order["locked"])
        self.books.update_order(order["order_id"], status=status, locked=0.0, updated=now)
        order = self.books.order(listing.market, order_id=order["order_id"]) or order
        self.emit(listing.market, shapes.order_event(listing, order, None, status, now))
        if order.get("list_id", -1) >= 0 and status == "CANCELED":  # canceling one leg cancels the whole list
            oco.cancel_siblings(self, listing, order)
        if released:
            self.emit(listing.market, shapes.account_event(self.books, listing, now))
        return order

    # ----- cancels ----------------------------------------------------------------------------------------------
    def cancel(self, listing: Listing, order_id: int | None, client_id: str | None) -> dict[str, Any]:
        """Cancel one open order by id or client id (-2011 Unknown order when not open)."""
        if order_id is None and not client_id:
            raise VenueError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        order = self.books.order(listing.market, order_id=order_id, client_id=client_id)
        if order is None or order["symbol"] != listing.symbol or order["status"] not in OPEN_STATUSES:
            raise VenueError(-2011, "Unknown order sent.")
        with self.books.tx():
            return self.finish(listing, order, "CANCELED")

    def cancel_all(self, listing: Listing, algo: bool = False) -> list[dict[str, Any]]:
        """Cancel every open order of a symbol (DELETE openOrders / allOpenOrders), or with `algo` every untriggered
        conditional one (DELETE algoOpenOrders)."""
        out = []
        with self.books.tx():
            for order in self.books.open_orders(listing.market, listing.symbol, algo=algo):
                out.append(self.finish(listing, order, "CANCELED"))
        return out

    # ----- the tape ---------------------------------------------------------------------------------------------
    def on_trades(self, listing: Listing, prices: list[float], amounts: list[float]) -> None:
        """Trigger stops and fill resting limit orders against trades just printed."""
        orders = self.books.open_orders(listing.market, listing.symbol)
        if not orders or not prices:
            return
        lo, hi = min(prices), max(prices)
        with self.books.tx():
            for order in orders:
                if order.get("list_id", -1) >= 0:  # the other leg of its list may have expired it just now
                    order = self.books.order(listing.market, order_id=order["order_id"]) or order
                    if order["status"] not in OPEN_STATUSES:
                        continue
                buy = order["side"] == "BUY"
                if not order["triggered"]:
                    if not _triggers(order["type"], buy, order["stop_price"], lo, hi):
                        continue
                    self.books.update_order(order["order_id"], triggered=1)
                    order = {**order, "triggered": 1}
                    if order.get("list_id", -1) >= 0:  # an OCO leg triggered: the other leg expires
                        order = oco.leg_active(self, listing, order)
                    if order["type"] in MARKET_TYPES or self._marketable(listing, order["side"], order["price"]):
                        self._take(listing, order)
                        continue
                through = [a for p, a in zip(prices, amounts) if (p < order["price"] if buy else p > order["price"])]
                if not through:
                    continue
                left = order["qty"] - order["executed"]
                take = _round_step(min(left, sum(through)), listing.inst.amount_step)
                if self.faults.partial_fill:
                    take = _round_step(take * self.faults.partial_fill, listing.inst.amount_step)
                if take > 0:
                    if order.get("list_id", -1) >= 0:  # an OCO leg fills: the other leg expires
                        order = oco.leg_active(self, listing, order)
                    self._fill(listing, order, order["price"], take, maker=True)

    # ----- futures account --------------------------------------------------------------------------------------
    def futures_account(self) -> dict[str, float]:
        """USD-M wallet balance, unrealized PnL, position margin and available balance."""
        wallet = self.books.balance(FUTURES, "USDT")[0]
        upnl = margin = 0.0
        for pos in self.books.positions():
            if pos["qty"] == 0:
                continue
            mark = self.feed.last_price(self.feed.listings.by_symbol(pos["symbol"]))
            upnl += pos["qty"] * (mark - pos["entry_price"])
            margin += abs(pos["qty"]) * mark / pos["leverage"]
        for order in self.books.open_orders(FUTURES):
            lev = self.books.position(order["symbol"])["leverage"]
            margin += (order["qty"] - order["executed"]) * (order["price"] or 0.0) / lev
        return {"wallet": wallet, "upnl": upnl, "margin": margin, "available": wallet + upnl - margin}

    def futures_available(self) -> float:
        """Available USD-M balance for new exposure."""
        return self.futures_account()["available"]


def _triggers(otype: str, buy: bool, stop: float, lo: float, hi: float) -> bool:
    """Whether trades between lo and hi trigger a conditional order: a stop-loss fires against its side (a sell at or
    below stopPrice, a buy at or above), a take-profit in its favour (a sell at or above, a buy at or below)."""
    if otype in TAKE_PROFIT_TYPES:
        return lo <= stop if buy else hi >= stop
    return hi >= stop if buy else lo <= stop


def _round_step(value: float, step: float) -> float:
    """Round down to the amount step."""
    return round(math.floor(value / step + 1e-9) * step, 12)
