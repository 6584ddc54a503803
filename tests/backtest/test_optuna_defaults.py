"""TPE's defaults in walk-forward: TPE is the default search (of run_walkforward and `quantdesk optimize`), the robust
score steers the sampler, nothing is pruned, and a window chooses by in-sample Sharpe, the same rule random search uses
(so the two are compared like with like)."""

from __future__ import annotations

import json
import math

import pytest
from optuna.trial import TrialState

from engine.backtest.costs import panel_index
from engine.backtest.optuna_search import TpeSettings, run_tpe
from engine.backtest.robust import fold_sharpes, robust_score
from engine.backtest.sweep_reduce import sharpe_per_bar
from engine.backtest.walkforward import run_walkforward
from engine.backtest.windows import make_windows
from engine.config import BacktestConfig
from tests.support.strategies.sma_cross import SmaCross


def test_default_tpe_prunes_nothing_and_chooses_by_in_sample_sharpe(store, make_panel) -> None:  # noqa: ANN001
    """With no search named, walk-forward runs TPE; every evaluated trial is a candidate (no PRUNED trial), each
    window's choice is its highest in-sample Sharpe, and the run records the settings it used."""
    panel = make_panel(1500, ("BTC/USDT", "ETH/USDT"))
    wf = run_walkforward(SmaCross, panel, BacktestConfig(), n_trials=14, n_windows=2, seed=2, store=store,
                         backend="sequential")
    assert wf.search == "tpe" and len(wf.studies) == 2
    for _, rows in wf.trials.groupby("window"):
        assert rows.loc[rows["selected"], "is_sharpe"].item() == rows["is_sharpe"].max()
    with store.connect() as conn:
        params = json.loads(conn.exec_driver_sql("SELECT params FROM backtest_runs WHERE id = ?",
                                                 (wf.run_id,)).scalar_one())
    assert params["search"] == "tpe" and params["selection"] == "sharpe"
    assert params["tpe"] == {"objective": "robust", "n_startup": None, "multivariate": True, "prune": False}
    assert wf.metrics["n_trials"] == 28


@pytest.mark.parametrize("objective", ["robust", "sharpe"])
def test_the_study_optimises_the_configured_objective(make_panel, objective: str) -> None:  # noqa: ANN001
    """optuna is told the robust score (default) or the plain in-sample Sharpe, annualised, of every trial it ran."""
    panel = make_panel(1200, ("BTC/USDT",))
    windows = make_windows(len(panel_index(panel)), 2)
    found = run_tpe(SmaCross, panel, windows, BacktestConfig(), n_trials=10, seed=1, fixed={}, sizer=None,
                    barriers=None, ppy=8760.0, prefix="t", store=None, start_params=None, n_jobs=1,
                    backend="sequential", settings=TpeSettings(objective=objective))
    score = (lambda r: robust_score(fold_sharpes(r))) if objective == "robust" else sharpe_per_bar
    for res in found:
        done = [t for t in res.new_trials if t.state == TrialState.COMPLETE]
        assert not [t for t in res.new_trials if t.state == TrialState.PRUNED] and len(done) == 10
        assert [t.value for t in done] == pytest.approx([score(is_r) * math.sqrt(8760.0) for is_r, _ in res.returns],
                                                        rel=1e-12)
    with pytest.raises(ValueError, match="tpe objective: must be robust or sharpe"):
        TpeSettings(objective="sortino")


def test_optimize_without_search_runs_tpe(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """`quantdesk optimize NAME` with no --search runs TPE: its run's params say tpe, the optuna studies are stored
    beside state.db, and the trial registry's count equals the COMPLETE + PRUNED optuna trials of those studies."""
    import optuna

    from engine.backtest.optuna_search import open_storage
    from engine.backtest.registry import count_trials
    from engine.store import open_store
    from tests.support.cli import TEST_STRATEGIES, cli_in

    quantdesk = cli_in(tmp_path, monkeypatch, TEST_STRATEGIES)
    out = quantdesk("optimize", "sma_cross", "--symbols", "BTC/USDT", "--timeframe", "1h", "--since", "60d",
                    "--windows", "2", "--trials", "6", "--backend", "sequential")
    assert out.exit_code == 0, out.output
    assert "(tpe, sequential" in out.output and "optuna studies: walkforward/sma_cross/" in out.output
    assert (tmp_path / "state.optuna.db").exists()
    store = open_store(tmp_path / "state.db")
    try:
        with store.connect() as conn:
            raw, d_hash = conn.exec_driver_sql("SELECT params, dataset_hash FROM backtest_runs ORDER BY id DESC "
                                               "LIMIT 1").one()
        params = json.loads(raw)
        assert params["search"] == "tpe" and len(params["studies"]) == 2
        storage = open_storage(store)
        try:
            run = [t for name in params["studies"] for t in optuna.load_study(study_name=name, storage=storage).trials
                   if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        finally:
            storage.engine.dispose()
        assert 0 < len(run) == count_trials(store, d_hash)
    finally:
        store.dispose()
