"""optuna TPE as walk-forward's in-sample optimiser: registry count = optuna trials, seeded, stored, resumable."""

from __future__ import annotations

import json
import re

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from engine.backtest.optuna_search import TpeSettings, open_storage
from engine.backtest.registry import count_trials
from engine.backtest.robust import N_FOLDS
from engine.backtest.walkforward import run_walkforward
from engine.config import BacktestConfig
from engine.store import open_store
from tests.support.strategies.sma_cross import SmaCross


def _run_trials(storage: object, names: list[str], states: tuple = (TrialState.COMPLETE, TrialState.PRUNED)) -> int:
    return sum(sum(t.state in states for t in optuna.load_study(study_name=n, storage=storage).trials)
               for n in names)


def test_tpe_walkforward_counts_every_optuna_trial_and_stores_the_study(store, make_panel) -> None:  # noqa: ANN001
    """TPE runs per window; the registry's N equals the run (COMPLETE + PRUNED) optuna trials, and the studies are in
    the store."""
    panel = make_panel(1500, ("BTC/USDT",))
    wf = run_walkforward(SmaCross, panel, BacktestConfig(), n_trials=12, n_windows=2, search="tpe", seed=5,
                         store=store, backend="sequential")
    names = json.loads(_run_params(store, wf.run_id))["studies"]
    assert len(names) == 2 and all("/sma_cross/" in n for n in names)
    storage = open_storage(store)
    try:
        assert {s.study_name for s in optuna.get_all_study_summaries(storage)} == set(names)
        n_optuna = _run_trials(storage, names)
        n_pruned = _run_trials(storage, names, (TrialState.PRUNED,))
    finally:
        storage.engine.dispose()
    assert n_optuna == 24 and n_pruned < n_optuna
    assert count_trials(store, wf.dataset_hash) == n_optuna == wf.metrics["n_trials"]
    assert store.path.with_name(f"{store.path.stem}.optuna.db").exists()
    assert list(wf.table["window"]) == [0, 1] and len(wf.oos_equity) == 1500 - 750 + 1


def _run_params(store, run_id: int) -> str:  # noqa: ANN001
    with store.connect() as conn:
        return conn.exec_driver_sql("SELECT params FROM backtest_runs WHERE id = ?", (run_id,)).scalar_one()


def test_same_seed_same_result_and_a_rerun_resumes_the_study(tmp_path, make_panel) -> None:  # noqa: ANN001
    """Two fresh stores with one seed agree; re-running on the same store resumes (no new trials, same answer),
    and asking for more trials adds only the difference."""
    panel = make_panel(1200, ("BTC/USDT",))
    cfg = BacktestConfig()
    results = []
    for name in ("a", "b"):
        st = open_store(tmp_path / f"{name}.db")
        try:
            results.append(run_walkforward(SmaCross, panel, cfg, n_trials=10, n_windows=2, search="tpe", seed=7,
                                           store=st, backend="sequential"))
        finally:
            st.dispose()
    pd.testing.assert_frame_equal(results[0].table, results[1].table)
    assert results[0].oos_equity.equals(results[1].oos_equity)
    st = open_store(tmp_path / "a.db")
    try:
        again = run_walkforward(SmaCross, panel, cfg, n_trials=10, n_windows=2, search="tpe", seed=99, store=st,
                                backend="sequential")
        pd.testing.assert_frame_equal(again.table, results[0].table)
        assert count_trials(st, again.dataset_hash) == 20
        more = run_walkforward(SmaCross, panel, cfg, n_trials=14, n_windows=2, search="tpe", seed=7, store=st,
                               backend="sequential")
        assert count_trials(st, more.dataset_hash) == 28 == more.metrics["n_trials"]
    finally:
        st.dispose()


def test_windows_in_parallel_match_sequential(make_panel) -> None:  # noqa: ANN001
    """Windows are independent studies: running them on loky workers gives the sequential answer."""
    panel = make_panel(1200, ("BTC/USDT",))
    seq = run_walkforward(SmaCross, panel, BacktestConfig(), n_trials=8, n_windows=2, search="tpe", seed=1,
                          backend="sequential")
    par = run_walkforward(SmaCross, panel, BacktestConfig(), n_trials=8, n_windows=2, search="tpe", seed=1,
                          backend="loky", n_jobs=2)
    pd.testing.assert_frame_equal(seq.table, par.table)
    assert seq.metrics["n_trials"] == 16


