"""Walk-forward windows and one parameter set's evaluation over a window: the pieces every search (random, grid,
optuna TPE) and the sweep reduction share, in a module that imports none of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from engine.backtest.costs import market_arrays, panel_index
from engine.backtest.engine import run_kernel, target_array
from engine.backtest.exposure import kernel_barriers, strategy_exposure, strategy_stops
from engine.backtest.inputs import Barriers
from engine.backtest.sizing import Sizer, fixed_fraction
from engine.config import BacktestConfig


@dataclass(frozen=True)
class Window:
    """One walk-forward step: in-sample [is_start, oos_start) and out-of-sample [oos_start, oos_end), bar positions."""

    number: int
    is_start: int
    oos_start: int
    oos_end: int


def make_windows(n_bars: int, n_windows: int, is_fraction: float = 0.5, anchored: bool = False) -> list[Window]:
    """Split n_bars: the first `is_fraction` is the first in-sample span, the rest n_windows equal OOS segments."""
    if n_windows < 1:
        raise ValueError(f"n_windows: must be >= 1, got {n_windows}")
    if not 0.05 <= is_fraction <= 0.95:
        raise ValueError(f"is_fraction: must be in [0.05, 0.95], got {is_fraction}")
    is_len = int(n_bars * is_fraction)
    test_len = (n_bars - is_len) // n_windows
    if is_len < 10 or test_len < 5:
        raise ValueError(f"n_windows: {n_bars} bars are too few for {n_windows} windows at is_fraction={is_fraction}")
    out = []
    for i in range(n_windows):
        oos_start = is_len + i * test_len
        oos_end = n_bars if i == n_windows - 1 else oos_start + test_len
        out.append(Window(i, 0 if anchored else oos_start - is_len, oos_start, oos_end))
    return out


def window_market(panel: Mapping[str, pd.DataFrame], window: Window, config: BacktestConfig) -> tuple:
    """A window's in-sample + out-of-sample slice of the panel and its market arrays, shared by its evaluations."""
    index = panel_index(panel)
    part = {s: f.loc[index[window.is_start]:index[window.oos_end - 1]] for s, f in panel.items()}
    return part, panel_index(part), tuple(part), market_arrays(part, config)


def evaluate_params(strategy_cls: type, params: dict, prepared: tuple, window: Window, config: BacktestConfig,
                    sizer: Sizer | None, barriers: Barriers | None) -> tuple[np.ndarray, np.ndarray]:
    """One parameter set over a window's span (one pass): its in-sample and out-of-sample per-bar returns."""
    part, sub_index, symbols, market = prepared
    strategy = strategy_cls(**params)
    weights, _ = strategy_exposure(strategy, part, sub_index, symbols)
    targets = target_array((sizer or fixed_fraction())(weights, part), market.index, market.symbols)
    eq = run_kernel(targets, market, config, *kernel_barriers(strategy_stops(strategy), barriers, part, market.index,
                                                               market.symbols))[0]
    rets = eq[1:] / eq[:-1] - 1.0
    split = window.oos_start - window.is_start - 1  # returns[i] is bar i+1 over bar i; OOS returns start at oos_start
    return rets[:split], rets[split:]
