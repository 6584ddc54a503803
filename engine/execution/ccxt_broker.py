"""CcxtBroker: live trading through a ccxt exchange, idempotent by client order id, reconciled against state.db.

- Every order carries our deterministic client order id. The row is written *before* the request leaves, so after a
  crash or a timeout we ask the exchange for that client id before sending again: a retried submit never doubles.
- ccxt errors map to outcomes: ExchangeError (InsufficientFunds, InvalidOrder, ...) -> order rejected + alert, never
  resent; NetworkError (timeouts, ExchangeNotAvailable, RateLimitExceeded/DDoSProtection) -> alert + retry with
  backoff; after `max_retries` the order stays `new` and the next `process()`/reconcile resolves it. ccxt's own
  rate limiter stays enabled.
- Fills are derived from the exchange's cumulative `filled`/`average`/`fee` (delta since what we stored), with fill
  ids from the exchange's trade ids when present, so replays never double-count.
- `reconcile()` (at start and every execution.reconcile_interval_s) syncs open orders, and compares exchange holdings
  with state.db positions; an unexplained holding is adopted into the `_external` instance (with a fill, so positions
  still equal the sum of fills) and raises a critical `recon.mismatch` alert (engine/execution/ccxt_recon.py).
- Protection lives on the exchange (engine/execution/protection.py): after every order, every poll that recorded
  fills and every reconciliation the attached Protector keeps one reduce-only stop (and take-profit) per live
  position resting on the exchange. A spot sell first cancels the instance's protective sell, whose lock on the
  base asset would otherwise refuse it; a HALT's cancel_all leaves protective orders alone.
API keys come from the environment only (QUANTDESK_API_KEY / QUANTDESK_API_SECRET) and are never stored or logged.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, Callable, Mapping

from engine.execution.broker import check_capital_cap, check_order_allowed
from engine.execution.ccxt_cleanup import OrderCleanup
from engine.execution.ccxt_oco import OcoWire, is_oco_leg
from engine.execution.margin_share import UsdmWallet
from engine.execution.ccxt_recon import EXTERNAL_INSTANCE, Reconciliation  # noqa: F401 - re-exported
from engine.execution.ccxt_wire import PROTECTIVE_TYPES, ProtectiveWire, recorded_intent
from engine.execution.orders import (EPS, Fill, OrderBlocked, OrderRequest, get_order, insert_order, open_orders,
                                     record_fill, set_exchange_order_id, set_order_status)
from engine.store.db import Store
from engine.store.ops import raise_alert

log = logging.getLogger("quantdesk.ccxt_broker")
_STATUS = {"open": "open", "closed": "filled", "canceled": "canceled", "cancelled": "canceled", "expired": "canceled",
           "rejected": "rejected"}


class CcxtBroker(OrderCleanup, Reconciliation, ProtectiveWire, OcoWire, UsdmWallet):
    """A live broker over one ccxt exchange instance (injected, so tests pass one with a replaying `fetch`)."""

    mode = "live"
    venue = "exchange"

    def __init__(self, store: Store, exchange: Any, *, max_retries: int = 4, retry_base_s: float = 0.25,
                 capital_caps: Mapping[str, float] | None = None, symbols: list[str] | None = None,
                 sleep: Callable[[float], None] = time.sleep, stale_after_s: float = 10.0) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries: must be >= 0, got {max_retries!r}")
        self.store = store
        self.exchange = exchange
        self.max_retries = max_retries
        self.retry_base_s = retry_base_s
        self.capital_caps = dict(capital_caps or {})
        self.symbols = list(symbols or [])
        self._sleep = sleep
        self._lock = threading.RLock()
        self.protector: Any = None  # engine.execution.protection.Protector once the engine attaches one
        self.stale_after_ms = int(stale_after_s * 1000)  # an unsent trade decision older than this is not sent

    def _protect(self, instance_id: str | None = None, symbol: str | None = None) -> dict[str, Any]:
        """Run the protective-order check (when a Protector is attached); failures become its alerts."""
        if self.protector is None:
            return {}
        return self.protector.ensure(instance_id, symbol)

    # --- error handling -------------------------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], Any], *, retry_check: Callable[[], Any] | None = None) -> Any:
        """Run an exchange call; retry network-class errors with backoff (checking first via retry_check)."""
        import ccxt

        attempt = 0
        while True:
            try:
                if attempt and retry_check is not None:
                    found = retry_check()
                    if found is not None:
                        return found
                return fn()
            except (ccxt.NetworkError,) as exc:  # includes RequestTimeout, ExchangeNotAvailable, DDoSProtection
                attempt += 1
                raise_alert(self.store, "warning", "broker.network", f"{what}: {type(exc).__name__}, retry "
                            f"{attempt}/{self.max_retries}", {"error": str(exc)[:300], "attempt": attempt})
                if attempt > self.max_retries:
                    raise
                self._sleep(self.retry_base_s * (2 ** (attempt - 1)))

    def _market_id_ok(self, symbol: str) -> None:
        if getattr(self.exchange, "markets", None) is None:
            self.exchange.load_markets()
        if symbol not in self.exchange.markets:
            raise ValueError(f"symbol: {symbol!r} is not a market on {self.exchange.id}")

    # --- orders ---------------------------------------------------------------------------------------------------
    def set_capital_cap(self, instance_id: str, capital: float) -> None:
        """The gross notional an instance may hold on the exchange (its stage's capital: live-small a fraction)."""
        self.capital_caps[instance_id] = float(capital)

    def can_short(self, instance_id: str, symbol: str) -> bool:
        """Perpetuals and futures (`BASE/QUOTE:SETTLE`) only: a spot sale needs the coin, and nothing is borrowed."""
        return ":" in symbol

    def min_amount(self, symbol: str) -> float:
        """The smallest quantity the exchange accepts (amount limit or precision step): less is dust, not a position."""
        market = (getattr(self.exchange, "markets", None) or {}).get(symbol) or {}
        lim = float(((market.get("limits") or {}).get("amount") or {}).get("min") or 0.0)
        step = float((market.get("precision") or {}).get("amount") or 0.0)
        return max(lim, step if 0 < step < 1 else 0.0)

    def _closable(self, req: OrderRequest) -> OrderRequest:
        """A flatten order sized to what the exchange will take: floored to the amount step and, for a spot sell, to
        the free base balance (base-asset fees leave a little less than the ledger's gross); OrderBlocked for dust."""
        import dataclasses

        qty = req.qty
        market = self.exchange.markets.get(req.symbol) or {}
        if req.side == "sell" and market.get("spot"):
            bal = self._call("fetch_balance", self.exchange.fetch_balance)
            qty = min(qty, float((bal.get(market.get("base")) or {}).get("free") or 0.0))
        step = float((market.get("precision") or {}).get("amount") or 0.0)
        if 0 < step < 1:  # floored to the step here: ccxt's amount_to_precision raises for less than one step
            qty = math.floor(qty / step + 1e-9) * step
        qty = float(self.exchange.amount_to_precision(req.symbol, qty)) if qty >= max(step, EPS) else 0.0
        if qty < max(self.min_amount(req.symbol), EPS):
            raise OrderBlocked(f"dust: {req.instance_id} {req.symbol} {req.qty:.8g} is below the exchange's minimum "
                               f"amount {self.min_amount(req.symbol):g}")
        return dataclasses.replace(req, qty=qty)

    def _check_cap(self, req: OrderRequest) -> None:
        """Per-strategy capital cap: gross notional after this order may not exceed the instance's capital."""
        check_capital_cap(self.store, req, self.capital_caps.get(req.instance_id), self.mark_price)

    def submit(self, req: OrderRequest) -> dict[str, Any]:
        """Gate, record, then send with our client order id; a timeout is resolved by looking the id up first."""
        import ccxt

        with self._lock:
            existing = get_order(self.store, req.client_order_id)
            if existing is not None and existing["status"] != "new":
                return existing
            if existing is None:
                check_order_allowed(self.store, req)
                self._market_id_ok(req.symbol)
                if req.side == "sell" and req.type not in PROTECTIVE_TYPES and self._spot(req.symbol):
                    self._free_locked_base(req)  # before sizing a close to the free balance
                if req.intent == "flatten" or (req.intent == "protect" and req.type == "market"):
                    req = self._closable(req)
                self._check_cap(req)
                existing, _ = insert_order(self.store, req, self.exchange.milliseconds(), venue=self.venue)
            else:
                try:  # recorded but never confirmed sent: the state may have changed since (HALTED stays HALTED)
                    check_order_allowed(self.store, req)
                except OrderBlocked as exc:
                    set_order_status(self.store, req.client_order_id, "canceled", self.exchange.milliseconds(),
                                     reason=f"not sent after restart: {exc}"[:500])
                    return get_order(self.store, req.client_order_id) or existing
                if req.side == "sell" and req.type not in PROTECTIVE_TYPES and self._spot(req.symbol):
                    self._free_locked_base(req)
            otype, price, params = self._wire(req)
            try:
                order = self._call(f"create_order {req.client_order_id}",
                                   lambda: self.exchange.create_order(req.symbol, otype, req.side, req.qty,
                                                                      price, dict(params)),
                                   retry_check=lambda: self._lookup(req.symbol, req.client_order_id))
            except ccxt.ExchangeError as exc:  # InsufficientFunds, InvalidOrder, BadRequest, ...: final, not retried
                set_order_status(self.store, req.client_order_id, "rejected", self.exchange.milliseconds(),
                                 reason=f"{type(exc).__name__}: {exc}"[:500])
                raise_alert(self.store, "critical" if isinstance(exc, ccxt.InsufficientFunds) else "warning",
                            f"broker.{type(exc).__name__}", f"order {req.client_order_id} rejected by "
                            f"{self.exchange.id}: {exc}"[:500], {"client_order_id": req.client_order_id,
                                                               "symbol": req.symbol, "qty": req.qty})
                return get_order(self.store, req.client_order_id) or existing
            except ccxt.NetworkError:
                return get_order(self.store, req.client_order_id) or existing  # stays `new`; process() resolves it
            self.sync_order(order, req.client_order_id)
            if req.type not in PROTECTIVE_TYPES:
                self._protect(req.instance_id, req.symbol)
            return get_order(self.store, req.client_order_id) or existing

    def _lookup(self, symbol: str, coid: str) -> dict[str, Any] | None:
        """The exchange's order for our client id, or None when the exchange never saw it. A USD-M conditional
        order that triggered is answered by its actual order (the one holding the fills)."""
        import ccxt

        try:
            if not self._algo(symbol, coid):
                return self.exchange.fetch_order(None, symbol, {"clientOrderId": coid})
            algo = self.exchange.fetch_order(None, symbol, {"clientOrderId": coid, "trigger": True})
            actual = (algo.get("info") or {}).get("actualOrderId")
            if algo.get("status") != "closed" or not actual:
                return algo
            return {**self.exchange.fetch_order(str(actual), symbol), "clientOrderId": coid}
        except ccxt.OrderNotFound:
            return None

    def sync_order(self, order: Mapping[str, Any], coid: str | None = None) -> int:
        """Bring our order row in line with a ccxt order structure; records new fills; returns fills added.

        Under the submit lock: the poll job and a submit can hold the same filled order at once (the create answer
        with its trade ids, the poll's fetch without), and each read of the row before the other's fill was recorded
        would book the fill again under its own fill id (seen on the twin: one buy booked twice)."""
        with self._lock:
            return self._sync_order(order, coid)

    def _sync_order(self, order: Mapping[str, Any], coid: str | None = None) -> int:
        coid = coid or order.get("clientOrderId")
        row = get_order(self.store, coid) if coid else None
        if row is None:
            return 0
        if order.get("id"):
            set_exchange_order_id(self.store, coid, str(order["id"]))
        ts = int(order.get("lastTradeTimestamp") or order.get("timestamp") or self.exchange.milliseconds())
        filled = float(order.get("filled") or 0.0)
        status = _STATUS.get(str(order.get("status")), "open")
        added = 0
        delta = filled - row["filled_qty"]
        if delta > EPS * max(1.0, filled):
            avg = float(order.get("average") or order.get("price") or 0.0)
            prev_cost = (row["avg_price"] or 0.0) * row["filled_qty"]
            price = (avg * filled - prev_cost) / delta if avg else float(order.get("price") or 0.0)
            fee_total = self._fee_quote(order, avg) or self._usdm_fee_or_alert(order)
            fee = max(0.0, fee_total * delta / filled) if filled else 0.0
            fee_base = max(0.0, self._fee_base(order) * delta / filled) if filled else 0.0
            trade_ids = [str(t.get("id")) for t in (order.get("trades") or []) if t.get("id") is not None]
            fill_id = f"{coid}:{'+'.join(trade_ids)[:40]}" if trade_ids and row["filled_qty"] == 0 else \
                f"{coid}:cum{filled:.10g}"
            final = status if status in ("filled", "canceled") else None
            added += int(record_fill(self.store, Fill(fill_id=fill_id, client_order_id=coid,
                                                      instance_id=row["instance_id"], symbol=row["symbol"],
                                                      side=row["side"], qty=delta, price=price, fee=fee,
                                                      liquidity="maker" if row["type"] == "limit" else "taker",
                                                      ts=ts, fee_base=fee_base), final_status=final,
                                                 expected_filled=row["filled_qty"]))
        if status != "open" or filled <= EPS:
            current = get_order(self.store, coid) or row
            target = status if status != "open" else ("partial" if current["filled_qty"] > EPS else "open")
            set_order_status(self.store, coid, target, ts)
        else:
            set_order_status(self.store, coid, "partial", ts)
        return added

    def _usdm_fee_or_alert(self, order: Mapping[str, Any]) -> float:
        """A USD-M order's commission from its trades (its answer has none); 0 with an alert when unreadable (the
        USD-M wallet check then names the difference)."""
        try:
            return float(self._usdm_fee(dict(order)) or 0.0)
        except Exception as exc:  # noqa: BLE001 - the fill itself must still be recorded
            raise_alert(self.store, "warning", "broker.fee_unknown", f"commission of {order.get('clientOrderId')} "
                        f"unreadable: {type(exc).__name__}: {exc}"[:500], {"client_order_id": order.get("clientOrderId")})
            return 0.0

    def _fee_base(self, order: Mapping[str, Any]) -> float:
        """Commission paid in the base asset of a spot market (the holding is that much smaller than `filled`)."""
        market = self.exchange.markets.get(order.get("symbol")) if getattr(self.exchange, "markets", None) else None
        if not market or not market.get("spot"):
            return 0.0
        fees = order.get("fees") or ([order["fee"]] if order.get("fee") else [])
        return sum(float(f["cost"]) for f in fees if f and f.get("cost") is not None
                   and f.get("currency") == market.get("base"))

    def _fee_quote(self, order: Mapping[str, Any], avg: float) -> float:
        """Total fee of an order in quote currency (base-currency fees converted at the average price)."""
        fees = order.get("fees") or ([order["fee"]] if order.get("fee") else [])
        market = self.exchange.markets.get(order.get("symbol")) if getattr(self.exchange, "markets", None) else None
        total = 0.0
        for f in fees:
            if not f or f.get("cost") is None:
                continue
            cost = float(f["cost"])
            if market and f.get("currency") == market.get("base"):
                cost *= avg
            total += cost
        return total

    def cancel(self, client_order_id: str) -> bool:
        """Cancel by client id; an order the exchange no longer knows is re-read and synced."""
        import ccxt

        with self._lock:
            row = get_order(self.store, client_order_id)
            if row is None:
                raise ValueError(f"client_order_id: no order {client_order_id!r}")
            if row.get("venue", self.venue) != self.venue:
                raise ValueError(f"client_order_id: {client_order_id!r} is a {row['venue']} order, not an exchange one")
            if row["status"] in ("filled", "canceled", "rejected"):
                return row["status"] == "canceled"
            if is_oco_leg(row):  # one leg of a spot OCO: the whole list comes off (engine/execution/ccxt_oco.py)
                return self.cancel_oco(row)
            try:
                extra = {"trigger": True} if self._algo(row["symbol"], client_order_id) else {}
                order = self._call(f"cancel_order {client_order_id}", lambda: self.exchange.cancel_order(
                    row["exchange_order_id"], row["symbol"], {"clientOrderId": client_order_id, **extra}))
                if extra:  # the algo API answers a cancel with a code, not the order: read it back
                    order = self._lookup(row["symbol"], client_order_id) or order
            except ccxt.OrderNotFound:
                order = self._lookup(row["symbol"], client_order_id)
                if order is None:
                    set_order_status(self.store, client_order_id, "canceled", self.exchange.milliseconds(),
                                     reason="not on the exchange")
                    return True
            self.sync_order(order, client_order_id)
            return (get_order(self.store, client_order_id) or {}).get("status") == "canceled"

    def cancel_all(self, instance_id: str | None = None) -> int:
        """Cancel every open order (of one instance) except protective stops / take-profits, which keep guarding the
        positions a HALT leaves open (a flatten pulls them, last); exchange errors become alerts, not a stop."""
        from engine.execution.flatten import is_protective

        n = 0
        for o in open_orders(self.store, instance_id, self.venue):
            if is_protective(o):
                continue
            try:
                n += int(self.cancel(o["client_order_id"]))
            except Exception as exc:  # noqa: BLE001 - keep canceling the rest
                raise_alert(self.store, "critical", "broker.cancel_failed", f"cancel {o['client_order_id']} "
                            f"failed: {exc}", {"client_order_id": o["client_order_id"]})
        return n

    def process(self) -> int:
        """Poll every open order on the exchange and record new fills; unsent (`new`) orders are resolved."""
        added = 0
        for o in open_orders(self.store, venue=self.venue):
            try:
                found = self._call(f"fetch_order {o['client_order_id']}",
                                   lambda o=o: self._lookup(o["symbol"], o["client_order_id"]))
            except Exception as exc:  # noqa: BLE001
                raise_alert(self.store, "warning", "broker.poll_failed", f"poll {o['client_order_id']}: {exc}", {})
                continue
            if found is None:
                if o["status"] == "new" and is_oco_leg(o):  # never got there: re-placed below as a list
                    added += int(self.drop_unsent_leg(o))
                elif o["type"] in PROTECTIVE_TYPES and o["status"] != "new":  # gone from the exchange: re-placed
                    set_order_status(self.store, o["client_order_id"], "canceled", self.exchange.milliseconds(),
                                     reason="protective order not on the exchange")
                    added += 1
                elif o["status"] == "new" and recorded_intent(o) == "trade" and \
                        self.exchange.milliseconds() - int(o["created_at"]) > self.stale_after_ms:
                    self._drop_stale(o)
                elif o["status"] == "new":
                    self.submit(OrderRequest(instance_id=o["instance_id"], symbol=o["symbol"], side=o["side"],
                                             qty=o["qty"], client_order_id=o["client_order_id"], type=o["type"],
                                             price=o["price"], reduce_only=bool(o["reduce_only"]),
                                             intent=recorded_intent(o)))
                continue
            added += self.sync_order(found, o["client_order_id"])
        if added:
            self._protect()
        return added

    def rearm(self) -> dict[str, Any]:
        """The first thing a live engine does once connected: sync the open orders (a protective order deleted or
        filled while the engine was down shows up here) and re-place missing protection, before the slower rest
        of the start (market source, streams, full reconciliation)."""
        with self._lock:
            self.process()
            return self._protect()

    def _drop_stale(self, row: Mapping[str, Any]) -> None:
        """A trade order recorded but never sent (the engine died, or the exchange was unreachable, before it left)
        is not sent late: the market and the position may have moved since (a stop may have closed it). The next
        tick decides afresh. Flatten and protective orders are still sent: they only lower risk."""
        age = (self.exchange.milliseconds() - int(row["created_at"])) / 1000
        set_order_status(self.store, row["client_order_id"], "canceled", self.exchange.milliseconds(),
                         reason=f"stale: recorded {age:.0f}s ago and never sent; not sent late")
        raise_alert(self.store, "warning", "broker.stale_order", f"{row['client_order_id']} ({row['instance_id']} "
                    f"{row['side']} {row['qty']:g} {row['symbol']}) was recorded {age:.0f}s ago but never reached "
                    "the exchange; dropped instead of sent late", {"client_order_id": row["client_order_id"]})

    def recover(self) -> dict[str, Any]:
        """At start: orphan orders first (ours the state.db does not know are canceled), then reconcile."""
        with self._lock:
            orphans = self.sweep_orphans()
            return {**self._reconcile_locked(), "orphans": orphans}

    def apply_funding(self) -> int:
        """Book the funding the exchange settled into the sub-ledgers of the instances that held the perps
        (engine/execution/funding.py book_exchange_funding)."""
        from engine.execution.funding import book_exchange_funding

        if not any(":" in s for s in self.symbols):
            return 0
        return book_exchange_funding(self.store, self.venue, lambda since: self._call(
            "fetch_funding_history", lambda: self.exchange.fetch_funding_history(None, since, 1000)))

    def mark_price(self, symbol: str) -> float:
        """Mid of the exchange's top of book (last price when the book is empty)."""
        book = self._call(f"fetch_order_book {symbol}", lambda: self.exchange.fetch_order_book(symbol, 5))
        if book.get("bids") and book.get("asks"):
            return (book["bids"][0][0] + book["asks"][0][0]) / 2
        ticker = self._call(f"fetch_ticker {symbol}", lambda: self.exchange.fetch_ticker(symbol))
        return float(ticker["last"])
