"""Symbols whose bars do not line up (a missing minute in one of them) must not poison the portfolio's equity.

Reproduction of the weekly re-optimisation failure "equity: contains NaN or infinite values" in long engine runs:
the engine's stored 1m bars had a few missing minutes per symbol, so the panel clock (the union of the symbols' bars)
had rows where one symbol has no bar. When another symbol's target changed on such a row while the first symbol was
held, the kernel marked the held position at that row's fill price (NaN: no bar), sized the new order on a NaN
equity, and every later equity value was NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.backtest.engine import simulate_targets
from engine.config import BacktestConfig


def _bars(index: pd.DatetimeIndex, start: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(rng.normal(0, 0.001, len(index))))
    open_ = np.r_[start, close[:-1]]
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.0005,
                         "low": np.minimum(open_, close) * 0.9995, "close": close,
                         "volume": rng.uniform(1, 5, len(index))}, index=index)


def test_a_missing_bar_of_a_held_symbol_does_not_make_equity_nan_when_another_symbol_trades() -> None:
    idx = pd.date_range("2026-01-01", periods=60, freq="1min", tz="UTC")
    a = _bars(idx, 100.0, 1)
    b = _bars(idx, 50.0, 2).drop(idx[30])  # B has no bar at minute 30 (the engine's store had such holes)
    targets = pd.DataFrame(0.0, index=idx, columns=["A/USDT", "B/USDT"])
    targets.loc[idx[5]:, "B/USDT"] = 0.4  # B held from minute 6
    targets.loc[idx[29]:, "A/USDT"] = 0.4  # A's target changes at 29: filled at minute 30, where B has no bar
    res = simulate_targets(targets, {"A/USDT": a, "B/USDT": b}, BacktestConfig())  # raised "equity ... NaN"
    eq = res.equity.to_numpy()
    assert np.isfinite(eq).all(), f"equity NaN from bar {int(np.flatnonzero(~np.isfinite(eq))[0])}"
    fill = res.fills[res.fills["symbol"] == "A/USDT"].iloc[0]
    assert fill["bar"] == 30
    # sized on the equity with B marked at its last known price (minute 29's close): equity at 29's close
    assert fill["qty"] == pytest.approx(0.4 * eq[29] / fill["ref_price"], rel=0.01)
