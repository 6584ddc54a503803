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


def test_each_distinct_configuration_adds_a_trial_and_deflates_the_dsr(store, make_panel) -> None:  # noqa: ANN001
    """Parameter variants on one dataset raise n_trials and the DSR falls; an identical rerun reuses its trial."""
    panel = make_panel(3000)
    dsr, n = [], []
    for fast in (5, 5, 8, 12, 20):
        res = run_backtest(SmaCross(fast=fast, slow=60), panel, BacktestConfig(), store=store, lookahead=False)
        dsr.append(res.metrics["dsr"])
        n.append(res.metrics["n_trials"])
    assert n == [1, 1, 2, 3, 4]  # the second fast=5 run is the same trial
    assert dsr[1] == dsr[0] and dsr[2] <= dsr[0]
    assert count_trials(store, res.dataset_hash) == 4
    with store.connect() as conn:
        runs = conn.exec_driver_sql("SELECT kind, n_trials, dataset_hash FROM backtest_runs ORDER BY id").fetchall()
    assert [r[1] for r in runs] == [1, 1, 2, 3, 4] and {r[2] for r in runs} == {res.dataset_hash}
    other = make_panel(3000, seed=9)
    assert dataset_hash(other, "3600000") != res.dataset_hash


def test_an_identical_rerun_keeps_n_and_the_dsr_but_costs_or_sizing_make_a_new_trial(store, make_panel) -> None:  # noqa: ANN001
    """Identity is content: same strategy, params, data, costs and code -> same trial; other costs -> a new one."""
    import dataclasses

    from engine.backtest.sizing import fixed_fraction

    panel = make_panel(2000)
    first = run_backtest(SmaCross(fast=6, slow=40), panel, BacktestConfig(), store=store, lookahead=False)
    run_backtest(SmaCross(fast=9, slow=40), panel, BacktestConfig(), store=store, lookahead=False)
    again = run_backtest(SmaCross(fast=6, slow=40), panel, BacktestConfig(), store=store, lookahead=False)
    assert again.metrics["n_trials"] == 2 and again.metrics["dsr"] == pytest.approx(
        run_backtest(SmaCross(fast=6, slow=40), panel, BacktestConfig(), store=store, lookahead=False).metrics["dsr"],
        rel=1e-12)
    assert first.metrics["n_trials_by_strategy"] == {"sma_cross": 1}
    dearer = dataclasses.replace(BacktestConfig(), fee_taker=0.001)
    assert run_backtest(SmaCross(fast=6, slow=40), panel, dearer, store=store,
                        lookahead=False).metrics["n_trials"] == 3
    half = run_backtest(SmaCross(fast=6, slow=40), panel, BacktestConfig(), sizer=fixed_fraction(0.5), store=store,
                        lookahead=False)
    assert half.metrics["n_trials"] == 4 and half.metrics["n_trials_by_strategy"] == {"sma_cross": 4}
    with store.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM trials").scalar() == 4


def test_a_named_trial_family_counts_only_its_question(store, make_panel) -> None:  # noqa: ANN001
    """--trial-family NAME: N is that family's configurations; the dataset default still sees every trial."""
    panel = make_panel(2000)
    for fast in (5, 7, 9):
        run_backtest(SmaCross(fast=fast, slow=40), panel, BacktestConfig(), store=store, lookahead=False)
    fam = run_backtest(SmaCross(fast=11, slow=40), panel, BacktestConfig(), store=store, lookahead=False,
                       trial_family="slow-40-question")
    assert fam.metrics["n_trials"] == 1 and fam.metrics["trial_family"] == "slow-40-question"
    plain = run_backtest(SmaCross(fast=5, slow=40), panel, BacktestConfig(), store=store, lookahead=False)
    assert plain.metrics["n_trials"] == 4 and plain.metrics["trial_family"].startswith("dataset:")


def test_a_failed_lookahead_trial_is_marked_and_never_counted(store, make_panel) -> None:  # noqa: ANN001
    """A peeking strategy's trial is stored with lookahead_ok = 0, adds nothing to N and has no DSR."""
    import math

    from tests.support.strategies.peeking_oracle import PeekingOracle

    panel = make_panel(600)
    ok = run_backtest(SmaCross(fast=5, slow=40), panel, BacktestConfig(), store=store)
    bad = run_backtest(PeekingOracle(), panel, BacktestConfig(), store=store)
    assert not bad.lookahead.ok and math.isnan(bad.metrics["dsr"]) and "FAILED" in bad.metrics["dsr_note"]
    assert bad.metrics["n_trials"] == 1 == ok.metrics["n_trials"]
    with store.connect() as conn:
        rows = conn.exec_driver_sql("SELECT strategy, lookahead_ok FROM trials ORDER BY id").fetchall()
        run = conn.exec_driver_sql("SELECT dsr, lookahead_ok FROM backtest_runs ORDER BY id DESC").fetchone()
    assert [tuple(r) for r in rows] == [("sma_cross", 1), (bad.strategy, 0)]
    assert run[0] is None and run[1] == 0
    assert trial_sharpe_variance(store, ok.dataset_hash) == 0.0  # the oracle's Sharpe does not inflate V[SR]
