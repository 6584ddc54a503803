"""Macro, sentiment and on-chain features, aligned as of publication time (never observation time).

`align_feed_points` places raw feed observations on a bar index (known strictly before each bar's close);
`alt_data_features` turns aligned feed columns into scale-free regime features (trailing z-scores, changes).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from engine.features.bars import bar_close_ms
from engine.features.panel import align_known_before, latest_published
from engine.features.periodic import per_period_change, per_period_zscore

DEFAULT_FEED_COLUMNS = ("risk_index", "fear_greed", "netflow", "exchange_netflow")


def align_feed_points(index: pd.DatetimeIndex, timeframe: str, obs_ts: Sequence[int], published_ts: Sequence[int],
                      values: Sequence[float]) -> pd.Series:
    """One feed series on a bar index: at each bar the newest observation published before the bar closes."""
    obs = np.asarray(obs_ts, dtype="int64")
    pub = np.asarray(published_ts, dtype="int64")
    val = np.asarray(values, dtype="float64")
    if not (len(obs) == len(pub) == len(val)):
        raise ValueError("feed: obs_ts, published_ts and values must have the same length")
    if np.any(pub < obs):
        bad = int(np.argmax(pub < obs))
        raise ValueError(f"feed: published_ts {pub[bad]} precedes observation ts {obs[bad]} (row {bad})")
    known, steps = latest_published(obs, pub, val)
    return pd.Series(align_known_before(bar_close_ms(index, timeframe), known, steps), index=index)


def alt_data_features(frame: pd.DataFrame, columns: Iterable[str] | None = None, window: int = 30,
                      period: str = "1D") -> pd.DataFrame:
    """Per feed column: level, z-score over its last `window` periods (daily by default) and change per period."""
    if window < 2:
        raise ValueError(f"window: must be >= 2, got {window}")
    cols = [c for c in (columns or DEFAULT_FEED_COLUMNS) if c in frame.columns]
    out: dict[str, pd.Series] = {}
    for col in cols:
        series = frame[col].astype("float64")
        z = per_period_zscore(series, window, period)
        delta = per_period_change(series, period)
        out[col] = series
        out[f"{col}_z"] = z
        out[f"{col}_chg"] = delta
    return pd.DataFrame(out, index=frame.index)


def regime_score(frame: pd.DataFrame, column: str, window: int = 30, period: str = "1D") -> pd.Series:
    """The per-period trailing z-score of one aligned feed column, 0 (neutral) where absent or not yet known."""
    if column not in frame.columns:
        return pd.Series(0.0, index=frame.index)
    return per_period_zscore(frame[column].astype("float64"), window, period).fillna(0.0)
