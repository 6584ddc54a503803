"""Brokers by stage, per instance: one engine runs a mixed desk without a paper strategy ever reaching the account.

research -> no orders; paper -> the paper broker (on the same market data as the live instances); live-small and
live -> the exchange broker (live-small with `lifecycle.live_small_fraction` of its capital, enforced as the capital
cap). An engine not started with --live has no exchange broker: its live-small/live instances trade nothing (their
orders are blocked, with an alert saying why), never on paper in the account's name.

The router is itself a `Broker`: the trader and flatten talk to it, it picks the broker from the instance's stage as
stored at the moment of the order (so a demotion takes effect on the next order), and each order row records the
venue that owns it, so cancels, polls and recovery go to the broker that sent it.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from engine.execution.broker import Broker
from engine.execution.orders import OrderBlocked, OrderRequest, get_order
from engine.store.db import Store
from engine.store.ops import raise_alert

log = logging.getLogger("quantdesk.router")
EXCHANGE_STAGES = ("live-small", "live")


def venue_for(stage: str, live: bool) -> str | None:
    """The venue an instance at `stage` trades on ('paper' | 'exchange'), or None when it places no orders."""
    if stage == "paper":
        return "paper"
    if stage in EXCHANGE_STAGES:
        return "exchange" if live else None
    return None


def broker_label(stage: str, live: bool, exchange_id: str) -> str:
    """What the console and `quantdesk status` show as an instance's broker."""
    venue = venue_for(stage, live)
    if venue == "paper":
        return "paper"
    if venue == "exchange":
        return f"exchange:{exchange_id}"
    if stage in EXCHANGE_STAGES:
        return "none (engine not started with --live)"
    return "none (research places no orders)"


class StageRouter:
    """Routes each order to the broker of its instance's stage; fans out cancels, polls, recovery and funding."""

    def __init__(self, store: Store, paper: Broker, exchange: Broker | None, stage_of: Callable[[str], str]) -> None:
        self.store = store
        self.paper = paper
        self.exchange = exchange
        self.stage_of = stage_of
        self.mode = "live" if exchange is not None else "paper"
        self.venue = "router"
        self._warned: set[str] = set()
        # the account risk budget before every exposure-adding order: (symbol, side, qty, price) -> reason | None
        self.budget: Callable[[str, str, float, float | None], str | None] | None = None

    @property
    def brokers(self) -> list[Broker]:
        """The brokers behind the router (paper first)."""
        return [self.paper] + ([self.exchange] if self.exchange is not None else [])

    def broker_for(self, instance_id: str) -> Broker:
        """The broker an instance's orders go to now; OrderBlocked naming the reason when there is none."""
        stage = self.stage_of(instance_id)
        venue = venue_for(stage, self.exchange is not None)
        if venue == "paper":
            return self.paper
        if venue == "exchange" and self.exchange is not None:
            return self.exchange
        reason = (f"{instance_id} is at stage {stage}: the engine was not started with --live, so it trades nothing"
                  if stage in EXCHANGE_STAGES else f"{instance_id} is at stage {stage}: no orders")
        if instance_id not in self._warned and stage in EXCHANGE_STAGES:
            self._warned.add(instance_id)
            raise_alert(self.store, "warning", "router.not_live", reason, {"instance_id": instance_id,
                                                                           "stage": stage})
        raise OrderBlocked(reason)

    def _owner(self, client_order_id: str) -> Broker:
        row = get_order(self.store, client_order_id)
        if row is None:
            raise ValueError(f"client_order_id: no order {client_order_id!r}")
        if row["venue"] == "exchange":
            if self.exchange is None:
                raise OrderBlocked(f"{client_order_id} is an exchange order; the engine was not started with --live")
            return self.exchange
        return self.paper

    # --- Broker protocol ------------------------------------------------------------------------------------------
    def submit(self, req: OrderRequest) -> dict[str, Any]:
        """Send through the broker of the instance's stage (an existing client id goes back to its own venue)."""
        existing = get_order(self.store, req.client_order_id)
        if existing is not None:
            return self._owner(req.client_order_id).submit(req)
        broker = self.broker_for(req.instance_id)
        self._check_budget(req)
        return broker.submit(req)

    def _check_budget(self, req: OrderRequest) -> None:
        """Refuse an exposure-adding order that would break the account risk budget (reason in the audit log)."""
        from engine.execution.broker import reduces_exposure
        from engine.store.ops import audit

        if self.budget is None or req.intent != "trade" or reduces_exposure(self.store, req):
            return
        reason = self.budget(req.symbol, req.side, req.qty, req.price)
        if reason is None:
            return
        audit(self.store, "engine", "order.refused", {"client_order_id": req.client_order_id,
                                                      "instance_id": req.instance_id, "symbol": req.symbol,
                                                      "side": req.side, "qty": req.qty, "reason": reason},
              user="engine")
        raise_alert(self.store, "warning", "risk.budget_order", f"{req.instance_id} {req.side} {req.qty:g} "
                    f"{req.symbol} refused: {reason}"[:500], {"instance_id": req.instance_id, "symbol": req.symbol})
        raise OrderBlocked(f"account risk budget: {reason}")

    def cancel(self, client_order_id: str) -> bool:
        """Cancel through the broker that owns the order."""
        return self._owner(client_order_id).cancel(client_order_id)

    def cancel_all(self, instance_id: str | None = None) -> int:
        """Cancel every open order on every venue (of one instance)."""
        return sum(int(b.cancel_all(instance_id)) for b in self.brokers)

    def process(self) -> int:
        """Advance pending orders on every venue; an exchange outage does not stop paper matching."""
        made = 0
        for b in self.brokers:
            try:
                made += int(b.process())
            except Exception as exc:  # noqa: BLE001 - one venue failing must not starve the other
                raise_alert(self.store, "warning", f"broker.{b.venue}.process", f"{b.venue} broker: "
                            f"{type(exc).__name__}: {exc}"[:500], {"venue": b.venue})
        return made

    def recover(self) -> dict[str, Any]:
        """Recover every venue after a restart; returns each venue's summary."""
        return {b.venue: b.recover() for b in self.brokers}

    def mark_price(self, symbol: str) -> float:
        """Valuation from the exchange when trading live (the account's own marks), else the paper source."""
        return (self.exchange or self.paper).mark_price(symbol)

    def can_short(self, instance_id: str, symbol: str) -> bool:
        """The answer of the instance's broker; True where it places no orders (the order is refused anyway)."""
        try:
            return self.broker_for(instance_id).can_short(instance_id, symbol)
        except OrderBlocked:
            return True

    def min_amount(self, symbol: str) -> float:
        """The exchange's minimum when trading live, else the paper broker's."""
        return (self.exchange or self.paper).min_amount(symbol)

    def set_capital_cap(self, instance_id: str, capital: float) -> None:
        """Tell every broker the instance's capital at its current stage."""
        for b in self.brokers:
            b.set_capital_cap(instance_id, capital)

    def reconcile(self) -> dict[str, Any]:
        """Reconcile the exchange account (paper has nothing to reconcile)."""
        if self.exchange is None:
            return {"mode": self.mode, "skipped": "no exchange broker (paper engine)"}
        return self.exchange.reconcile()

    def apply_funding(self) -> int:
        """Book funding on every venue."""
        return sum(int(b.apply_funding() or 0) for b in self.brokers)
