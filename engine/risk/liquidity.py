"""Liquidity readings: quoted spread and depth near the mid from book snapshots, and Amihud illiquidity from bars.

These feed sizing (thin books mean smaller trades), the emergency trigger (spread/depth collapse) and the
meta-model's microstructure features.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd


def _levels(book: Mapping[str, Any], side: str) -> np.ndarray:
    raw = book.get(side)
    if raw is None:
        raise ValueError(f"order_book: missing {side!r} (ccxt shape: {{'bids': [[price, amount], ...], ...}})")
    arr = np.asarray([lvl[:2] for lvl in raw], dtype=float).reshape(-1, 2)
    if len(arr) and ((arr[:, 0] <= 0).any() or (arr[:, 1] < 0).any()):
        raise ValueError(f"order_book: {side} has a non-positive price or negative amount")
    return arr


def book_liquidity(order_book: Mapping[str, Any], depth_bps: float) -> tuple[float, float, float]:
    """(spread in bps of mid, bid depth, ask depth) where depth is quote notional within `depth_bps` of the mid."""
    if depth_bps <= 0:
        raise ValueError(f"depth_bps: must be > 0, got {depth_bps}")
    bids, asks = _levels(order_book, "bids"), _levels(order_book, "asks")
    if not len(bids) or not len(asks):
        raise ValueError("order_book: needs at least one bid and one ask")
    best_bid, best_ask = bids[:, 0].max(), asks[:, 0].min()
    if best_bid >= best_ask:
        raise ValueError(f"order_book: crossed book (bid {best_bid} >= ask {best_ask})")
    mid = 0.5 * (best_bid + best_ask)
    spread_bps = (best_ask - best_bid) / mid * 1e4
    lo, hi = mid * (1 - depth_bps / 1e4), mid * (1 + depth_bps / 1e4)
    bid_in = bids[bids[:, 0] >= lo]
    ask_in = asks[asks[:, 0] <= hi]
    return float(spread_bps), float((bid_in[:, 0] * bid_in[:, 1]).sum()), float((ask_in[:, 0] * ask_in[:, 1]).sum())


def amihud(bars: pd.DataFrame, window: int) -> pd.Series:
    """Amihud illiquidity: rolling mean of |return| per unit of quote volume (close * volume), scaled by 1e6."""
    for col in ("close", "volume"):
        if col not in bars:
            raise ValueError(f"bars: missing column {col!r}")
    if window < 1:
        raise ValueError(f"window: must be >= 1, got {window}")
    ret = bars["close"].astype(float).pct_change().abs()
    dollar = (bars["close"] * bars["volume"]).astype(float).replace(0.0, np.nan)
    ratio = (ret / dollar) * 1e6
    return ratio.rolling(window, min_periods=max(1, window // 2)).mean().rename("amihud")


def depth_ratio(depth_history: Sequence[float] | pd.Series, window: int = 100) -> float:
    """Latest depth over the median of the previous `window` readings (collapse when well below 1); NaN if unknown."""
    vals = np.asarray(depth_history, dtype=float)
    if len(vals) < 2:
        return float("nan")
    past = vals[-window - 1:-1]
    med = float(np.nanmedian(past)) if np.isfinite(past).any() else float("nan")
    return float(vals[-1] / med) if med > 0 else float("nan")
