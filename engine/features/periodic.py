"""Statistics of slow series (funding every 8h, daily feeds) carried on fast bars, one observation per period.

A 1m panel repeats one funding print 480 times; a z-score over bars would mostly measure how long ago the last print
was. Here each calendar period contributes one observation: its last value once the period is complete, and for the
current period the bar's own value. So the statistic at bar t uses the current value (fresh as soon as it is
published) plus the last `window - 1` completed periods - all known at t, and unchanged when the history is cut.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _period_keys(series: pd.Series, period: str) -> np.ndarray:
    if not isinstance(series.index, pd.DatetimeIndex):
        raise ValueError("series: needs a DatetimeIndex for per-period statistics")
    if not series.index.is_monotonic_increasing:
        raise ValueError("series: index must be sorted ascending for per-period statistics")
    step = pd.Timedelta(period).value
    if step <= 0:
        raise ValueError(f"period: must be positive, got {period!r}")
    return series.index.as_unit("ns").asi8 // step


def _completed_periods(values: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bar: the position of its period among the periods seen, and each period's last (forward-filled) value."""
    filled = pd.Series(values).ffill().to_numpy()
    new = np.ones(len(keys), dtype=bool)
    new[1:] = keys[1:] != keys[:-1]
    period_pos = np.cumsum(new) - 1
    last_of_period = np.r_[new[1:], True]
    return period_pos, filled[last_of_period]


def period_moments(series: pd.Series, window: int, period: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bar: mean, sample std and count over (current value + last window-1 completed period values)."""
    if window < 2:
        raise ValueError(f"window: must be >= 2, got {window}")
    x = series.to_numpy(dtype="float64")
    keys = _period_keys(series, period)
    if len(x) == 0:
        empty = np.array([], dtype="float64")
        return empty, empty, empty
    pos, period_vals = _completed_periods(x, keys)
    finite = np.isfinite(period_vals)
    ref = float(period_vals[finite][0]) if finite.any() else 0.0  # centre before summing: less cancellation
    v = np.where(finite, period_vals - ref, 0.0)
    c0 = np.r_[0.0, np.cumsum(finite.astype("float64"))]
    c1 = np.r_[0.0, np.cumsum(v)]
    c2 = np.r_[0.0, np.cumsum(v * v)]
    hi = pos  # completed periods strictly before the bar's own: indexes [lo, hi)
    lo = np.maximum(0, pos - (window - 1))
    k = c0[hi] - c0[lo]
    s1 = c1[hi] - c1[lo]
    s2 = c2[hi] - c2[lo]
    cur = np.isfinite(x)
    xc = np.where(cur, x - ref, 0.0)
    n = k + cur
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (s1 + xc) / n
        var = (s2 + xc * xc - n * mean * mean) / (n - 1)
    std = np.sqrt(np.clip(var, 0.0, None))
    return mean + ref, std, n


def per_period_zscore(series: pd.Series, window: int, period: str, min_periods: int | None = None) -> pd.Series:
    """(x_t - mean) / std over the current value and the last window-1 completed periods; NaN where x_t is NaN."""
    mean, std, n = period_moments(series, window, period)
    need = max(2, window // 2) if min_periods is None else min_periods
    x = series.to_numpy(dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where((n >= need) & (std > 1e-12 * np.maximum(1.0, np.abs(mean))), (x - mean) / std, np.nan)
    return pd.Series(z, index=series.index)


def per_period_mean(series: pd.Series, window: int, period: str, min_periods: int = 2) -> pd.Series:
    """Mean over the current value and the last window-1 completed periods; NaN where x_t is NaN."""
    mean, _, n = period_moments(series, window, period)
    out = np.where((n >= min_periods) & np.isfinite(series.to_numpy(dtype="float64")), mean, np.nan)
    return pd.Series(out, index=series.index)


def per_period_change(series: pd.Series, period: str) -> pd.Series:
    """x_t minus the last value of the previous completed period (NaN in the first period)."""
    x = series.to_numpy(dtype="float64")
    keys = _period_keys(series, period)
    if len(x) == 0:
        return pd.Series(x, index=series.index)
    pos, period_vals = _completed_periods(x, keys)
    prev = np.where(pos > 0, period_vals[np.clip(pos - 1, 0, None)], np.nan)
    return pd.Series(x - prev, index=series.index)
