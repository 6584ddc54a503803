"""Backtester, metrics, trial registry, lookahead check, walk-forward optimisation and reports.

Public API (names resolve lazily, so importing one submodule does not pull numba into e.g. the CLI start-up):

Backtests (engine.backtest.engine)
    run_backtest(strategy, panel, settings_or_backtest_config, sizer=None, barriers=None, store=None,
                 lookahead=True, record=True, timeframe=None) -> BacktestResult
        signals -> sizer -> simulate_targets -> metrics; lookahead check; with a store: records a trial on the
        dataset hash and a backtest_runs row, and deflates the Sharpe by every trial ever run on that dataset.
    simulate_targets(targets, panel, settings_or_backtest_config, barriers=None, timeframe_ms=None) -> BacktestResult
        The twin path: fills for given target fractions of equity (decided at bar t, filled at bar t+1).
    Barriers(stop_loss=None, take_profit=None, max_bars=None)  fractions of the trade's entry price / bars.
    BacktestResult: equity (Series), positions (DataFrame, qty after each bar), cash, targets, fills (ts, symbol,
        qty, price, ref_price, fee, slippage, reason), trades (symbol, side, qty, entry/exit ts and price, pnl,
        return, fees, slippage, funding, bars, exit_reason), metrics (dict), lookahead (LookaheadResult),
        dataset_hash, run_id, returns.
Sizers (engine.backtest.sizing): a sizer is `(signals, panel) -> DataFrame` of target fractions of equity.
    fixed_fraction(fraction=None), vol_target(target_vol, span, max_fraction), from_frame(targets).
Metrics and statistics (engine.backtest.metrics, engine.backtest.stats)
    compute_metrics(equity, trades, periods_per_year, gross_exposure=None, traded_notional=None) -> dict
    periods_per_year(timeframe_ms)  (365 days x bars per day)
    probabilistic_sharpe(sharpe, benchmark, n_obs, skew, kurt), deflated_sharpe(sharpe, n_trials,
    sharpe_variance_across_trials, n_obs, skew, kurt), pbo_cscv(returns_matrix, n_splits) -> dict
    (Sharpe ratios per bar; kurtosis non-excess.)
Trial registry (engine.backtest.registry)
    record_trial(store, dataset_hash, strategy, params, returns, phase="full", window=None, run_id=None)
    count_trials(store, dataset_hash), trial_sharpe_variance(store, dataset_hash), dataset_hash(panel, timeframe)
Lookahead (engine.backtest.lookahead): check_lookahead(signal_fn, panel, full_signals=None, cuts=...) -> result
Walk-forward (engine.backtest.walkforward)
    run_walkforward(strategy_cls, panel, config, n_trials=50, n_windows=4, is_fraction=0.5, anchored=False,
                    search="tpe"|"random"|"grid", store=None, n_jobs=2, backend="loky"|"threading"|"sequential"|"dask",
                    progress=None, ...) -> WalkForwardResult
Reports (engine.backtest.tearsheet): write_tearsheet(result, path), write_walkforward_tearsheet(wf, path)
Research datasets (engine.backtest.research / dataset): load_research(...), ensure_history(...), load_dataset(...)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "run_backtest": "engine.backtest.engine", "simulate_targets": "engine.backtest.engine",
    "Barriers": "engine.backtest.engine", "BacktestResult": "engine.backtest.engine",
    "fixed_fraction": "engine.backtest.sizing", "vol_target": "engine.backtest.sizing",
    "from_frame": "engine.backtest.sizing",
    "compute_metrics": "engine.backtest.metrics", "periods_per_year": "engine.backtest.metrics",
    "probabilistic_sharpe": "engine.backtest.stats", "deflated_sharpe": "engine.backtest.stats",
    "pbo_cscv": "engine.backtest.stats",
    "record_trial": "engine.backtest.registry", "count_trials": "engine.backtest.registry",
    "dataset_hash": "engine.backtest.registry",
    "check_lookahead": "engine.backtest.lookahead", "LookaheadResult": "engine.backtest.lookahead",
    "run_walkforward": "engine.backtest.walkforward", "WalkForwardResult": "engine.backtest.walkforward",
    "write_tearsheet": "engine.backtest.tearsheet", "write_walkforward_tearsheet": "engine.backtest.tearsheet",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Resolve a public name from its submodule on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.backtest' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
