"""Flatten until flat: the emergency stop's second half, on every venue, through the same risk path as every order.

One round: cancel every resting order (protective stops and take-profits last, so a position is never naked while
other orders are still being pulled), re-read orders, balances and positions from the venue (for the exchange:
`reconcile`, which adopts holdings state.db did not explain, so they are closed too), then close each remaining
position with a reduce-only market order. Rounds repeat until nothing is held and nothing rests, or the retry budget
ends; whatever is left is named in a critical alert and the audit log. Orders carry intent="flatten", so they pass a
HALTED desk's gate (broker.check_order_allowed) but nothing else about them is special.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from engine.clock import now_ms
from engine.execution.broker import Broker
from engine.execution.orders import (EPS, OrderBlocked, OrderRequest, client_order_id, open_orders,
                                     positions_on_venue)
from engine.store.db import Store
from engine.store.ops import audit, raise_alert

log = logging.getLogger("quantdesk.flatten")
PROTECTIVE_PREFIX = "protect"  # orders.reason of exchange-side stops / take-profits (engine.execution.protection)


def is_protective(order: dict[str, Any]) -> bool:
    """True for a protective stop or take-profit order (canceled last by a flatten)."""
    return str(order.get("reason") or "").startswith(PROTECTIVE_PREFIX)


@dataclass
class FlattenReport:
    """What a flatten did and what it could not do."""

    rounds: int = 0
    canceled: int = 0
    canceled_ids: list[str] = field(default_factory=list)  # in the order they were pulled (protective last)
    close_orders: int = 0
    errors: list[str] = field(default_factory=list)
    leftover_positions: list[dict[str, Any]] = field(default_factory=list)
    leftover_orders: list[dict[str, Any]] = field(default_factory=list)

    @property
    def flat(self) -> bool:
        """True when nothing is held and nothing rests on any venue flattened."""
        return not self.leftover_positions and not self.leftover_orders

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary (the command result and the audit details)."""
        return {"flat": self.flat, "rounds": self.rounds, "canceled": self.canceled, "closed": self.close_orders,
                "positions_left": len(self.leftover_positions), "orders_left": len(self.leftover_orders),
                "leftover_positions": [{k: p[k] for k in ("instance_id", "symbol", "qty")}
                                       for p in self.leftover_positions],
                "leftover_orders": [o["client_order_id"] for o in self.leftover_orders],
                "errors": self.errors[-10:]}


def _cancel_resting(broker: Broker, store: Store, instance_id: str | None, report: FlattenReport) -> None:
    """Cancel the venue's open orders, protective ones last; failures are recorded and the rest still canceled."""
    resting = open_orders(store, instance_id, broker.venue)
    for order in sorted(resting, key=is_protective):
        try:
            if broker.cancel(order["client_order_id"]):
                report.canceled += 1
                report.canceled_ids.append(order["client_order_id"])
        except Exception as exc:  # noqa: BLE001 - keep pulling the others; the next round retries this one
            report.errors.append(f"cancel {order['client_order_id']}: {type(exc).__name__}: {exc}"[:300])


def _reread(broker: Broker, report: FlattenReport) -> None:
    """Bring state.db in line with the venue: fills that happened, holdings it did not know about."""
    for step in (broker.process, broker.reconcile):
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - an unreachable venue is retried next round
            report.errors.append(f"{broker.venue} {step.__name__}: {type(exc).__name__}: {exc}"[:300])


def _close(broker: Broker, store: Store, instance_id: str | None, stamp: int, rnd: int,
           report: FlattenReport) -> None:
    """One reduce-only market order per held (instance, symbol) on this venue."""
    for p in _held(broker, store, instance_id):
        req = OrderRequest(instance_id=p["instance_id"], symbol=p["symbol"], side="sell" if p["qty"] > 0 else "buy",
                           qty=abs(p["qty"]), client_order_id=client_order_id(p["instance_id"], p["symbol"], stamp,
                                                                              f"flatten{rnd}"),
                           reduce_only=True, reason="operator flatten", intent="flatten")
        try:
            broker.submit(req)
            report.close_orders += 1
        except (OrderBlocked, Exception) as exc:  # noqa: BLE001 - a refused close is a leftover, named below
            report.errors.append(f"close {p['instance_id']}/{p['symbol']}: {type(exc).__name__}: {exc}"[:300])


