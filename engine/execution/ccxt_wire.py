"""How CcxtBroker puts protective orders on the wire: Binance's conditional order types, ccxt's `trigger` flag for
USD-M algo orders, spot replacement in one request (cancelReplace), and shrinking a spot position's stop (its lock on
the base asset) before the instance sells part of it."""

from __future__ import annotations

from typing import Any, Mapping

from engine.execution.ccxt_oco import is_oco_leg
from engine.execution.orders import OrderRequest, get_order, insert_order, open_orders, set_order_status

PROTECTIVE_TYPES = ("stop", "take")  # orders.type of exchange-side protective orders (engine/execution/protection.py)


class ProtectiveWire:
    """Mixin of CcxtBroker (uses its store, exchange, venue, protector, _lock, _call, _lookup, cancel, submit and
    sync_order)."""

    store: Any
    exchange: Any
    venue: str
    protector: Any
    _lock: Any

    def _spot(self, symbol: str) -> bool:
        """True for a spot market (its protective sell locks the base asset)."""
        return bool(((getattr(self.exchange, "markets", None) or {}).get(symbol) or {}).get("spot"))

    def _wire(self, req: OrderRequest) -> tuple[str, float | None, dict[str, Any]]:
        """(exchange order type, price, params) of a request: protective orders become Binance's conditional types,
        spot STOP_LOSS_LIMIT (limit `limit_offset` past the trigger) and USD-M STOP_MARKET / TAKE_PROFIT_MARKET."""
        params: dict[str, Any] = {"clientOrderId": req.client_order_id}
        if req.reduce_only and ":" in req.symbol:
            params["reduceOnly"] = True
        if req.type not in PROTECTIVE_TYPES:
            return req.type, req.price, params
        assert req.price is not None
        trigger = float(self.exchange.price_to_precision(req.symbol, req.price))
        params["stopPrice"] = trigger
        if self._spot(req.symbol):
            offset = getattr(self.protector, "limit_offset", 0.01)
            limit = trigger * (1 - offset if req.side == "sell" else 1 + offset)
            params["timeInForce"] = "GTC"
            return ("STOP_LOSS_LIMIT" if req.type == "stop" else "TAKE_PROFIT_LIMIT",
                    float(self.exchange.price_to_precision(req.symbol, limit)), params)
        return ("STOP_MARKET" if req.type == "stop" else "TAKE_PROFIT_MARKET"), None, params

    def _free_locked_base(self, req: OrderRequest) -> None:
        """Spot: a resting protective sell locks the instance's base asset; before the instance sells, it is shrunk
        to what stays held (one cancelReplace), or canceled when that is below the exchange's minimum."""
        from engine.execution.flatten import is_protective

        for o in open_orders(self.store, req.instance_id, self.venue):
            if o["symbol"] != req.symbol or not is_protective(o) or o["client_order_id"] == req.client_order_id:
                continue
            if (get_order(self.store, o["client_order_id"]) or {}).get("status") not in ("open", "partial", "new"):
                continue  # the other leg of an OCO list canceled just before
            if is_oco_leg(o):  # an OCO list cannot shrink: it comes off; the check after the sell re-places it
                self.cancel(o["client_order_id"])
                continue
            smaller = self._shrunk(o, o["qty"] - req.qty)
            if smaller is None:
                self.cancel(o["client_order_id"])
            else:  # what stays held stays protected while the sell goes through
                self.replace_protective(o, smaller)

    def _shrunk(self, row: Mapping[str, Any], qty: float) -> OrderRequest | None:
        """The same protective order for `qty` (None when that is below what the exchange accepts)."""
        from engine.execution.protection import protective_client_id

        market = (getattr(self.exchange, "markets", None) or {}).get(row["symbol"]) or {}
        step = float((market.get("precision") or {}).get("amount") or 0.0)
        if step and qty < step:
            return None
        qty = float(self.exchange.amount_to_precision(row["symbol"], qty))
        offset = getattr(self.protector, "limit_offset", 0.01)
        min_cost = float(((market.get("limits") or {}).get("cost") or {}).get("min") or 0.0)
        if qty < max(self.min_amount(row["symbol"]), 1e-12) or qty * row["price"] * (1 - offset) < min_cost:
            return None
        return OrderRequest(instance_id=row["instance_id"], symbol=row["symbol"], side=row["side"], qty=qty,
                            client_order_id=protective_client_id(row["instance_id"], row["symbol"], row["type"],
                                                                 self.exchange.milliseconds()),
                            type=row["type"], price=row["price"], reduce_only=True, intent="protect",
                            reason=f"protect {row['type']} {qty:.8g} {row['symbol']} @ {row['price']:.8g}")

    def _algo(self, symbol: str, coid: str) -> bool:
        """True for a USD-M protective order: Binance keeps those in its Algo Order API (ccxt's `trigger` flag)."""
        from engine.execution.protection import parse_protective_id

        return ":" in symbol and parse_protective_id(coid) is not None

    def replace_protective(self, old: Mapping[str, Any], req: OrderRequest) -> dict[str, Any]:
        """Spot: swap a resting protective order for `req` in ONE request (Binance cancelReplace, ccxt edit_order),
        so a crash between the cancel and the new order cannot leave the position without its stop; elsewhere (or
        an order the exchange never acknowledged) cancel, then submit."""
        import ccxt

        if not self._spot(req.symbol) or not old.get("exchange_order_id") or old.get("status") != "open":
            self.cancel(old["client_order_id"])
            return self.submit(req)
        with self._lock:
            now = self.exchange.milliseconds()
            insert_order(self.store, req, now, venue=self.venue)
            otype, price, params = self._wire(req)
            try:
                order = self._call(f"cancel_replace {old['client_order_id']} -> {req.client_order_id}",
                                   lambda: self.exchange.edit_order(old["exchange_order_id"], req.symbol, otype,
                                                                    req.side, req.qty, price, dict(params)),
                                   retry_check=lambda: self._lookup(req.symbol, req.client_order_id))
            except (ccxt.ExchangeError, ccxt.BadResponse) as exc:  # -2022 (cancel refused), -2021 (new refused)
                set_order_status(self.store, req.client_order_id, "rejected", self.exchange.milliseconds(),
                                 reason=f"{type(exc).__name__}: {exc}"[:500])
                order = None
            except ccxt.NetworkError:
                return get_order(self.store, req.client_order_id) or {}  # stays `new`; the next poll resolves it
            was = self._lookup(req.symbol, str(old["client_order_id"]))
            if was is not None:
                self.sync_order(was, str(old["client_order_id"]))  # canceled (and any fill it had first)
            if order is not None:
                self.sync_order(order, req.client_order_id)
            return get_order(self.store, req.client_order_id) or {}


def recorded_intent(row: Mapping[str, Any]) -> str:
    """The intent an unsent order row was recorded with (its reason says flatten / protective)."""
    reason = str(row.get("reason") or "")
    if reason == "operator flatten":
        return "flatten"
    if row.get("type") in PROTECTIVE_TYPES or reason.startswith("stop crossed"):
        return "protect"
    return "trade"