def test_start_point_outside_its_space_is_rejected_naming_the_space(make_panel) -> None:  # noqa: ANN001
    """A TPE starting point must lie inside the param space; the error names the parameter and the space."""
    panel = make_panel(1000, ("BTC/USDT",))
    with pytest.raises(ValueError, match=r"fast=500 is outside its search space int in \[2, 50\].*slow: int"):
        run_walkforward(SmaCross, panel, BacktestConfig(), n_trials=4, n_windows=2, search="tpe",
                        start_params={"fast": 500, "slow": 600}, backend="sequential")
    with pytest.raises(ValueError, match="search: must be one of tpe, random, grid"):
        run_walkforward(SmaCross, panel, BacktestConfig(), n_trials=4, search="bayes")


def test_start_point_is_the_first_trial_of_every_window(make_panel) -> None:  # noqa: ANN001
    """A valid starting point is evaluated first in each window's study."""
    panel = make_panel(1000, ("BTC/USDT",))
    wf = run_walkforward(SmaCross, panel, BacktestConfig(), n_trials=5, n_windows=2, search="tpe", seed=2,
                         start_params={"fast": 5, "slow": 40, "long_only": True}, backend="sequential")
    assert wf.trials.groupby("window").size().tolist() == [5, 5] and wf.metrics["n_trials"] == 10
    assert wf.params[0] == {"fast": 5, "slow": 40, "long_only": True}


