"""PBO for optuna runs: each window's study is its own CSCV problem over its trials' out-of-sample returns, pooled."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backtest.costs import panel_index
from engine.backtest.optuna_search import run_tpe
from engine.backtest.stats import pbo_cscv
from engine.backtest.sweep_reduce import pbo_by_window
from engine.backtest.walkforward import run_walkforward
from engine.backtest.windows import make_windows
from engine.config import BacktestConfig
from tests.support.strategies.sma_cross import SmaCross


def test_tpe_walkforward_reports_the_pbo_of_each_windows_trials_pooled(make_panel) -> None:  # noqa: ANN001
    """A TPE walk-forward has a PBO (it was NaN before): the pooled per-window CSCV over the trials each study ran,
    equal to the mean of every window's own `pbo_cscv` (same number of splits per window)."""
    panel = make_panel(1600, ("BTC/USDT", "ETH/USDT"))
    cfg = BacktestConfig()
    wf = run_walkforward(SmaCross, panel, cfg, n_trials=8, n_windows=2, search="tpe", seed=3, backend="sequential",
                         pbo_splits=4, timeframe="1h")
    windows = make_windows(len(panel_index(panel)), 2)
    found = run_tpe(SmaCross, panel, windows, cfg, n_trials=8, seed=3, fixed={}, sizer=None, barriers=None,
                    ppy=8760.0, prefix="t", store=None, start_params=None, n_jobs=1, backend="sequential")
    per_window = []
    for res in found:
        matrix = np.column_stack([oos for _, oos in res.returns])
        per_window.append(pbo_cscv(matrix, 4)["pbo"])
    assert 0.0 <= wf.pbo["pbo"] <= 1.0 and wf.metrics["pbo"] == wf.pbo["pbo"]
    assert wf.pbo["pbo"] == pytest.approx(float(np.mean(per_window)), abs=1e-12)
    assert wf.pbo["n_combinations"] == 2 * 6 and wf.pbo["n_configurations"] == 16
    assert "per-window CSCV" in wf.pbo["method"] and len(wf.pbo["by_part"]) == 2


def test_pbo_by_window_skips_windows_too_short_to_split_and_says_so() -> None:
    """A window with one trial or too few OOS bars is left out; with none left the PBO is NaN with the reason."""
    rng = np.random.default_rng(0)
    good = [rng.normal(0, 0.01, 40) for _ in range(5)]
    lone = [rng.normal(0, 0.01, 40)]
    short = [rng.normal(0, 0.01, 6) for _ in range(5)]
    pooled = pbo_by_window([good, lone, short], 4)
    assert pooled["n_combinations"] == 6 and pooled["pbo"] == pbo_cscv(np.column_stack(good), 4)["pbo"]
    empty = pbo_by_window([lone, short], 4)
    assert np.isnan(empty["pbo"]) and "too few" in empty["method"]


def test_noise_has_a_high_pooled_pbo_and_a_real_edge_a_low_one() -> None:
    """The pooled statistic behaves like CSCV's: about 0.5 or more for pure noise, near 0 when one configuration in
    every window is genuinely better."""
    rng = np.random.default_rng(7)
    noise = [[rng.normal(0, 0.01, 400) for _ in range(12)] for _ in range(3)]
    edge = [[rng.normal(0.004 if i == 0 else 0.0, 0.01, 400) for i in range(12)] for _ in range(3)]
    assert pbo_by_window(noise, 8)["pbo"] > 0.3
    assert pbo_by_window(edge, 8)["pbo"] < 0.05
