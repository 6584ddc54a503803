"""Walk-forward optimisation: rolling or anchored windows, an optuna TPE, random or grid parameter search in-sample,
evaluation out-of-sample, trials in parallel through joblib (loky locally, `dask` on a dask.distributed cluster).

With `search="tpe"` (the default) each window is its own optuna study (engine.backtest.optuna_search); with random
or grid search the same N parameter sets are evaluated in every window. Each evaluation runs the strategy over the
window's in-sample + out-of-sample span in one pass; the in-sample part alone picks the winner (signals are
point-in-time, which the lookahead check verifies), and the out-of-sample part of every set feeds the PBO (CSCV)
matrix. Every in-sample evaluation is a trial in the registry, so the DSR of the stitched out-of-sample curve is
deflated by all of them.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from engine.backtest.costs import check_panel, panel_index
from engine.backtest.costs import market_arrays
from engine.backtest.engine import Barriers, run_kernel, target_array
from engine.backtest.exposure import kernel_barriers, strategy_exposure, strategy_stops
from engine.backtest.metrics import compute_metrics, periods_per_year
from engine.backtest.selection import SELECTIONS, choose
from engine.backtest.sizing import Sizer, fixed_fraction
from engine.backtest.stats import CONVENTIONS, deflated_sharpe, pbo_from_block_sums, sample_moments
from engine.backtest.sweep_reduce import SharedPanel, cscv_layout, pbo_block_sums, pbo_by_window, summarise
from engine.backtest.windows import (  # re-exported: the window model lives in its own leaf module
    Window, evaluate_params, make_windows, window_market,
)
from engine.config import BacktestConfig

BACKENDS = ("loky", "threading", "sequential", "dask")
SEARCHES = ("tpe", "random", "grid")
Progress = Callable[[int, int], None]


def sample_params(strategy_cls: type, n: int, search: str = "random", seed: int = 0,
                  fixed: Mapping[str, Any] | None = None) -> list[dict]:
    """N distinct valid parameter sets from the strategy's param_space (random draws or a thinned grid)."""
    if n < 1:
        raise ValueError(f"n_trials: must be >= 1, got {n}")
    space = {k: v for k, v in strategy_cls.param_space().items() if k not in (fixed or {})}
    rng = np.random.default_rng(seed)
    if search == "grid":
        per_axis = max(2, int(math.ceil(n ** (1.0 / max(len(space), 1)))) + 1)
        axes = []
        for key, spec in space.items():
            if spec.kind == "choice":
                axes.append([(key, c) for c in spec.choices])
            else:  # log-scaled specs get a geometric grid, as their draws are log-uniform
                points = (np.geomspace if spec.log else np.linspace)(spec.low, spec.high, per_axis)
                axes.append([(key, int(v)) for v in np.unique(points.round())] if spec.kind == "int"
                            else [(key, float(v)) for v in points])
        grid = [dict(c) for c in itertools.product(*axes)]
        order = rng.permutation(len(grid))
        candidates = (grid[i] for i in order)
    elif search == "random":
        candidates = ({k: spec.sample(rng) for k, spec in space.items()} for _ in range(200 * n))
    else:
        raise ValueError(f"search: must be random or grid, got {search!r}")
    out: list[dict] = []
    seen: set[str] = set()
    for cand in candidates:
        params = {**cand, **dict(fixed or {})}
        key = repr(sorted(params.items()))
        if key in seen:
            continue
        try:
            strategy_cls(**params)
        except ValueError:
            continue
        seen.add(key)
        out.append(params)
        if len(out) == n:
            return out
    if not out:
        raise ValueError(f"{strategy_cls.__name__}: no valid parameter set found in param_space")
    return out


def _evaluate(strategy_cls: type, jobs: Sequence[tuple[int, dict]], panel: Mapping[str, pd.DataFrame],
              window: Window, config: BacktestConfig, sizer: Sizer | None, barriers: Barriers | None,
              timeframe_ms: int) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """Run parameter sets over one window's span; return (window, param index, IS returns, OOS returns) each."""
    prepared = window_market(panel, window, config)
    return [(window.number, p_idx, *evaluate_params(strategy_cls, params, prepared, window, config, sizer, barriers))
            for p_idx, params in jobs]


