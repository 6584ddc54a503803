"""A spot position's stop and take-profit as ONE Binance OCO order list (POST /api/v3/orderList/oco).

On spot both protective sells would lock the same coins, so Binance only allows them together as an OCO: a
STOP_LOSS_LIMIT leg below the market and a LIMIT_MAKER leg above it; when one triggers or fills the exchange expires
the other, so a dead engine still has both and can never sell twice. ccxt 4.5 has no unified OCO call for Binance
spot (its createOrder never sends order lists), so the implicit API methods are used: privatePostOrderListOco,
privateDeleteOrderList. Each leg is an ordinary order row in state.db (type stop / take, reason `protect oco ...`)
polled by client id like any other; the list's client id is the legs' shared digest with the marker `pl`, so it is
known from either leg, also after a restart that lost the rows.
"""

from __future__ import annotations

from typing import Any, Mapping

from engine.execution.broker import check_order_allowed
from engine.execution.orders import OrderRequest, get_order, insert_order, set_order_status
from engine.execution.protective_ids import parse_protective_id
from engine.store.ops import raise_alert

OCO_REASON = "protect oco"  # orders.reason prefix of an OCO leg (still a protective order: `protect ...`)


def is_oco_leg(row: Mapping[str, Any]) -> bool:
    """True for a state.db order row that is one leg of a spot OCO list."""
    return str(row.get("reason") or "").startswith(OCO_REASON)


def oco_list_client_id(leg_client_id: str) -> str:
    """The listClientOrderId of the list a leg (`qd-<tag>-ps<digest>` / `-pt<digest>`) belongs to."""
    head, _, tail = leg_client_id.rpartition("-")
    return f"{head}-pl{tail[2:]}"


class OcoWire:
    """Mixin of CcxtBroker (uses its store, exchange, venue, protector, _lock, _call, _lookup, sync_order)."""

    store: Any
    exchange: Any
    venue: str
    protector: Any
    _lock: Any

    def submit_oco(self, stop: OrderRequest, take: OrderRequest) -> list[dict[str, Any]]:
        """Place a spot SELL (or BUY) OCO: `stop` becomes the STOP_LOSS_LIMIT leg, `take` the LIMIT_MAKER leg. Both
        rows are written before the request leaves; a rejection marks both rejected (with an alert); a network
        failure leaves them `new` (the next poll finds the list by its leg or drops both, see `process`)."""
        import ccxt

        with self._lock:
            now = self.exchange.milliseconds()
            for req in (stop, take):
                check_order_allowed(self.store, req)
                insert_order(self.store, req, now, venue=self.venue)
            symbol = stop.symbol
            offset = getattr(self.protector, "limit_offset", 0.01)
            assert stop.price is not None and take.price is not None
            limit = stop.price * (1 - offset if stop.side == "sell" else 1 + offset)
            p = self.exchange.price_to_precision
            stop_leg = {"Type": "STOP_LOSS_LIMIT", "ClientOrderId": stop.client_order_id,
                        "StopPrice": p(symbol, stop.price), "Price": p(symbol, limit), "TimeInForce": "GTC"}
            take_leg = {"Type": "LIMIT_MAKER", "ClientOrderId": take.client_order_id, "Price": p(symbol, take.price)}
            above, below = (take_leg, stop_leg) if stop.side == "sell" else (stop_leg, take_leg)
            params: dict[str, Any] = {"symbol": self.exchange.market_id(symbol), "side": stop.side.upper(),
                                      "quantity": self.exchange.amount_to_precision(symbol, stop.qty),
                                      "listClientOrderId": oco_list_client_id(stop.client_order_id)}
            params.update({f"above{k}": v for k, v in above.items()})
            params.update({f"below{k}": v for k, v in below.items()})
            try:
                res = self._call(f"create_oco {params['listClientOrderId']}",
                                 lambda: self.exchange.privatePostOrderListOco(dict(params)),
                                 retry_check=lambda: self._lookup(symbol, stop.client_order_id))
            except ccxt.ExchangeError as exc:  # prices on the wrong side, filters, balance: final, not retried
                for req in (stop, take):
                    set_order_status(self.store, req.client_order_id, "rejected", self.exchange.milliseconds(),
                                     reason=f"{type(exc).__name__}: {exc}"[:500])
                raise_alert(self.store, "warning", f"broker.{type(exc).__name__}", f"OCO "
                            f"{params['listClientOrderId']} rejected by {self.exchange.id}: {exc}"[:500],
                            {"list_client_order_id": params["listClientOrderId"], "symbol": symbol})
                return [get_order(self.store, r.client_order_id) or {} for r in (stop, take)]
            except ccxt.NetworkError:
                return [get_order(self.store, r.client_order_id) or {} for r in (stop, take)]
            self._sync_list(symbol, res, (stop.client_order_id, take.client_order_id))
            return [get_order(self.store, r.client_order_id) or {} for r in (stop, take)]

    def _sync_list(self, symbol: str, res: Mapping[str, Any], legs: tuple[str, ...]) -> None:
        """Bring the legs' rows in line with an order-list answer (its orderReports), or read each leg back."""
        market = self.exchange.market(symbol)
        reports = {str(r.get("clientOrderId")): r for r in (res.get("orderReports") or [])}
        for coid in legs:
            order = self.exchange.parse_order(reports[coid], market) if coid in reports \
                else self._lookup(symbol, coid)
            if order is not None:
                self.sync_order(order, coid)

    def drop_unsent_leg(self, row: Mapping[str, Any]) -> bool:
        """An OCO leg recorded but not on the exchange: canceled (the check places a new list), never resent as a
        single order. Under the submit lock, so a list whose request is still in flight is not dropped."""
        with self._lock:
            coid = str(row["client_order_id"])
            current = get_order(self.store, coid)
            if current is None or current["status"] != "new" or self._lookup(row["symbol"], coid) is not None:
                return False
            set_order_status(self.store, coid, "canceled", self.exchange.milliseconds(),
                             reason="OCO leg never reached the exchange")
            return True

    def cancel_oco(self, row: Mapping[str, Any]) -> bool:
        """Cancel the whole list a leg belongs to (DELETE /api/v3/orderList); both legs' rows follow. A list the
        exchange no longer has open (filled, expired, canceled) is read back leg by leg."""
        import ccxt

        coid = str(row["client_order_id"])
        list_id = oco_list_client_id(coid)
        head = coid.rpartition("-")[0]
        digest = coid.rpartition("-")[2][2:]
        legs = tuple(f"{head}-{m}{digest}" for m in ("ps", "pt") if parse_protective_id(f"{head}-{m}{digest}"))
        legs = tuple(c for c in legs if get_order(self.store, c) is not None) or (coid,)
        try:
            res = self._call(f"cancel_oco {list_id}", lambda: self.exchange.privateDeleteOrderList(
                {"symbol": self.exchange.market_id(row["symbol"]), "listClientOrderId": list_id}))
        except ccxt.OrderNotFound:
            res = {}
        self._sync_list(row["symbol"], res, legs)
        for c in legs:  # a leg the exchange does not know at all never got there
            current = get_order(self.store, c)
            if current is not None and current["status"] == "new" and self._lookup(row["symbol"], c) is None:
                set_order_status(self.store, c, "canceled", self.exchange.milliseconds(), reason="not on the exchange")
        return (get_order(self.store, coid) or {}).get("status") == "canceled"
