"""Vectorised numpy kernels shared by the built-in strategies (bars x symbols arrays, NaN = no data).

Pandas' per-call overhead dominates on the sizes the optimiser uses (tens of thousands of bars, a few symbols), so
the strategies compute on plain arrays; every kernel is trailing-only, hence point-in-time. The windows, EWMs and
ranks run in the ahead-of-time compiled helpers of engine.features.fast (equal to pandas' window algorithms).
"""

from __future__ import annotations

import numpy as np

from engine.features import fast


def shift(a: np.ndarray, n: int) -> np.ndarray:
    """a shifted down by n rows (row t holds row t-n), NaN-filled at the top."""
    out = np.full_like(a, np.nan, dtype="float64")
    if n < len(a):
        out[n:] = a[: len(a) - n]
    return out


def rolling(a: np.ndarray, window: int, min_periods: int, how: str) -> np.ndarray:
    """Trailing rolling `std` (ddof=1), `mean` or `sum` over rows (pandas' `rolling(window, min_periods)` values)."""
    if how == "std":
        return fast.rolling_std(a, window, min_periods)
    if how == "mean":
        return fast.rolling_mean(a, window, min_periods)
    if how == "sum":
        return fast.rolling_sum(a, window, min_periods)
    raise ValueError(f"how: expected std, mean or sum, got {how!r}")


def ewm_mean(a: np.ndarray, span: float | None = None, alpha: float | None = None,
             min_periods: int = 0) -> np.ndarray:
    """Exponentially weighted mean over rows (adjust=True, like pandas' default)."""
    return fast.ewm_mean(a, span=span, alpha=alpha, min_periods=min_periods)


def positive_or_nan(a: np.ndarray) -> np.ndarray:
    """a where a > 0, NaN elsewhere (safe denominators)."""
    with np.errstate(invalid="ignore"):
        return np.where(a > 0, a, np.nan)


def row_rank(a: np.ndarray) -> np.ndarray:
    """Average rank within each row scaled to [-1, 1]; NaN entries stay NaN and rows with < 2 values are NaN."""
    rank = fast.rank_across(a) - 1.0  # 0-based average rank among non-NaN values
    n = np.isfinite(a).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(n > 1, rank / (n - 1) * 2.0 - 1.0, np.nan)
    return np.where(np.isfinite(a), scaled, np.nan)


def ffill(a: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs down each column."""
    idx = np.where(np.isnan(a), 0, np.arange(len(a))[:, None])
    np.maximum.accumulate(idx, axis=0, out=idx)
    out = a[idx, np.arange(a.shape[1])[None, :]]
    return out


def latch(score: np.ndarray, entry: float, exit_: float) -> np.ndarray:
    """Hysteresis sides: +1 from score >= entry until score < exit_, -1 from <= -entry until > -exit_; NaN = flat."""
    if not 0.0 <= exit_ <= entry:
        raise ValueError(f"hysteresis: need 0 <= exit ({exit_}) <= entry ({entry})")
    nan = np.isnan(score)
    with np.errstate(invalid="ignore"):
        long_state = np.where(score >= entry, 1.0, np.where((score < exit_) | nan, 0.0, np.nan))
        short_state = np.where(score <= -entry, 1.0, np.where((score > -exit_) | nan, 0.0, np.nan))
    longs = np.nan_to_num(ffill(long_state), nan=0.0)
    shorts = np.nan_to_num(ffill(short_state), nan=0.0)
    return (longs - shorts).astype("int8")


def warmup_mask(close: np.ndarray, warmup: int) -> np.ndarray:
    """True where a symbol has at least `warmup` bars of data up to and including that row."""
    return np.cumsum(np.isfinite(close), axis=0) >= warmup


def hold_at_entry(size: np.ndarray, sides: np.ndarray) -> np.ndarray:
    """Signed weights side x size with the size frozen at each run's entry bar (no rebalancing on drift).

    A run is a stretch of one non-zero side per column; the size is read at its first bar only (point in time)."""
    s = np.asarray(sides, dtype="float64")
    prev = np.vstack([np.zeros((1, s.shape[1])), s[:-1]])
    change = s != prev
    held = ffill(np.where(change, np.where(s != 0, size, 0.0), np.nan))
    return np.nan_to_num(s * held, nan=0.0)
