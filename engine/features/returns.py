"""Return, momentum and z-score features over bar closes; every value at bar t uses closes up to bar t only."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def _check_horizons(horizons: Sequence[int], name: str = "horizons") -> list[int]:
    out = [int(h) for h in horizons]
    if not out or any(h < 1 for h in out):
        raise ValueError(f"{name}: expected positive bar counts, got {list(horizons)}")
    return out


def log_returns(close: pd.Series | pd.DataFrame, horizon: int = 1) -> pd.Series | pd.DataFrame:
    """log(close_t / close_{t-h}): the h-bar log return ending at bar t."""
    if horizon < 1:
        raise ValueError(f"horizon: must be >= 1, got {horizon}")
    values = np.log(close.astype("float64"))
    return values - values.shift(horizon)


def returns_features(close: pd.Series, horizons: Sequence[int] = (1, 4, 24, 96)) -> pd.DataFrame:
    """Log returns at several horizons, one column ``ret_<h>`` each."""
    return pd.DataFrame({f"ret_{h}": log_returns(close, h) for h in _check_horizons(horizons)}, index=close.index)


def rolling_zscore(series: pd.Series | pd.DataFrame, window: int,
                   min_periods: int | None = None) -> pd.Series | pd.DataFrame:
    """(x_t - mean of the last `window` values) / their standard deviation, including x_t (trailing window)."""
    if window < 2:
        raise ValueError(f"window: must be >= 2, got {window}")
    mp = max(2, window // 2) if min_periods is None else min_periods
    roll = series.rolling(window, min_periods=mp)
    std = roll.std()
    return (series - roll.mean()) / std.where(std > 0)


def zscore_features(close: pd.Series, windows: Sequence[int] = (24, 96, 480)) -> pd.DataFrame:
    """Price z-scores against trailing means: how stretched price is at several horizons (``z_<w>``)."""
    return pd.DataFrame({f"z_{w}": rolling_zscore(close.astype("float64"), w)
                         for w in _check_horizons(windows, "windows")}, index=close.index)


def risk_adjusted_momentum(close: pd.Series | pd.DataFrame, horizon: int,
                           vol_window: int | None = None) -> pd.Series | pd.DataFrame:
    """h-bar log return divided by (per-bar volatility * sqrt(h)): a momentum t-statistic comparable across assets."""
    r1 = log_returns(close, 1)
    vw = vol_window or max(horizon, 20)
    sigma = r1.rolling(vw, min_periods=max(2, vw // 2)).std()
    return log_returns(close, horizon) / (sigma * np.sqrt(horizon)).where(sigma > 0)


def momentum_features(close: pd.Series, horizons: Sequence[int] = (24, 96, 336)) -> pd.DataFrame:
    """Risk-adjusted momentum at several horizons (``mom_<h>``)."""
    return pd.DataFrame({f"mom_{h}": risk_adjusted_momentum(close, h) for h in _check_horizons(horizons)},
                        index=close.index)


def cross_sectional_rank(frame: pd.DataFrame) -> pd.DataFrame:
    """Rank each row across columns into [-1, 1] (-1 weakest, +1 strongest); uses only that row (point-in-time)."""
    n = frame.notna().sum(axis=1)
    ranks = frame.rank(axis=1, method="average")
    scaled = (ranks - 1).div((n - 1).where(n > 1), axis=0) * 2 - 1
    return scaled.where(n > 1)

