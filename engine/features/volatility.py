"""Rolling volatility estimators per bar: close-to-close, Parkinson, Garman-Klass and Yang-Zhang.

All return the per-bar standard deviation of log returns over a trailing window (multiply by sqrt(bars per year) to
annualise). Formulas follow Yang & Zhang (2000); each value at bar t uses bars t-window+1..t only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_LN2 = np.log(2.0)


def _check(frame: pd.DataFrame, window: int, cols: tuple[str, ...]) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"frame: missing columns {missing}")
    if window < 2:
        raise ValueError(f"window: must be >= 2, got {window}")


def close_to_close(close: pd.Series, window: int = 24) -> pd.Series:
    """Sample standard deviation of 1-bar log returns over the window (ddof=1)."""
    if window < 2:
        raise ValueError(f"window: must be >= 2, got {window}")
    r = np.log(close.astype("float64")).diff()
    return r.rolling(window, min_periods=window).std(ddof=1).rename("vol_cc")


def parkinson(frame: pd.DataFrame, window: int = 24) -> pd.Series:
    """Parkinson (1980) range estimator: sqrt(mean(ln(H/L)^2) / (4 ln 2))."""
    _check(frame, window, ("high", "low"))
    hl = np.log(frame["high"] / frame["low"]) ** 2
    return np.sqrt(hl.rolling(window, min_periods=window).mean() / (4 * _LN2)).rename("vol_parkinson")


def garman_klass(frame: pd.DataFrame, window: int = 24) -> pd.Series:
    """Garman-Klass (1980): sqrt(mean(0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2))."""
    _check(frame, window, ("open", "high", "low", "close"))
    hl = np.log(frame["high"] / frame["low"]) ** 2
    co = np.log(frame["close"] / frame["open"]) ** 2
    var = (0.5 * hl - (2 * _LN2 - 1) * co).rolling(window, min_periods=window).mean()
    return np.sqrt(var.clip(lower=0)).rename("vol_gk")


def yang_zhang(frame: pd.DataFrame, window: int = 24) -> pd.Series:
    """Yang-Zhang (2000): overnight (open vs previous close) + k * open-to-close + (1-k) * Rogers-Satchell variance.

    For 24/7 crypto the "overnight" jump is the gap between a bar's open and the previous close, usually tiny.
    """
    _check(frame, window, ("open", "high", "low", "close"))
    o, h, l, c = (np.log(frame[k].astype("float64")) for k in ("open", "high", "low", "close"))
    overnight = o - c.shift(1)
    open_close = c - o
    rs = (h - c) * (h - o) + (l - c) * (l - o)
    n = window
    k = 0.34 / (1.34 + (n + 1) / (n - 1))
    var_o = overnight.rolling(n, min_periods=n).var(ddof=1)
    var_c = open_close.rolling(n, min_periods=n).var(ddof=1)
    var_rs = rs.rolling(n, min_periods=n).mean()
    return np.sqrt((var_o + k * var_c + (1 - k) * var_rs).clip(lower=0)).rename("vol_yz")


def ewm_volatility(close: pd.Series | pd.DataFrame, span: int = 100) -> pd.Series | pd.DataFrame:
    """Exponentially weighted std of 1-bar log returns (the triple-barrier width input); trailing only."""
    if span < 2:
        raise ValueError(f"span: must be >= 2, got {span}")
    r = np.log(close.astype("float64")).diff()
    return r.ewm(span=span, min_periods=max(2, span // 4)).std()


def volatility_features(frame: pd.DataFrame, window: int = 24) -> pd.DataFrame:
    """All four estimators side by side, plus a vol-of-vol ratio (short cc vol / long cc vol)."""
    cc = close_to_close(frame["close"], window)
    long_cc = close_to_close(frame["close"], window * 8)
    return pd.DataFrame({
        f"vol_cc_{window}": cc,
        f"vol_parkinson_{window}": parkinson(frame, window),
        f"vol_gk_{window}": garman_klass(frame, window),
        f"vol_yz_{window}": yang_zhang(frame, window),
        f"vol_ratio_{window}": cc / long_cc.where(long_cc > 0),
    }, index=frame.index)
