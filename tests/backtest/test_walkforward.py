"""Walk-forward optimisation: windows, parameter search, parallel backends agree, every trial is registered."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.support.strategies.sma_cross import SmaCross
from engine.backtest.registry import count_trials
from engine.backtest.walkforward import make_windows, run_walkforward, sample_params
from engine.config import BacktestConfig


def test_rolling_and_anchored_windows() -> None:
    """OOS segments tile the second half; rolling IS keeps its length, anchored IS starts at bar 0."""
    rolling = make_windows(1000, 4, 0.5)
    assert [(w.is_start, w.oos_start, w.oos_end) for w in rolling] == \
        [(0, 500, 625), (125, 625, 750), (250, 750, 875), (375, 875, 1000)]
    anchored = make_windows(1000, 4, 0.5, anchored=True)
    assert all(w.is_start == 0 for w in anchored)
    with pytest.raises(ValueError, match="n_windows"):
        make_windows(30, 10)


def test_sample_params_are_valid_and_distinct() -> None:
    """Random and grid searches give distinct sets that pass the strategy's own validation (fast < slow)."""
    for search in ("random", "grid"):
        params = sample_params(SmaCross, 25, search, seed=1)
        assert len(params) == 25
        assert len({tuple(sorted(p.items())) for p in params}) == 25
        assert all(p["fast"] < p["slow"] for p in params)
    fixed = sample_params(SmaCross, 5, "random", seed=1, fixed={"long_only": True})
    assert all(p["long_only"] is True for p in fixed)
    with pytest.raises(ValueError, match="search"):
        sample_params(SmaCross, 5, "bayes")


def test_walkforward_records_every_trial_and_backends_agree(store, make_panel, report) -> None:  # noqa: ANN001
    """Random search's sweep: loky and sequential give the same table; all N x W in-sample trials land in the
    registry. (TPE, the default search, has its own backend tests in test_optuna_search.py.)"""
    panel = make_panel(4000, ("BTC/USDT", "ETH/USDT"))
    cfg = BacktestConfig()
    seq = run_walkforward(SmaCross, panel, cfg, n_trials=12, n_windows=3, search="random", backend="sequential",
                          seed=3)
    done = []
    par = run_walkforward(SmaCross, panel, cfg, n_trials=12, n_windows=3, search="random", backend="loky", n_jobs=2,
                          seed=3, store=store, progress=lambda d, t: done.append((d, t)))
    pd.testing.assert_frame_equal(seq.table, par.table)
    assert seq.oos_equity.equals(par.oos_equity)
    assert done[-1] == (36, 36)
    assert count_trials(store, par.dataset_hash) == 36
    assert par.metrics["n_trials"] == 36 and 0.0 <= par.metrics["pbo"] <= 1.0
    assert len(par.oos_equity) == 4000 - 2000 + 1
    assert list(par.table["window"]) == [0, 1, 2]
    report("walk-forward 12 x 3 on 4000 bars", {"sequential_s": seq.elapsed_s, "loky_s": par.elapsed_s,
                                                 "oos_sharpe": par.metrics["sharpe"], "dsr": par.metrics["dsr"],
                                                 "pbo": par.metrics["pbo"]})


def test_dask_backend_on_a_local_cluster_matches(make_panel) -> None:  # noqa: ANN001
    """`backend='dask'` runs the same random-search sweep on a dask.distributed LocalCluster and gets the same
    result (TPE on dask: test_optuna_search.py)."""
    distributed = pytest.importorskip("distributed")
    panel = make_panel(3000)
    cfg = BacktestConfig()
    seq = run_walkforward(SmaCross, panel, cfg, n_trials=6, n_windows=2, search="random", backend="sequential", seed=5)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        dsk = run_walkforward(SmaCross, panel, cfg, n_trials=6, n_windows=2, search="random", backend="dask", seed=5)
    pd.testing.assert_frame_equal(seq.table, dsk.table)
    assert dsk.backend == "dask"


def test_unknown_backend_is_rejected(make_panel) -> None:  # noqa: ANN001
    """A typo in the backend names it."""
    with pytest.raises(ValueError, match="backend"):
        run_walkforward(SmaCross, make_panel(500), BacktestConfig(), backend="ray")


def test_sweep_tasks_send_back_statistics_not_return_series(make_panel) -> None:  # noqa: ANN001
    """A worker's answer per trial is a few hundred bytes whatever the bar count (it once shipped every trial's
    per-bar returns: ~100 MB for a 400 x 4 sweep, which made a dask cluster slower than one process), and the PBO
    assembled from the workers' block sums equals CSCV on the full OOS return matrix."""
    import pickle

    import numpy as np

    from engine.backtest.stats import pbo_cscv, pbo_from_block_sums
    from engine.backtest.sweep_reduce import SharedPanel, cscv_layout, pbo_block_sums, summarise_window
    from engine.backtest.walkforward import _evaluate

    cfg = BacktestConfig()
    params = sample_params(SmaCross, 6, "random", seed=5)
    jobs = list(enumerate(params))
    sizes = []
    for n_bars in (3000, 12000):
        panel = make_panel(n_bars, ("BTC/USDT", "ETH/USDT"))
        windows = make_windows(n_bars, 3)
        layout = cscv_layout(windows, 8)
        out = [s for w in windows for s in summarise_window(SmaCross, jobs, SharedPanel(panel), w, cfg, None, None,
                                                            layout)]
        sizes.append(len(pickle.dumps(out)) / len(out))
        s1, s2 = pbo_block_sums({(s.window, s.index): s for s in out}, [w.number for w in windows], len(params))
        reduced = pbo_from_block_sums(s1, s2, np.diff(layout.bounds))
        matrix = np.column_stack([np.concatenate([_evaluate(SmaCross, [(i, p)], panel, w, cfg, None, None, 0)[0][3]
                                                  for w in windows]) for i, p in enumerate(params)])
        full = pbo_cscv(matrix, 8)
        assert reduced["pbo"] == full["pbo"]
        assert abs(reduced["median_logit"] - full["median_logit"]) < 1e-12
    assert sizes[0] < 2000, f"{sizes[0]:.0f} bytes per trial"
    assert sizes[1] < 1.1 * sizes[0], f"answer grows with the bars: {sizes}"
