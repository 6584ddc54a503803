"""The Broker protocol shared by PaperBroker and CcxtBroker, and the trading-state gate every order passes."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from engine.execution.orders import OrderBlocked, OrderRequest, position_qty
from engine.risk.trading_state import get_state, order_allowed
from engine.store.db import Store


@runtime_checkable
class Broker(Protocol):
    """Submits, cancels and reports orders; PaperBroker simulates, CcxtBroker trades live."""

    mode: str  # paper | live

    def submit(self, req: OrderRequest) -> dict[str, Any]:
        """Send an order (idempotent by client order id); returns the stored order row."""
        ...

    def cancel(self, client_order_id: str) -> bool:
        """Cancel one open order; True when it is (now) canceled."""
        ...

    def cancel_all(self, instance_id: str | None = None) -> int:
        """Cancel every open order (of one instance); returns how many."""
        ...

    def process(self) -> int:
        """Advance pending orders (paper: match against the tape; live: poll the exchange); returns fills made."""
        ...

    def recover(self) -> dict[str, Any]:
        """Reconcile in-flight orders after a restart; returns what was done."""
        ...

    def mark_price(self, symbol: str) -> float:
        """The current mid price used for valuation."""
        ...


def reduces_exposure(store: Store, req: OrderRequest) -> bool:
    """True when an order only shrinks the instance's position in that symbol (never flips it)."""
    if req.reduce_only:
        return True
    held = position_qty(store, req.instance_id, req.symbol)
    if abs(held) < 1e-12:
        return False
    opposite = (held > 0) == (req.side == "sell")
    return opposite and req.qty <= abs(held) * (1 + 1e-9)


def check_order_allowed(store: Store, req: OrderRequest) -> None:
    """Raise OrderBlocked unless the persisted trading state allows this order now (checked before every order).

    An operator FLATTEN sends reduce-only orders with intent="flatten"; those pass even when HALTED, because the
    emergency stop is HALT + FLATTEN by design (DESIGN.md, trading state).
    """
    state = get_state(store).state
    reduces = reduces_exposure(store, req)
    if req.intent == "flatten" and req.reduce_only and reduces:
        return
    if not order_allowed(state, reduces_exposure=reduces):
        raise OrderBlocked(f"trading state {state.value} blocks {req.side} {req.qty} {req.symbol} "
                           f"({'reducing' if reduces else 'increasing'} exposure) for {req.instance_id}")