def oos_run(strategy_cls: type, params: dict, panel: Mapping[str, pd.DataFrame], window: Window,
            config: BacktestConfig, sizer: Sizer | None, barriers: Barriers | None) -> tuple[pd.DataFrame, np.ndarray]:
    """(trades entered inside the window's out-of-sample segment, its OOS per-bar returns) for one parameter set.

    The run covers the window's in-sample + out-of-sample span, exactly as the evaluation did (so the returns are
    bit-for-bit those of the trial), and positions are what the stitched equity holds; a trade still open at the
    segment's end is closed there (exit reason `end`).
    """
    from engine.backtest.engine import _trades_frame

    index = panel_index(panel)
    lo, mid, hi = window.is_start, window.oos_start, window.oos_end
    part = {s: f.loc[index[lo]:index[hi - 1]] for s, f in panel.items()}
    market = market_arrays(part, config)
    strategy = strategy_cls(**params)
    weights, _ = strategy_exposure(strategy, part, panel_index(part), tuple(part))
    targets = target_array((sizer or fixed_fraction())(weights, part), market.index, market.symbols)
    out = run_kernel(targets, market, config, *kernel_barriers(strategy_stops(strategy), barriers, part, market.index,
                                                                market.symbols))
    eq, raw = out[0], out[2]
    trades = _trades_frame(raw, market.index, market.symbols)
    trades = trades[trades["entry_bar"] >= mid - lo].copy()
    trades["window"] = window.number
    rets = eq[1:] / eq[:-1] - 1.0
    return trades, rets[window.oos_start - window.is_start - 1:]


def oos_trades(strategy_cls: type, params: dict, panel: Mapping[str, pd.DataFrame], window: Window,
               config: BacktestConfig, sizer: Sizer | None, barriers: Barriers | None) -> pd.DataFrame:
    """Trades of the selected parameters entered inside the window's out-of-sample segment (see `oos_run`)."""
    return oos_run(strategy_cls, params, panel, window, config, sizer, barriers)[0]


@dataclass
class WalkForwardResult:
    """Per-window table, stitched out-of-sample equity and metrics (with DSR and PBO), and every trial's score."""

    table: pd.DataFrame
    oos_equity: pd.Series
    metrics: dict
    pbo: dict
    trials: pd.DataFrame
    params: list[dict]
    dataset_hash: str
    strategy: str
    run_id: int | None = None
    elapsed_s: float = 0.0
    backend: str = "loky"
    windows: list[Window] = field(default_factory=list)
    oos_trades: pd.DataFrame | None = None  # trades entered in each out-of-sample segment, stitched
    search: str = "tpe"
    studies: list[str] = field(default_factory=list)  # optuna study names (search="tpe"), one per window


def _sharpe_pp(r: np.ndarray) -> float:
    mean, std, _, _ = sample_moments(r)
    return mean / std if std > 0 else 0.0