def test_cli_optimize_with_tpe_and_a_bad_start_point(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """`quantdesk optimize NAME --search tpe` runs with its progress bar and names the stored studies; a starting
    point outside the space is one clear line and exit 2."""
    from tests.support.cli import TEST_STRATEGIES, cli_in

    cli = cli_in(tmp_path, monkeypatch, TEST_STRATEGIES)

    def run(*args: str):  # noqa: ANN202
        return cli("optimize", "sma_cross", "--symbols", "BTC/USDT", "--timeframe", "1h", "--since", "60d",
                   "--windows", "2", "--backend", "sequential", *args)

    ok = run("--search", "tpe", "--trials", "6", "--out", str(tmp_path / "wf.html"))
    assert ok.exit_code == 0, ok.output
    assert "tpe" in ok.output and "optuna studies: walkforward/sma_cross/" in ok.output
    assert (tmp_path / "state.optuna.db").exists() and (tmp_path / "wf.html").exists()
    assert re.search(r"PBO \d\.\d{3}: per-window CSCV over each window's trials, 2 windows pooled", ok.output)
    assert "per-window CSCV" in (tmp_path / "wf.html").read_text()
    bad = run("--sampler", "tpe", "--trials", "3", "--start", "fast=500")
    assert bad.exit_code == 2 and "outside its search space int in [2, 50]" in bad.output
    assert "Traceback" not in bad.output
    wrong = run("--search", "random", "--trials", "3", "--selection", "best")
    assert wrong.exit_code == 2 and "selection: must be one of sharpe, robust, plateau" in wrong.output
    bogus = run("--search", "bogus", "--trials", "3")  # refused before any history is loaded or a bar is drawn
    assert bogus.exit_code == 2 and "search: must be one of tpe, random, grid, got 'bogus'" in bogus.output
    assert "walk-forward" not in bogus.output and "Traceback" not in bogus.output


def test_tpe_windows_on_a_dask_local_cluster_match_sequential(make_panel) -> None:  # noqa: ANN001
    """`backend='dask'` runs the windows' studies on a dask.distributed LocalCluster with the sequential answer."""
    pytest.importorskip("distributed")
    panel = make_panel(1200, ("BTC/USDT",))
    seq = run_walkforward(SmaCross, panel, BacktestConfig(), n_trials=6, n_windows=2, search="tpe", seed=1,
                          backend="sequential")
    dask = run_walkforward(SmaCross, panel, BacktestConfig(), n_trials=6, n_windows=2, search="tpe", seed=1,
                           backend="dask", n_jobs=2)
    pd.testing.assert_frame_equal(seq.table, dask.table)
    assert dask.metrics["n_trials"] == 12 and dask.backend == "dask"


def test_pruned_trials_are_trials_in_the_registry_and_never_selected(store, make_panel) -> None:  # noqa: ANN001
    """With pruning on (`--prune`), the MedianPruner stops trials on their in-sample fold Sharpes (reported as intermediate values); every pruned
    trial is still counted in the registry (DSR's N = COMPLETE + PRUNED), and no window selects a pruned trial."""
    panel = make_panel(1200, ("BTC/USDT",))
    wf = run_walkforward(SmaCross, panel, BacktestConfig(), n_trials=24, n_windows=1, search="tpe", seed=3,
                         store=store, backend="sequential", selection="robust", tpe=TpeSettings(prune=True))
    storage = open_storage(store)
    try:
        studies = [optuna.load_study(study_name=n, storage=storage) for n in wf.studies]
    finally:
        storage.engine.dispose()
    pruned = [t for s in studies for t in s.trials if t.state == TrialState.PRUNED]
    complete = [t for s in studies for t in s.trials if t.state == TrialState.COMPLETE]
    assert pruned, "the pruner stopped no trial in 24"
    assert all(t.intermediate_values and max(t.intermediate_values) < N_FOLDS - 1 for t in pruned)
    assert all(sorted(t.intermediate_values) == list(range(N_FOLDS - 1)) for t in complete)
    assert len(pruned) + len(complete) == 24 == count_trials(store, wf.dataset_hash) == wf.metrics["n_trials"]
    for s, best in zip(studies, wf.table["best_params"]):
        chosen = [t for t in s.trials if t.params and {**t.params} == {k: best[k] for k in t.params}]
        assert [t.state for t in chosen] == [TrialState.COMPLETE]
        assert chosen[0].value == max(t.value for t in s.trials if t.state == TrialState.COMPLETE)


def test_robust_score_prefers_steady_returns_to_one_lucky_stretch() -> None:
    """Same noise, same overall mean: earning it in every fold scores higher than earning it all in the first fold,
    although the plain Sharpe of the lucky series is the higher one."""
    import numpy as np

    from engine.backtest.robust import fold_sharpes, robust_score
    from engine.backtest.sweep_reduce import sharpe_per_bar

    rng = np.random.default_rng(0)
    noise = np.concatenate([(lambda x: (x - x.mean()) / x.std(ddof=1) * 0.01)(rng.standard_normal(250))
                            for _ in range(N_FOLDS)])
    steady = noise + 0.001
    lucky = noise + np.where(np.arange(len(noise)) < 250, 0.0045, 0.0)
    assert sharpe_per_bar(lucky) > sharpe_per_bar(steady)
    assert np.allclose(fold_sharpes(steady), 0.1)
    assert robust_score(fold_sharpes(steady)) > robust_score(fold_sharpes(lucky)) + 0.05


def test_random_search_can_select_by_the_robust_score(make_panel) -> None:  # noqa: ANN001
    """selection='robust' picks, in each window, the evaluated set with the highest robust in-sample score (the
    same trials as selection='sharpe'); an unknown selection is one clear error."""
    panel = make_panel(1200, ("BTC/USDT",))
    kw = {"n_trials": 12, "n_windows": 2, "search": "random", "seed": 4, "backend": "sequential"}
    plain = run_walkforward(SmaCross, panel, BacktestConfig(), **kw)
    robust = run_walkforward(SmaCross, panel, BacktestConfig(), selection="robust", **kw)
    assert plain.params == robust.params and len(robust.trials) == 24
    assert list(plain.trials["is_sharpe"]) == list(robust.trials["is_sharpe"])
    with pytest.raises(ValueError, match="selection: must be one of sharpe, robust, plateau"):
        run_walkforward(SmaCross, panel, BacktestConfig(), selection="best", **kw)
