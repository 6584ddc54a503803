"""The account risk budget, checked before each order (the monitors check it on their interval; an order between two
checks must not be the one that breaks it).

An exposure-adding order is refused when, after it, the account's gross or net exposure or its exposure in the
order's symbol (all instances together, as fractions of the latest portfolio equity) would pass the REDUCING
threshold of `[triggers]`, or when today's loss from the equity peak already has. Orders that only reduce exposure
always pass. Held positions are valued at the current mark of their symbol (the router's: the exchange's book when
trading live, else the market source; one read per held symbol per exposure-adding order), not at their entry
prices: a position that doubled since entry is twice the exposure. The order itself is valued at its limit price or
the mark. A mark that cannot be read falls back to the entry price (named in the refusal, never a crash).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

from sqlalchemy import func, select

from engine.clock import floor_ts, now_ms
from engine.store.db import Store
from engine.store.schema import equity_snapshots, positions


def _equity(store: Store, now: int) -> tuple[float | None, float | None]:
    """(latest portfolio equity, today's (UTC) peak of it)."""
    with store.connect() as conn:
        last = conn.execute(select(equity_snapshots.c.equity).where(equity_snapshots.c.scope == "portfolio")
                            .order_by(equity_snapshots.c.id.desc()).limit(1)).scalar()
        peak = conn.execute(select(func.max(equity_snapshots.c.equity)).where(
            equity_snapshots.c.scope == "portfolio", equity_snapshots.c.ts >= floor_ts(now, "1d"))).scalar()
    return (float(last) if last is not None else None), (float(peak) if peak is not None else None)


def budget_breach(store: Store, symbol: str, signed_qty: float, price: float, triggers: Any,
                  now: int | None = None, mark: Callable[[str], float] | None = None) -> str | None:
    """Why an order moving the account by `signed_qty` of `symbol` at `price` breaks the budget, or None.

    Only call it for exposure-adding orders; `triggers` is the `[triggers]` config section; `mark(symbol)` values the
    held positions (without it, or when it fails for a symbol, their entry prices)."""
    equity, peak = _equity(store, now if now is not None else now_ms())
    if not equity or equity <= 0:
        return None  # no equity recorded yet: the sizing caps still hold every order
    if peak and peak > 0 and 1.0 - equity / peak >= triggers.daily_drawdown_reduce:
        return (f"daily loss {1.0 - equity / peak:.2%} of the day's peak is past the budget's "
                f"{triggers.daily_drawdown_reduce:.2%}: only exposure-reducing orders")
    with store.connect() as conn:
        rows = conn.execute(select(positions.c.symbol, positions.c.qty, positions.c.avg_price)
                            .where(positions.c.qty != 0)).all()
    marks: dict[str, float] = {symbol: price}
    at_entry: list[str] = []
    per: dict[str, float] = {}
    for sym, qty, avg in rows:
        if sym not in marks:
            marks[sym] = _mark_or_entry(mark, sym, float(avg), at_entry)
        per[sym] = per.get(sym, 0.0) + float(qty) * marks[sym]
    per[symbol] = per.get(symbol, 0.0) + signed_qty * price
    note = f" (valued at entry, no mark for {', '.join(sorted(set(at_entry)))})" if at_entry else ""
    checks = (("gross exposure", sum(abs(v) for v in per.values()) / equity, triggers.gross_exposure_reduce),
              ("net exposure", abs(sum(per.values())) / equity, triggers.net_exposure_reduce),
              (f"{symbol} exposure", abs(per[symbol]) / equity, triggers.symbol_exposure_reduce))
    for name, value, limit in checks:
        if value > limit:
            return f"{name} would be {value:.2f} x equity after this order, past the budget's {limit:g}{note}"
    return None


def _mark_or_entry(mark: Callable[[str], float] | None, symbol: str, entry: float, at_entry: list[str]) -> float:
    """The current mark of a held symbol; its entry price (and the symbol noted) when there is no mark to read."""
    if mark is not None:
        with contextlib.suppress(Exception):  # a missing quote must not stop the check: the entry price bounds it
            value = float(mark(symbol))
            if value > 0:
                return value
    at_entry.append(symbol)
    return entry


def order_budget_check(store: Store, triggers: Any,
                       mark: Callable[[str], float]) -> Callable[[str, str, float, float | None], str | None]:
    """A `(symbol, side, qty, price) -> reason | None` check for the order path (the router calls it before every
    exposure-adding order)."""
    def check(symbol: str, side: str, qty: float, price: float | None) -> str | None:
        px = price if price else mark(symbol)
        return budget_breach(store, symbol, qty if side == "buy" else -qty, px, triggers, mark=mark)

    return check
