"""How CcxtBroker puts protective orders on the wire: Binance's conditional order types, ccxt's `trigger` flag for
USD-M algo orders, and freeing a spot position's locked base before the instance sells it."""

from __future__ import annotations

from typing import Any

from engine.execution.orders import OrderRequest, open_orders

PROTECTIVE_TYPES = ("stop", "take")  # orders.type of exchange-side protective orders (engine/execution/protection.py)


class ProtectiveWire:
    """Mixin of CcxtBroker (uses its store, exchange, venue, protector and cancel)."""

    store: Any
    exchange: Any
    venue: str
    protector: Any

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
        """Spot: a resting protective sell locks the instance's base asset, so cancel it before the instance sells
        (the protective check re-places it for what is left right after)."""
        from engine.execution.flatten import is_protective

        for o in open_orders(self.store, req.instance_id, self.venue):
            if o["symbol"] == req.symbol and is_protective(o) and o["client_order_id"] != req.client_order_id:
                self.cancel(o["client_order_id"])

    def _algo(self, symbol: str, coid: str) -> bool:
        """True for a USD-M protective order: Binance keeps those in its Algo Order API (ccxt's `trigger` flag)."""
        from engine.execution.protection import parse_protective_id

        return ":" in symbol and parse_protective_id(coid) is not None
