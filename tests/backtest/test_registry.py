"""Trial registry in a real state.db: every backtest is a trial on its dataset, and the DSR deflates by them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.backtest.engine import run_backtest
from tests.support.strategies.sma_cross import SmaCross
from engine.backtest.registry import (count_trials, dataset_hash, record_trial, trial_sharpe_variance)
from engine.config import BacktestConfig


def test_record_and_count_trials(store) -> None:  # noqa: ANN001
    """Selection trials count; out-of-sample evaluations are stored but not counted; datasets are separate."""
    rng = np.random.default_rng(0)
    for i in range(3):
        record_trial(store, "hash-a", "sma_cross", {"fast": i}, rng.normal(0, 0.01, 500), phase="in_sample", window=0)
    record_trial(store, "hash-a", "sma_cross", {"fast": 1}, rng.normal(0, 0.01, 500), phase="out_of_sample")
    record_trial(store, "hash-b", "sma_cross", {"fast": 1}, rng.normal(0, 0.01, 500))
    assert count_trials(store, "hash-a") == 3
    assert count_trials(store, "hash-b") == 1
    assert count_trials(store, "nothing") == 0
    assert trial_sharpe_variance(store, "hash-a") > 0
    with store.connect() as conn:
        row = conn.exec_driver_sql("SELECT params, n_obs, phase FROM trials WHERE dataset_hash = 'hash-b'").fetchone()
    assert json.loads(row[0]) == {"fast": 1} and row[1] == 500 and row[2] == "full"
    with pytest.raises(ValueError, match="phase"):
        record_trial(store, "hash-a", "x", {}, [0.0, 0.1], phase="sometimes")


def test_each_backtest_adds_a_trial_and_deflates_the_dsr(store, make_panel) -> None:  # noqa: ANN001
    """Running parameter variants on one dataset raises n_trials, and the DSR of the same result falls."""
    panel = make_panel(3000)
    dsr, n = [], []
    for fast in (5, 5, 8, 12, 20):
        res = run_backtest(SmaCross(fast=fast, slow=60), panel, BacktestConfig(), store=store, lookahead=False)
        dsr.append(res.metrics["dsr"])
        n.append(res.metrics["n_trials"])
    assert n == [1, 2, 3, 4, 5]
    assert dsr[1] <= dsr[0]  # same Sharpe, more trials: DSR can only fall
    assert count_trials(store, res.dataset_hash) == 5
    with store.connect() as conn:
        runs = conn.exec_driver_sql("SELECT kind, n_trials, dataset_hash FROM backtest_runs ORDER BY id").fetchall()
    assert [r[1] for r in runs] == [1, 2, 3, 4, 5] and {r[2] for r in runs} == {res.dataset_hash}
    other = make_panel(3000, seed=9)
    assert dataset_hash(other, "3600000") != res.dataset_hash
