"""Per-period statistics of slow series on fast bars: one observation per period, current value fresh."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.features.periodic import per_period_change, per_period_mean, per_period_zscore


def _hourly(values_per_day: list[list[float]]) -> pd.Series:
    flat = [v for day in values_per_day for v in day]
    idx = pd.date_range("2024-01-01", periods=len(flat), freq="1h", tz="UTC")
    return pd.Series(flat, index=idx)


def test_zscore_uses_completed_days_plus_current_value() -> None:
    days = [[1.0] * 24, [2.0] * 24, [4.0] * 24, [3.0] * 10 + [9.0] * 14]
    s = _hourly(days)
    z = per_period_zscore(s, window=3, period="1D", min_periods=2)
    # bar 3*24+5 (day 4, value 3.0): window = completed days 2, 3 (last values 2, 4) + current 3
    w = np.array([2.0, 4.0, 3.0])
    assert z.iloc[3 * 24 + 5] == pytest.approx((3.0 - w.mean()) / w.std(ddof=1))
    # later the same day the value changed to 9.0: it enters at once, without waiting for the next day
    w = np.array([2.0, 4.0, 9.0])
    assert z.iloc[-1] == pytest.approx((9.0 - w.mean()) / w.std(ddof=1))
    assert np.isnan(z.iloc[0])  # one observation only


def test_mean_change_and_nan_handling() -> None:
    days = [[np.nan] * 24, [1.0] * 24, [-1.0] * 24, [1.0] * 24]
    s = _hourly(days)
    m = per_period_mean(s, window=3, period="1D", min_periods=2)
    assert np.isnan(m.iloc[10]) and np.isnan(m.iloc[30])  # NaN day and the first real day (1 observation)
    assert m.iloc[2 * 24 + 3] == pytest.approx(0.0) and m.iloc[-1] == pytest.approx(1 / 3)
    c = per_period_change(s, "1D")
    assert np.isnan(c.iloc[30]) and c.iloc[2 * 24] == -2.0 and c.iloc[-1] == 2.0


def test_truncation_mid_period_changes_nothing_before_the_cut() -> None:
    rng = np.random.default_rng(0)
    s = pd.Series(np.repeat(rng.normal(size=40), 8) + rng.normal(0, 0.1, 320),
                  index=pd.date_range("2024", periods=320, freq="3h", tz="UTC"))
    full = per_period_zscore(s, 10, "1D")
    for cut in (57, 130, 201):
        pd.testing.assert_series_equal(full.iloc[:cut], per_period_zscore(s.iloc[:cut], 10, "1D"))


def test_bad_input_raises() -> None:
    s = _hourly([[1.0] * 24])
    with pytest.raises(ValueError, match="window"):
        per_period_zscore(s, 1, "1D")
    with pytest.raises(ValueError, match="DatetimeIndex"):
        per_period_zscore(pd.Series([1.0, 2.0]), 3, "1D")
    with pytest.raises(ValueError, match="sorted"):
        per_period_zscore(s.iloc[::-1], 3, "1D")