def flatten_until_flat(store: Store, brokers: Iterable[Broker], *, instance_id: str | None = None,
                       max_rounds: int = 5, round_wait_s: float = 0.5,
                       sleep: Callable[[float], None] | None = None, source: str = "engine",
                       user: str = "engine") -> FlattenReport:
    """Cancel, re-read and close on every broker's venue until flat or `max_rounds` rounds; leftovers alerted."""
    import time

    wait = sleep or time.sleep
    brokers = list(brokers)
    protectors = [p for p in (getattr(b, "protector", None) for b in brokers) if p is not None]
    for p in protectors:  # no protective order re-placed while the flatten pulls them and closes the positions
        p.paused += 1
    try:
        return _flatten_rounds(store, brokers, instance_id, max_rounds, round_wait_s, wait, source, user)
    finally:
        for p in protectors:
            p.paused -= 1


def _flatten_rounds(store: Store, brokers: list[Broker], instance_id: str | None, max_rounds: int,
                    round_wait_s: float, wait: Callable[[float], None], source: str, user: str) -> FlattenReport:
    """The cancel / re-read / close rounds of `flatten_until_flat`."""
    report = FlattenReport()
    stamp = now_ms()  # one flatten = one family of client ids, so a re-run after a crash sends new closes
    for rnd in range(max(1, max_rounds)):
        report.rounds = rnd + 1
        for b in brokers:
            _cancel_resting(b, store, instance_id, report)
            _reread(b, report)
        if _is_flat(store, brokers, instance_id):
            break
        for b in brokers:
            _close(b, store, instance_id, stamp, rnd, report)
            _reread(b, report)
        if _is_flat(store, brokers, instance_id):
            break
        if rnd + 1 < max_rounds:
            wait(round_wait_s)
    report.leftover_positions = [p for b in brokers for p in _held(b, store, instance_id)]
    report.leftover_orders = [o for b in brokers for o in open_orders(store, instance_id, b.venue)]
    details = report.summary()
    audit(store, source, "flatten.done" if report.flat else "flatten.incomplete", details, user=user)
    if not report.flat:
        names = ", ".join(f"{p['instance_id']}/{p['symbol']} {p['qty']:+.8g}" for p in report.leftover_positions)
        orders_left = ", ".join(o["client_order_id"] for o in report.leftover_orders)
        raise_alert(store, "critical", "flatten.leftover", f"flatten not flat after {report.rounds} rounds: "
                    f"positions [{names}] orders [{orders_left}]"[:900], details)
    log.info("flatten: %s", details)
    return report


def _held(broker: Broker, store: Store, instance_id: str | None) -> list[dict[str, Any]]:
    """Positions on the broker's venue (of one instance) that are more than dust (below the venue's minimum amount
    nothing can be sent: a spot account keeps such crumbs, and so does its ledger)."""
    return [p for p in positions_on_venue(store, broker.venue)
            if (instance_id is None or p["instance_id"] == instance_id)
            and abs(p["qty"]) > max(EPS, broker.min_amount(p["symbol"]) * (1 - 1e-9))]


def _is_flat(store: Store, brokers: list[Broker], instance_id: str | None) -> bool:
    return not any(open_orders(store, instance_id, b.venue) or _held(b, store, instance_id) for b in brokers)


def settle_venue(store: Store, brokers: Iterable[Broker], instance_id: str, venue_now: str | None, *,
                 max_rounds: int = 5, round_wait_s: float = 0.5) -> str:
    """Before an instance trades on a new venue (a promotion from paper, a demotion from live-small) or nowhere (a
    retired challenger, venue_now None), cancel its resting orders and close what it still holds on the old one, so
    its sub-ledger never mixes paper and account positions and no order of it fills later; returns what was done
    ('' when it had nothing elsewhere)."""
    for old in brokers:
        if old.venue == venue_now:
            continue
        holds = any(p["instance_id"] == instance_id for p in positions_on_venue(store, old.venue))
        if not holds and not open_orders(store, instance_id, venue=old.venue):
            continue
        rep = flatten_until_flat(store, [old], instance_id=instance_id, max_rounds=max_rounds,
                                 round_wait_s=round_wait_s)
        return f"closed {instance_id}'s {old.venue} orders and positions before trading on {venue_now}: flat={rep.flat}"
    return ""
