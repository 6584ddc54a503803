"""The backtest kernel's taker fill price outside the kernel: paper stops and the drift monitor's twins.

The kernel (engine.backtest.kernel._fill) fills a taker order of |q| units at a reference price moved against the
order by half spread + square-root impact, impact = impact_coef * sigma_t * sqrt(|q| / vol_ref_t), where sigma_t is
the EWM (span SIGMA_SPAN) standard deviation of simple close-to-close returns known before bar t and vol_ref_t is
bar t-1's volume (engine.backtest.costs.market_arrays). A take-profit is a resting limit: maker, at its level.
Paper fills a protective stop through `taker_price` with the inputs read from stored bars by `impact_inputs`, so the
paper fill and the backtest fill of the same stop on the same bar are the same price.
"""

from __future__ import annotations

import math

from sqlalchemy import select

from engine.backtest.costs import SIGMA_SPAN
from engine.store.db import Store
from engine.store.schema import candles


def taker_price(ref_px: float, side: float, qty: float, half_spread: float, impact_coef: float, sigma: float,
                vol_ref: float) -> float:
    """`ref_px` moved against a buy (side > 0) or sell (side < 0) of `qty` units by half spread + sqrt impact."""
    imp = 0.0
    if impact_coef > 0.0 and vol_ref > 0.0 and sigma > 0.0:
        imp = impact_coef * sigma * math.sqrt(abs(qty) / vol_ref)
    return ref_px * (1.0 + (1.0 if side > 0 else -1.0) * (half_spread + imp))


def stored_sigma(store: Store, exchange: str, symbol: str, timeframe: str, bar_ts: int) -> float:
    """The kernel's sigma for bar `bar_ts`: EWM std of simple returns of the stored closes before it (0 when fewer
    than 3 closes)."""
    import pandas as pd

    with store.connect() as conn:
        closes = [r[0] for r in conn.execute(select(candles.c.close).where(
            candles.c.exchange == exchange, candles.c.symbol == symbol, candles.c.timeframe == timeframe,
            candles.c.ts < bar_ts).order_by(candles.c.ts.desc()).limit(4 * SIGMA_SPAN))][::-1]
    if len(closes) < 3:
        return 0.0
    sig = pd.Series(closes).pct_change().ewm(span=SIGMA_SPAN, min_periods=2).std().iloc[-1]
    return float(sig) if sig == sig else 0.0


def impact_inputs(store: Store, exchange: str, symbol: str, timeframe: str, bar_ts: int) -> tuple[float, float]:
    """(sigma, vol_ref) the kernel uses for a fill in bar `bar_ts`: `stored_sigma` and the previous bar's volume."""
    with store.connect() as conn:
        vol = conn.execute(select(candles.c.volume).where(
            candles.c.exchange == exchange, candles.c.symbol == symbol, candles.c.timeframe == timeframe,
            candles.c.ts < bar_ts).order_by(candles.c.ts.desc()).limit(1)).scalar()
    return stored_sigma(store, exchange, symbol, timeframe, bar_ts), float(vol or 0.0)
