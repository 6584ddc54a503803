"""PaperBroker: fills against the source's live order book and trade tape, with fees, funding and latency.

- Market orders walk the book (VWAP over the levels they consume); what the visible book cannot fill is canceled.
- Limit orders rest; a public trade on the opposite side that crosses the limit fills them. At the limit price the
  trade volume first consumes the queue ahead of us (`queue_ahead_fraction` of the level's size when the order
  arrived), so fills are partial and late, as in a real queue.
- Latency: an order reaches the "exchange" `latency_ms` after submission (market orders see the book fetched after
  that delay; limit orders only match trades printed after arrival).
- Funding: perpetual positions pay/receive `rate * qty * mark` at each funding timestamp.
- Protective exits (engine.trading.stops): `fill_at` records a stop at its level (or the gapped open) and a
  take-profit at its level, as the backtest kernel fills them, with the taker / maker fee.
Crash safety comes from `orders.record_fill` (one transaction per fill) and deterministic fill ids.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from engine.data.source import MarketSource
from engine.execution.broker import check_capital_cap, check_order_allowed
from engine.execution.orders import (EPS, Fill, OrderBlocked, OrderRequest, OrderStatus, get_order, insert_order,
                                     next_fill_seq, open_orders, record_fill, set_order_status)
from engine.store.db import Store
from engine.store.ops import raise_alert

log = logging.getLogger("quantdesk.paper")


def walk_book(levels: list[list[float]], qty: float, limit: float | None = None,
              side: str = "buy") -> tuple[float, float]:
    """(filled qty, VWAP) of taking `qty` from book levels best-first, not past `limit` if given."""
    filled, cost = 0.0, 0.0
    for price, amount in levels:
        if limit is not None and ((side == "buy" and price > limit) or (side == "sell" and price < limit)):
            break
        take = min(amount, qty - filled)
        if take <= 0:
            break
        filled += take
        cost += take * price
    return filled, (cost / filled if filled > 0 else 0.0)


def _request_of(order: dict[str, Any]) -> OrderRequest:
    """The OrderRequest a stored order row came from (for re-checking the trading-state gate)."""
    return OrderRequest(instance_id=order["instance_id"], symbol=order["symbol"], side=order["side"],
                        qty=order["qty"] - order["filled_qty"], client_order_id=order["client_order_id"],
                        type=order["type"], price=order["price"], reduce_only=bool(order["reduce_only"]),
                        intent="flatten" if order["reason"] == "operator flatten" else "trade")


class PaperBroker:
    """A simulated broker over any MarketSource; state (orders, fills, positions) lives in state.db."""

    mode = "paper"
    venue = "paper"

    def __init__(self, store: Store, source: MarketSource, *, fee_maker: float = 0.0002, fee_taker: float = 0.0005,
                 latency_ms: float = 50.0, queue_ahead_fraction: float = 0.5, book_depth: int = 50,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if latency_ms < 0:
            raise ValueError(f"latency_ms: must be >= 0, got {latency_ms!r}")
        if not 0 <= queue_ahead_fraction <= 1:
            raise ValueError(f"queue_ahead_fraction: must be in [0, 1], got {queue_ahead_fraction!r}")
        self.store = store
        self.source = source
        self.fee_maker = fee_maker
        self.fee_taker = fee_taker
        self.latency_ms = latency_ms
        self.queue_ahead_fraction = queue_ahead_fraction
        self.book_depth = book_depth
        self._sleep = sleep
        self._lock = threading.RLock()
        self._queue: dict[str, float] = {}  # client id -> volume still ahead of us at our price
        self._seen_until: dict[str, int] = {}  # client id -> last trade ts already matched
        self._funding_ts: dict[tuple[str, str], int] = {}
        self.capital_caps: dict[str, float] = {}  # instance -> capital it may deploy (set per tick by its stage)

    def min_amount(self, symbol: str) -> float:
        """Paper fills any size: only float noise is dust."""
        return EPS

    def set_capital_cap(self, instance_id: str, capital: float) -> None:
        """The gross notional an instance may hold through this broker (its stage's capital)."""
        self.capital_caps[instance_id] = float(capital)

    def can_short(self, instance_id: str, symbol: str) -> bool:
        """Paper keeps the backtest's semantics: every symbol can be held short (as on margin)."""
        return True

    # --- orders ---------------------------------------------------------------------------------------------------
    def submit(self, req: OrderRequest) -> dict[str, Any]:
        """Gate, record and (for market orders) execute an order; a known client id returns the stored order."""
        with self._lock:
            existing = get_order(self.store, req.client_order_id)
            if existing is not None:
                return existing
            check_order_allowed(self.store, req)
            check_capital_cap(self.store, req, self.capital_caps.get(req.instance_id), self.mark_price)
            now = self.source.milliseconds()
            row, created = insert_order(self.store, req, now, venue=self.venue)
            if not created:
                return row
            if self.latency_ms > 0:
                self._sleep(self.latency_ms / 1000)
            self._arrive(row)
            return get_order(self.store, req.client_order_id) or row

    def fill_at(self, req: OrderRequest, price: float, liquidity: str, ts: int) -> dict[str, Any]:
        """Record `req` filled in full at `price` (a protective stop / take-profit triggered inside a bar: the level,
        or the open when the bar gapped through it); idempotent by client id, gated like every order."""
        if liquidity not in ("maker", "taker"):
            raise ValueError(f"liquidity: must be maker or taker, got {liquidity!r}")
        if not price > 0:
            raise ValueError(f"price: must be positive, got {price!r}")
        with self._lock:
            existing = get_order(self.store, req.client_order_id)
            if existing is not None:
                return existing
            check_order_allowed(self.store, req)
            row, created = insert_order(self.store, req, ts, venue=self.venue)
            if created:
                self._fill(row, req.qty, float(price), liquidity, ts, final_status=OrderStatus.FILLED.value)
            return get_order(self.store, req.client_order_id) or row

    def _arrive(self, order: dict[str, Any]) -> None:
        """The order reaches the simulated venue: market orders walk the book, limits take or rest."""
        coid, side, symbol = order["client_order_id"], order["side"], order["symbol"]
        remaining = order["qty"] - order["filled_qty"]
        book = self.source.fetch_order_book(symbol, self.book_depth)
        levels = book["asks"] if side == "buy" else book["bids"]
        now = self.source.milliseconds()
        if order["type"] == "market":
            qty, vwap = walk_book(levels, remaining, None, side)
            if qty > EPS:
                self._fill(order, qty, vwap, "taker", now)
            if qty < remaining * (1 - 1e-9):
                set_order_status(self.store, coid, "canceled", now,
                                 reason=f"book exhausted: filled {qty:.8g} of {remaining:.8g}")
            return
        limit = float(order["price"])
        qty, vwap = walk_book(levels, remaining, limit, side)
        if qty > EPS:
            self._fill(order, qty, vwap, "taker", now)
            order = get_order(self.store, coid) or order
            if order["status"] == "filled":
                return
        own_side = book["bids"] if side == "buy" else book["asks"]
        ahead = sum(a for p, a in own_side if abs(p - limit) <= 1e-12 * max(1.0, limit))
        self._queue[coid] = ahead * self.queue_ahead_fraction
        self._seen_until[coid] = now
        set_order_status(self.store, coid, OrderStatus.PARTIAL.value if order["filled_qty"] > 0
                         else OrderStatus.OPEN.value, now)

    def _fill(self, order: dict[str, Any], qty: float, price: float, liquidity: str, ts: int,
              final_status: str | None = None) -> None:
        fee_rate = self.fee_taker if liquidity == "taker" else self.fee_maker
        seq = next_fill_seq(self.store, order["client_order_id"])
        record_fill(self.store, Fill(
            fill_id=f"{order['client_order_id']}:{seq}", client_order_id=order["client_order_id"],
            instance_id=order["instance_id"], symbol=order["symbol"], side=order["side"], qty=qty, price=price,
            fee=qty * price * fee_rate, liquidity=liquidity, ts=ts), final_status=final_status)

    def cancel(self, client_order_id: str) -> bool:
        """Cancel an open order (cancels always pass the trading-state gate)."""
        with self._lock:
            order = get_order(self.store, client_order_id)
            if order is None:
                raise ValueError(f"client_order_id: no order {client_order_id!r}")
            if order.get("venue", self.venue) != self.venue:
                raise ValueError(f"client_order_id: {client_order_id!r} is an order on the {order['venue']}, "
                                 "not a paper order")
            if order["status"] in ("filled", "rejected"):
                return False
            set_order_status(self.store, client_order_id, "canceled", self.source.milliseconds(), reason="canceled")
            self._queue.pop(client_order_id, None)
            self._seen_until.pop(client_order_id, None)
            return True

    def cancel_all(self, instance_id: str | None = None) -> int:
        """Cancel every open order (of one instance)."""
        return sum(1 for o in open_orders(self.store, instance_id, self.venue) if self.cancel(o["client_order_id"]))

    def process(self) -> int:
        """Match resting limit orders against public trades printed since we last looked; returns fills made."""
        made = 0
        with self._lock:
            for order in open_orders(self.store, venue=self.venue):
                if order["status"] == OrderStatus.NEW:
                    self._send_unsent(order)
                    continue
                if order["type"] != "limit":  # a market remainder left by a crash between fill and cancel
                    set_order_status(self.store, order["client_order_id"], "canceled", self.source.milliseconds(),
                                     reason="market order remainder canceled")
                    continue
                made += self._match_limit(order)
        return made

    def _match_limit(self, order: dict[str, Any]) -> int:
        coid, limit = order["client_order_id"], float(order["price"])
        since = self._seen_until.get(coid, order["updated_at"])
        if coid not in self._queue:  # after a restart the queue position is unknown: assume the back of the level
            book = self.source.fetch_order_book(order["symbol"], self.book_depth)
            own = book["bids"] if order["side"] == "buy" else book["asks"]
            self._queue[coid] = sum(a for p, a in own if abs(p - limit) <= 1e-12 * max(1.0, limit))
        trades = self.source.fetch_trades(order["symbol"], since=since + 1)
        remaining = order["qty"] - order["filled_qty"]
        tradeable, last_ts = 0.0, since
        for t in trades:
            last_ts = max(last_ts, int(t["timestamp"]))
            hits_us = (order["side"] == "buy" and t["side"] == "sell") or (order["side"] == "sell" and t["side"] == "buy")
            if not hits_us:
                continue
            price, amount = float(t["price"]), float(t["amount"])
            crosses = price < limit if order["side"] == "buy" else price > limit
            if crosses:
                tradeable += amount
            elif abs(price - limit) <= 1e-12 * max(1.0, limit):
                eaten = min(self._queue[coid], amount)
                self._queue[coid] -= eaten
                tradeable += amount - eaten
        self._seen_until[coid] = last_ts
        qty = min(remaining, tradeable)
        if qty <= EPS:
            return 0
        self._fill(order, qty, limit, "maker", last_ts)
        return 1

    def _send_unsent(self, order: dict[str, Any]) -> bool:
        """Send an order recorded before a crash, if the trading state still allows it; else cancel it."""
        try:
            check_order_allowed(self.store, _request_of(order))
        except OrderBlocked as exc:
            set_order_status(self.store, order["client_order_id"], "canceled", self.source.milliseconds(),
                             reason=f"not sent after restart: {exc}"[:500])
            return False
        self._arrive(order)
        return True

    def recover(self) -> dict[str, Any]:
        """After a restart: orders recorded but never sent (status new) arrive now, if the state allows them."""
        pending = [o for o in open_orders(self.store, venue=self.venue) if o["status"] == OrderStatus.NEW]
        with self._lock:
            sent = sum(self._send_unsent(o) for o in pending)
        return {"resubmitted": sent, "blocked": len(pending) - sent, "resting": len(open_orders(self.store, venue=self.venue))}

    # --- valuation and funding -----------------------------------------------------------------------------------
    def mark_price(self, symbol: str) -> float:
        """Mid of the current top of book."""
        book = self.source.fetch_order_book(symbol, 5)
        bid, ask = book["bids"][0][0], book["asks"][0][0]
        return (bid + ask) / 2

    def apply_funding(self) -> int:
        """Charge perpetual positions at each new funding timestamp; returns how many payments were booked."""
        from engine.execution.funding import book_funding

        return book_funding(self.store, self.venue, self.source.fetch_funding_rate, self.mark_price, self._funding_ts)

    def reconcile(self) -> dict[str, Any]:
        """Paper positions are virtual: nothing outside state.db to compare them with."""
        return {"venue": self.venue, "skipped": "paper positions live only in state.db"}
