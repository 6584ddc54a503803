"""Readings the emergency trigger needs that are not market prices: depth history, funding, on-chain inflow z-score,
drawdown from the day's peak, and reconciliation mismatch. Each returns None when it cannot be known, so the trigger
skips that rule rather than acting on a guess."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from sqlalchemy import func, select

from engine.clock import floor_ts
from engine.execution.ccxt_broker import EXTERNAL_INSTANCE
from engine.execution.orders import check_positions_match_fills
from engine.store.engines import portfolio_scope, scoped
from engine.store.db import Store
from engine.store.schema import equity_snapshots, feed_values, positions

NETFLOW_LOOKBACK = 24 * 30  # hourly on-chain readings: about a month of history for the z-score
MIN_NETFLOW_POINTS = 48


class DepthHistory:
    """Rolling book depth per symbol, to tell a depth collapse (current / rolling median) from a thin market."""

    def __init__(self, depth_bps: float, window: int = 100) -> None:
        self.depth_bps = depth_bps
        self.window = window
        self._hist: dict[str, deque[float]] = {}

    def ratio(self, symbol: str, book: dict[str, Any]) -> float | None:
        """Record the book's depth within depth_bps (the thinner side) and return it over its rolling median."""
        from engine.risk.liquidity import book_liquidity, depth_ratio

        _spread, bid_depth, ask_depth = book_liquidity(book, self.depth_bps)
        hist = self._hist.setdefault(symbol, deque(maxlen=self.window + 1))
        hist.append(min(bid_depth, ask_depth))
        if len(hist) < 10:
            return None  # too little history for a median that means anything
        value = depth_ratio(list(hist), self.window)
        return value if math.isfinite(value) else None


def perp_funding(source: Any, symbol: str) -> float | None:
    """The current funding rate of the symbol's USDT perpetual, if the source lists one."""
    from engine.data.symbols import perp_symbol

    perp = perp_symbol(symbol)
    try:
        source.market(perp)
    except Exception:  # noqa: BLE001 - no perpetual listed for this symbol: funding is not a reading here
        return None
    rate = source.fetch_funding_rate(perp).get("fundingRate")
    return float(rate) if rate is not None else None


def netflow_z(store: Store, symbol: str, now: int) -> float | None:
    """z-score of the latest published exchange net inflow of the symbol's base asset against its recent history."""
    series = f"{symbol.split('/')[0]}_netflow"
    with store.connect() as conn:
        vals = [r[0] for r in conn.execute(
            select(feed_values.c.value).where(feed_values.c.series == series, feed_values.c.published_ts <= now)
            .order_by(feed_values.c.ts.desc()).limit(NETFLOW_LOOKBACK))]
    if len(vals) < MIN_NETFLOW_POINTS:
        return None
    latest, past = vals[0], vals[1:]
    mean = sum(past) / len(past)
    sd = math.sqrt(sum((v - mean) ** 2 for v in past) / (len(past) - 1))
    return (latest - mean) / sd if sd > 0 else None


def daily_drawdown(store: Store, now: int) -> float | None:
    """Fraction of portfolio equity lost from today's (UTC) peak."""
    day = floor_ts(now, "1d")
    with store.connect() as conn:
        peak = conn.execute(select(func.max(equity_snapshots.c.equity)).where(
            equity_snapshots.c.scope == portfolio_scope(), equity_snapshots.c.ts >= day)).scalar()
        last = conn.execute(select(equity_snapshots.c.equity).where(equity_snapshots.c.scope == portfolio_scope())
                            .order_by(equity_snapshots.c.id.desc()).limit(1)).scalar()
    if not peak or last is None:
        return None
    return max(0.0, 1.0 - last / peak)


def recon_mismatch(store: Store) -> float:
    """Positions state.db cannot explain: stored positions that differ from their fills (count) plus holdings found on
    the exchange and adopted as external (base units). Zero when the books agree."""
    with store.connect() as conn:
        external = conn.execute(select(func.coalesce(func.sum(func.abs(positions.c.qty)), 0.0)).where(
            positions.c.instance_id == EXTERNAL_INSTANCE)).scalar()
    return float(len(check_positions_match_fills(store))) + float(external or 0.0)


def exposure_budget(store: Store, marks: dict[str, float]) -> tuple[float | None, float | None, dict[str, float]]:
    """(gross, net, per-symbol) exposure of every instance together as fractions of the latest portfolio equity,
    valued at `marks` (a symbol without a mark is valued at its entry price); (None, None, {}) without equity yet."""
    with store.connect() as conn:
        equity = conn.execute(select(equity_snapshots.c.equity).where(equity_snapshots.c.scope == portfolio_scope())
                              .order_by(equity_snapshots.c.id.desc()).limit(1)).scalar()
        rows = conn.execute(scoped(select(positions.c.symbol, positions.c.qty, positions.c.avg_price)
                                   .where(positions.c.qty != 0), positions.c.instance_id)).all()  # own book only
    if not equity or equity <= 0:
        return None, None, {}
    per: dict[str, float] = {}
    for symbol, qty, avg in rows:
        per[symbol] = per.get(symbol, 0.0) + float(qty) * marks.get(symbol, float(avg))
    gross = sum(abs(v) for v in per.values()) / equity
    net = sum(per.values()) / equity
    return gross, net, {s: abs(v) / equity for s, v in per.items()}
