"""The Broker protocol shared by PaperBroker and CcxtBroker, and the trading-state gate every order passes."""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

from engine.execution.orders import OrderBlocked, OrderRequest, load_positions, position_qty
from engine.risk.trading_state import get_state, order_allowed
from engine.store.db import Store


@runtime_checkable
class Broker(Protocol):
    """Submits, cancels and reports orders; PaperBroker simulates, CcxtBroker trades live."""

    mode: str  # paper | live
    venue: str  # paper | exchange: the orders rows this broker owns

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

    def min_amount(self, symbol: str) -> float:
        """The smallest quantity this venue accepts; a holding below it is dust (flat for a flatten)."""
        ...

    def set_capital_cap(self, instance_id: str, capital: float) -> None:
        """The gross notional an instance may hold through this broker (follows its stage)."""
        ...

    def reconcile(self) -> dict[str, Any]:
        """Compare what this broker's venue holds with state.db (paper: nothing to compare)."""
        ...

    def can_short(self, instance_id: str, symbol: str) -> bool:
        """Whether the instance may hold a negative position in `symbol` here (a spot market on an exchange: no)."""
        ...

    def apply_funding(self) -> int:
        """Book funding payments of perpetual positions on this venue; returns how many."""
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
    emergency stop is HALT + FLATTEN by design (DESIGN.md, trading state). Protective stops (intent="protect",
    reduce-only) pass too: a halted desk's open positions stay guarded on the exchange.
    """
    state = get_state(store).state
    reduces = reduces_exposure(store, req)
    if req.intent in ("flatten", "protect") and req.reduce_only and reduces:
        return  # closing (flatten) and guarding (protective stops) a position only ever lowers risk
    if not order_allowed(state, reduces_exposure=reduces):
        raise OrderBlocked(f"trading state {state.value} blocks {req.side} {req.qty} {req.symbol} "
                           f"({'reducing' if reduces else 'increasing'} exposure) for {req.instance_id}")


def check_capital_cap(store: Store, req: OrderRequest, cap: float | None, mark: Callable[[str], float]) -> None:
    """Raise OrderBlocked when an exposure-adding order would take the instance's gross notional past its capital.

    Reduce-only and flatten orders always pass (closing must never be blocked by a cap)."""
    if cap is None or req.intent == "flatten" or req.reduce_only:
        return
    price = req.price or mark(req.symbol)
    gross = sum(abs(p["qty"]) * mark(p["symbol"]) for p in load_positions(store, req.instance_id))
    if gross + req.qty * price > cap * (1 + 1e-9):
        raise OrderBlocked(f"capital cap: {req.instance_id} would hold {gross + req.qty * price:,.2f} > cap "
                           f"{cap:,.2f}")
