"""Carry features from perpetual funding and basis: level, annualised level and trailing z-scores.

The panel already holds `funding_rate` and `basis` aligned to the last value known before each bar's close, so these
are plain trailing transforms and stay point-in-time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.features.periodic import per_period_mean, per_period_zscore
from engine.features.returns import rolling_zscore

FUNDING_PERIODS_PER_YEAR = 3 * 365  # 8-hourly funding


def funding_features(frame: pd.DataFrame, window: int = 90, period: str = "8h") -> pd.DataFrame:
    """Funding level, annualised carry, z-score over the last `window` funding periods and sign persistence.

    NaN columns when the frame has no funding_rate.
    """
    if window < 2:
        raise ValueError(f"window: must be >= 2, got {window}")
    if "funding_rate" not in frame.columns:
        nan = pd.Series(np.nan, index=frame.index)
        return pd.DataFrame({"funding": nan, "funding_ann": nan, f"funding_z_{window}": nan,
                             "funding_persist": nan}, index=frame.index)
    rate = frame["funding_rate"].astype("float64")
    # Statistics over funding periods, not bars (a 1m panel repeats one print 480 times).
    z = per_period_zscore(rate, window, period)
    persist = per_period_mean(np.sign(rate), min(window, 21), period, min_periods=3)
    return pd.DataFrame({"funding": rate, "funding_ann": rate * FUNDING_PERIODS_PER_YEAR,
                         f"funding_z_{window}": z, "funding_persist": persist.where(rate.notna())},
                        index=frame.index)


def basis_features(frame: pd.DataFrame, window: int = 168) -> pd.DataFrame:
    """Perp-spot basis level and its trailing z-score; NaN columns when no basis exists."""
    if window < 2:
        raise ValueError(f"window: must be >= 2, got {window}")
    if "basis" not in frame.columns:
        nan = pd.Series(np.nan, index=frame.index)
        return pd.DataFrame({"basis": nan, f"basis_z_{window}": nan}, index=frame.index)
    basis = frame["basis"].astype("float64")
    return pd.DataFrame({"basis": basis, f"basis_z_{window}": rolling_zscore(basis, window)}, index=frame.index)
