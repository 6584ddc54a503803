"""Order clean-up on the exchange for CcxtBroker: the dead-man watchdog's cancel of resting non-protective orders,
and the start-up sweep of orphan orders: ours by client-id prefix, which state.db lost, are canceled, except our
protective stops of a position an instance still holds, which are adopted; foreign ones are alerted."""

from __future__ import annotations

import contextlib
from typing import Any

from engine.execution.orders import get_order, open_orders
from engine.store.ops import raise_alert


class OrderCleanup:
    """Mixin of CcxtBroker (uses its store, exchange, symbols, protector, _call, cancel and sync_order)."""

    store: Any
    exchange: Any
    symbols: list[str]
    protector: Any

    def cancel_resting(self) -> dict[str, Any]:
        """Cancel resting non-protective orders (the dead-man watchdog's action): every open order in state.db that
        is neither reduce-only nor a protective stop / take-profit, then any of our own (`qd-` client id) non-reduce-only orders the exchange still shows
        for the desk's symbols that state.db does not list. Protective (reduce-only) orders stay. Errors become
        alerts and the rest are still tried."""
        from engine.execution.flatten import is_protective

        canceled, kept, errors = [], [], []
        for o in open_orders(self.store):
            if o["reduce_only"] or is_protective(o):
                kept.append(o["client_order_id"])
                continue
            try:
                if self.cancel(o["client_order_id"]):
                    canceled.append(o["client_order_id"])
            except Exception as exc:  # noqa: BLE001 - keep canceling the rest
                errors.append(f"{o['client_order_id']}: {exc}")
        known = set(canceled) | set(kept)
        for symbol in self.symbols:
            try:
                listed = self._call(f"fetch_open_orders {symbol}", lambda s=symbol: self.exchange.fetch_open_orders(s))
            except Exception as exc:  # noqa: BLE001
                errors.append(f"fetch_open_orders {symbol}: {exc}")
                continue
            for o in listed:
                coid = str(o.get("clientOrderId") or "")
                if not coid.startswith("qd-") or coid in known or o.get("reduceOnly"):
                    continue
                try:
                    self._call(f"cancel_order {coid}", lambda o=o, s=symbol: self.exchange.cancel_order(o["id"], s))
                    canceled.append(coid)
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"{coid}: {exc}")
        for err in errors:
            raise_alert(self.store, "critical", "broker.cancel_failed", f"cancel resting order failed: {err}"[:500],
                        {"error": err[:300]}, source="watchdog")
        return {"canceled": canceled, "kept_protective": kept, "errors": errors}

    def sweep_orphans(self) -> dict[str, list[str]]:
        """Open exchange orders that state.db has no row for. Ours (client id prefix `qd-`: sent, then the row was
        lost with a restored state.db) are canceled, since nothing here would manage them; foreign ones (placed by
        hand or another bot on the same account) are left alone and named in an alert."""
        import ccxt

        from engine.execution.orders import CLIENT_ID_PREFIX

        canceled, foreign, adopted = [], [], []
        for symbol, o in self._all_open(sorted(set(self.symbols))):
            coid = str(o.get("clientOrderId") or "")
            if coid and get_order(self.store, coid) is not None:
                continue
            owner = self.protector.adoptable(o, symbol) if self.protector is not None else None
            if owner is not None:
                self._adopt_protective(owner, symbol, o)
                adopted.append(coid)
            elif coid.startswith(CLIENT_ID_PREFIX):
                extra = {"trigger": True} if (o.get("info") or {}).get("algoId") is not None else {}
                with contextlib.suppress(ccxt.OrderNotFound):  # an OCO's other leg: canceling one canceled both
                    self._call(f"cancel orphan {coid}",
                               lambda o=o, s=symbol, e=extra: self.exchange.cancel_order(o["id"], s, dict(e)))
                canceled.append(coid)
            else:
                foreign.append(coid or str(o.get("id")))
        if canceled:
            raise_alert(self.store, "warning", "recon.orphan_canceled", f"canceled {len(canceled)} open order(s) of "
                    f"this desk that state.db did not know: {', '.join(canceled)}"[:500], {"canceled": canceled})
        if foreign:
            raise_alert(self.store, "warning", "recon.foreign_orders", f"{len(foreign)} open order(s) on the account "
                    f"were not placed by this desk and are left alone: {', '.join(foreign)}"[:500],
                    {"foreign": foreign})
        if adopted:
            raise_alert(self.store, "warning", "recon.protective_adopted", f"adopted {len(adopted)} protective "
                    f"order(s) of this desk that state.db did not know: {', '.join(adopted)}"[:500],
                    {"adopted": adopted})
        return {"canceled": canceled, "foreign": foreign, "adopted": adopted}

    def _all_open(self, symbols: list[str]) -> list[tuple[str, dict[str, Any]]]:
        """Every open order on the account for these symbols: USD-M conditional orders too (Binance lists those
        only through its Algo Order API, ccxt's `trigger` flag)."""
        out = []
        for symbol in symbols:
            out += [(symbol, o) for o in self._call(f"fetch_open_orders {symbol}",
                                                     lambda s=symbol: self.exchange.fetch_open_orders(s))]
            if ":" in symbol:
                out += [(symbol, o) for o in self._call(
                    f"fetch_open_orders {symbol} (algo)",
                    lambda s=symbol: self.exchange.fetch_open_orders(s, None, None, {"trigger": True}))]
        return out

    def _adopt_protective(self, instance_id: str, symbol: str, order: dict[str, Any]) -> None:
        """Record one of our protective orders found on the exchange as the instance's (the check keeps or replaces
        it like any other)."""
        from engine.execution.orders import OrderRequest, insert_order, set_order_status
        from engine.execution.protection import PROTECT_REASON, parse_protective_id

        from engine.execution.ccxt_oco import OCO_REASON

        parsed = parse_protective_id(str(order["clientOrderId"]))
        assert parsed is not None
        kind = parsed[1]
        # a stop's level is its trigger; an OCO's LIMIT_MAKER take-profit leg has only its limit price
        trigger = float(order.get("triggerPrice") or order.get("stopPrice") or order.get("price") or 0.0)
        in_list = str((order.get("info") or {}).get("orderListId", -1)) not in ("-1", "None", "")
        req = OrderRequest(instance_id=instance_id, symbol=symbol, side=str(order["side"]),
                       qty=float(order["amount"]), client_order_id=str(order["clientOrderId"]), type=kind,
                       price=trigger, reduce_only=True, intent="protect",
                       reason=f"{OCO_REASON if in_list else PROTECT_REASON} {kind} (adopted at start)")
        ts = self.exchange.milliseconds()
        insert_order(self.store, req, ts, status="new", venue=self.venue)
        set_order_status(self.store, req.client_order_id, "open", ts, exchange_order_id=str(order.get("id") or ""))
        self.sync_order(order, req.client_order_id)