def _run_parallel(tasks: list[tuple], n_jobs: int, backend: str, progress: Progress | None,
                  total: int) -> list[tuple]:
    """Run summarise_window tasks through joblib on the chosen backend, reporting progress as chunks complete."""
    from joblib import Parallel, delayed, parallel_config

    from engine.backtest.sweep_reduce import summarise_window

    results: list[tuple] = []
    done = 0
    if progress:
        progress(0, total)
    if backend == "sequential":
        for t in tasks:
            chunk = summarise_window(*t)
            results.extend(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
        return results
    with parallel_config(backend=backend, n_jobs=n_jobs):
        gen = Parallel(return_as="generator_unordered")(delayed(summarise_window)(*t) for t in tasks)
        for chunk in gen:
            results.extend(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return results


def check_choices(search: str, backend: str, selection: str | None) -> str:
    """The search, backend and selection rule checked before any work (one ValueError naming the choices); returns
    the selection rule (sharpe when None)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if search not in SEARCHES:
        raise ValueError(f"search: must be one of {', '.join(SEARCHES)}, got {search!r}")
    selection = selection or "sharpe"
    if selection not in SELECTIONS:
        raise ValueError(f"selection: must be one of {', '.join(SELECTIONS)}, got {selection!r}")
    return selection


def run_walkforward(strategy_cls: type, panel: Mapping[str, pd.DataFrame], config: BacktestConfig, *,
                    n_trials: int = 50, n_windows: int = 4, is_fraction: float = 0.5, anchored: bool = False,
                    search: str = "tpe", seed: int = 0, fixed_params: Mapping[str, Any] | None = None,
                    sizer: Sizer | None = None, barriers: Barriers | None = None, store: Any = None,
                    n_jobs: int = 2, backend: str = "loky", timeframe: str | None = None,
                    progress: Progress | None = None, pbo_splits: int = 8,
                    trial_family: str | None = None,
                    start_params: Mapping[str, Any] | None = None, selection: str | None = None,
                    tpe: Any = None) -> WalkForwardResult:
    """Optimise on each in-sample window, evaluate out of sample, record every trial, and score DSR and PBO.

    `selection` picks each window's configuration: "sharpe" (highest in-sample Sharpe, the default for every search)
    or "robust" (highest fold-mean Sharpe minus one standard error, engine.backtest.robust). `tpe` is an
    optuna_search.TpeSettings (default: the robust score as TPE's objective, multivariate, no pruning).

    `search="tpe"` (the default) runs one optuna study per window (n_trials run trials each, COMPLETE or PRUNED,
    stored beside the store so a re-run resumes); `start_params` is a point inside the param space that TPE evaluates
    first in each window. "random" and "grid" evaluate the same n_trials parameter sets in every window."""
    from engine.backtest.registry import (TrialIdentity, code_version, cost_model, dataset_hash, record_run,
                                          record_trials, trial_counts, trial_row, trial_sharpe_variance)
    from engine.backtest.metrics import infer_timeframe_ms
    from engine.clock import timeframe_ms as tf_ms_of

    selection = check_choices(search, backend, selection)
    t0 = time.perf_counter()
    symbols = check_panel(panel)
    index = panel_index(panel)
    tf_ms = tf_ms_of(timeframe) if timeframe else infer_timeframe_ms(index)
    ppy = periods_per_year(tf_ms)
    windows = make_windows(len(index), n_windows, is_fraction, anchored)
    space = {k: v for k, v in strategy_cls.param_space().items() if k not in (fixed_params or {})}
    name = str(getattr(strategy_cls, "name", strategy_cls.__name__))
    d_hash = dataset_hash(panel, str(tf_ms))
    identity = TrialIdentity(cost_model(config, sizer, barriers), code_version(strategy_cls), trial_family)
    studies: list[str] = []
    layout = cscv_layout(windows, pbo_splits)
    if search == "tpe":
        from dataclasses import asdict

        from engine.backtest.optuna_search import TpeSettings, run_tpe, study_prefix

        tpe = tpe or TpeSettings()
        prefix = study_prefix(name, d_hash, {"costs": identity.costs, "code": identity.code,
                                             "fixed": dict(fixed_params or {}), "tpe": asdict(tpe)})
        found = _with_backend(backend, n_jobs, strategy_cls, lambda: run_tpe(
            strategy_cls, panel, windows, config, n_trials=n_trials, seed=seed, fixed=dict(fixed_params or {}),
            sizer=sizer, barriers=barriers, ppy=ppy, prefix=prefix, store=store, start_params=start_params,
            n_jobs=n_jobs, backend=backend, progress=progress, settings=tpe))
        by_w = {r.window: r.params for r in found}
        selectable = {r.window: ~np.array(r.pruned, dtype=bool) for r in found}
        by_key = {(r.window, i): summarise(r.window, i, r.params[i], *ret, layout)
                  for r in found for i, ret in enumerate(r.returns)}
        studies = [r.study_name for r in found]
    else:
        params = sample_params(strategy_cls, n_trials, search, seed, fixed_params)
        n_chunks = max(1, min(len(params), 2 * max(n_jobs, 1)))
        chunks = [list(enumerate(params))[i::n_chunks] for i in range(n_chunks)]
        shared = SharedPanel(panel)  # scattered once to dask workers, not sent with every task
        tasks = [(strategy_cls, chunk, shared, w, config, sizer, barriers, layout) for w in windows for chunk in chunks]
        total = len(params) * len(windows)
        results = _with_backend(backend, n_jobs, strategy_cls,
                                lambda: _run_parallel(tasks, n_jobs, backend, progress, total))
        by_key = {(t.window, t.index): t for t in results}
        by_w = {w.number: params for w in windows}
        selectable = {w.number: np.ones(len(params), dtype=bool) for w in windows}
    rows, trial_rows, oos_parts, oos_is_rows, trade_parts = [], [], [], [], []
    for w in windows:
        params = by_w[w.number]
        is_sr = np.array([by_key[(w.number, i)].is_sharpe for i in range(len(params))])
        is_rb = np.array([by_key[(w.number, i)].is_robust for i in range(len(params))])
        best = choose(selection, is_sr, is_rb, params, space, selectable[w.number])
        trades_w, oos_r = oos_run(strategy_cls, params[best], panel, w, config, sizer, barriers)
        oos_parts.append(oos_r)
        trade_parts.append(trades_w)
        for i in range(len(params)):
            trial_rows.append({"window": w.number, "param_index": i, "params": params[i],
                               "is_sharpe": is_sr[i] * math.sqrt(ppy),
                               "oos_sharpe": by_key[(w.number, i)].oos_sharpe * math.sqrt(ppy),
                               "selected": i == best})
        rows.append({"window": w.number, "is_start": index[w.is_start], "oos_start": index[w.oos_start],
                     "oos_end": index[w.oos_end - 1], "best_params": params[best],
                     "is_sharpe": is_sr[best] * math.sqrt(ppy),
                     "oos_sharpe": _sharpe_pp(oos_r) * math.sqrt(ppy),
                     "oos_return": float(np.prod(1.0 + oos_r) - 1.0), "oos_bars": int(len(oos_r))})
        oos_is_rows.append((w.number, params[best], oos_r))
    table = pd.DataFrame(rows)
    stitched = np.concatenate(oos_parts)
    eq_values = config.initial_capital * np.concatenate(([1.0], np.cumprod(1.0 + stitched)))
    oos_index = index[windows[0].oos_start - 1: windows[-1].oos_end]
    oos_equity = pd.Series(eq_values, index=oos_index, name="oos_equity")
    stitched_trades = pd.concat(trade_parts, ignore_index=True)
    metrics = compute_metrics(oos_equity, stitched_trades, ppy)
    n_eval = sum(len(v) for v in by_w.values())
    if search == "tpe":  # each window's study searched its own configurations: one CSCV per window, pooled
        pbo = pbo_by_window([[ret[1] for ret in r.returns] for r in found], pbo_splits)
    elif len(params) >= 2 and layout.rows >= 2 * pbo_splits:
        s1, s2 = pbo_block_sums(by_key, [w.number for w in windows], len(params))
        pbo = pbo_from_block_sums(s1, s2, np.diff(layout.bounds))
    else:
        pbo = {"pbo": float("nan"), "n_combinations": 0}
    by_strategy = {name: n_eval}
    if store is not None:
        for w in windows:
            record_trials(store, d_hash, name, [by_key[(w.number, i)].is_row for i in range(len(by_w[w.number]))],
                          "in_sample", window=w.number, identity=identity)
        for w_num, best, oos_r in oos_is_rows:
            record_trials(store, d_hash, name, [trial_row(best, oos_r)], "out_of_sample", window=w_num,
                          identity=identity)
        by_strategy = trial_counts(store, d_hash, trial_family)
        n_total = sum(by_strategy.values())
        var = trial_sharpe_variance(store, d_hash, trial_family)
    else:
        n_total = n_eval
        var = float(np.var([by_key[k].is_sharpe for k in sorted(by_key)], ddof=1)) if n_total > 1 else 0.0
    metrics.update({"n_trials": n_total, "n_trials_by_strategy": by_strategy, "trial_sharpe_variance": var,
                    "trial_family": trial_family or f"dataset:{d_hash[:12]}", "dsr_conventions": CONVENTIONS,
                    "pbo": pbo["pbo"],
                    "dsr": deflated_sharpe(metrics["sharpe_per_bar"], max(n_total, 1), var,
                                           max(metrics["n_obs"], 2), metrics["skew"], metrics["kurtosis"])})
    elapsed = time.perf_counter() - t0
    metrics["elapsed_s"] = elapsed
    result = WalkForwardResult(table=table, oos_equity=oos_equity, metrics=metrics, pbo=pbo,
                               trials=pd.DataFrame(trial_rows), params=by_w[windows[0].number],
                               dataset_hash=d_hash, strategy=name,
                               elapsed_s=elapsed, backend=backend, windows=windows, oos_trades=stitched_trades,
                               search=search, studies=studies)
    if store is not None:
        result.run_id = record_run(
            store, kind="walkforward", strategy=name,
            params={"n_trials": n_trials, "n_windows": n_windows, "anchored": anchored, "search": search,
                    "selection": selection, "seed": seed, "tpe": vars(tpe) if search == "tpe" else None,
                    "best": [r["best_params"] for r in rows], "studies": studies},
            symbols=symbols, timeframe=timeframe or f"{tf_ms // 60_000}m",
            start_ts=int(index[0].value // 1_000_000), end_ts=int(index[-1].value // 1_000_000),
            dataset_hash=d_hash, metrics=metrics, lookahead=None)
    return result


def _with_backend(backend: str, n_jobs: int, strategy_cls: type, run: Callable[[], Any]) -> Any:
    """Call `run`; on the dask backend, inside a dask.distributed client (the current one, or a local cluster)."""
    if backend in ("sequential", "threading"):
        return run()
    _ship_user_strategies_by_value(strategy_cls)  # loky and dask workers unpickle the class in another process
    if backend != "dask":
        return run()
    from distributed import Client, LocalCluster, get_client

    try:
        get_client()
        own = None
    except ValueError:
        cluster = LocalCluster(n_workers=max(n_jobs, 1), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        own = (Client(cluster), cluster)
    try:
        return run()
    finally:
        if own is not None:
            own[0].close()
            own[1].close()


def _ship_user_strategies_by_value(strategy_cls: type) -> None:
    """A user's strategy loaded from a folder (./user_strategies, QUANTDESK_STRATEGY_PATH) is not importable by name
    in a worker process (loky's or dask's): pickle its module by value so the workers receive the code itself (both
    serialise tasks with cloudpickle)."""
    import sys

    import cloudpickle

    from engine.strategy.registry import USER_MODULE_PREFIX

    module = getattr(strategy_cls, "__module__", "")
    if module.startswith(USER_MODULE_PREFIX) and module in sys.modules:
        cloudpickle.register_pickle_by_value(sys.modules[module])
