"""Lab: why does TPE lose to random search? Optimiser efficiency and out-of-sample Sharpe, per variant, per seed.

Run:  .venv/bin/python benchmarks/optuna_lab.py --seeds 10-14 --trials 30 --variants base,noprune,...

For each strategy, seed and TPE variant it runs the same walk-forward windows as `run_walkforward` (3 rolling
windows over 365 simulated days) with the lower-level pieces, so both selection rules can be applied to the SAME set
of evaluated trials:
  (a) optimiser efficiency: the best in-sample objective found in each window (mean over windows, annualised), for
      both objectives (robust score and plain Sharpe), over the selectable trials;
  (b) the Sharpe of the stitched out-of-sample returns of the configuration chosen in each window, choosing by the
      in-sample Sharpe and by the robust score.
Random search = `sample_params` (the same N sets in every window), as `quantdesk optimize --search random` does.
Prints one line per (strategy, sampler, seed) and medians over the seeds.

Markets: by default every run uses ONE simulated market (the simulator's default seed 7, 365 days to "now", cached),
and `--seeds` varies only the samplers' seed. `--market-seeds 0-4` instead gives each seed its own simulated market
(simulator seed = that number, bars from MARKET_SINCE to MARKET_UNTIL, fixed dates so a re-run sees the same bars)
and searches it with sampler seed = market seed for TPE and random alike; medians are then over markets. Settings are tuned on seeds other than the
ones docs/benchmarks.md reports (bench_optuna.py reports seeds 0-4).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import pickle
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {  # name -> TpeSettings keyword arguments for a budget of n trials per window
    "base": lambda n: {"prune": True},  # session 4's method: robust objective, multivariate, start-up n/3, pruner
    "noprune": lambda n: {},  # session 5's default: robust objective, multivariate, start-up n/3, no pruning
    "sharpe": lambda n: {"objective": "sharpe"},
    "calm": lambda n: {"n_startup": n // 2},  # less greedy: half the budget random (gamma etc. are deprecated)
    "calm_sharpe": lambda n: {"n_startup": n // 2, "objective": "sharpe"},
    "uni": lambda n: {"multivariate": False},
}


MARKET_SINCE, MARKET_UNTIL = "2025-12-05", "2026-12-05"  # --market-seeds: 365 days ending 2026-12-05 00:00 UTC


def load_market(strategy: str, market: int, tmp: Path):  # noqa: ANN201
    """Simulator bars of market seed `market` for the strategy's default timeframe, fixed dates (temp store)."""
    from engine.backtest.research import load_research
    from engine.config import load_settings, settings_with
    from engine.store import open_store

    settings = settings_with(load_settings(environ={}), store={"path": str(tmp / "state.db")},
                             simulator={"seed": market})
    store = open_store(settings.store_url())
    try:
        return load_research(settings, store, strategy, {}, None, None, MARKET_SINCE, MARKET_UNTIL, "sim", pull=True)
    finally:
        store.dispose()


def panel_for(strategy: str, days: int, cache: Path, market: int | None = None):  # noqa: ANN201
    """(strategy class, panel, timeframe) from the simulator, cached on disk so every lab run sees the same bars.

    market None: the simulator's default seed, `days` to now (sessions 5/6); else that simulator seed, fixed dates."""
    path = cache / (f"{strategy}-{days}.pkl" if market is None else f"{strategy}-market{market}.pkl")
    if path.exists():
        return pickle.loads(path.read_bytes())
    from benchmarks.bench_optuna import load

    with tempfile.TemporaryDirectory() as tmp:
        data = load(strategy, days, Path(tmp)) if market is None else load_market(strategy, market, Path(tmp))
    out = (data.strategy_cls.name, data.panel, data.spec.timeframe)
    path.write_bytes(pickle.dumps(out))
    return out


def stitched_sharpe(parts: list[np.ndarray], ppy: float) -> float:
    """Annualised Sharpe of the concatenated out-of-sample returns (ddof=1)."""
    r = np.concatenate(parts)
    sd = r.std(ddof=1)
    return float(r.mean() / sd * math.sqrt(ppy)) if sd > 0 else 0.0


def rules(sr: np.ndarray, rb: np.ndarray, params: list[dict], space: dict, ok: np.ndarray) -> dict[str, int]:
    """Every selection rule the lab compares -> the index it chooses (product rules from engine.backtest.selection)."""
    from engine.backtest.selection import choose, plateau_scores

    def arg(v: np.ndarray) -> int:
        return int(np.argmax(np.where(ok, v, -np.inf)))

    return {"sharpe": choose("sharpe", sr, rb, params, space, ok), "robust": choose("robust", sr, rb, params, space, ok),
            "plateau": choose("plateau", sr, rb, params, space, ok),
            "knn5": arg(plateau_scores(sr, params, space, 5, ok)),
            "knn_robust": arg(plateau_scores(rb, params, space, None, ok)),
            "medoid": choose("medoid", sr, rb, params, space, ok),
            "steady": choose("steady", sr, rb, params, space, ok)}


RULES = ("sharpe", "robust", "plateau", "knn5", "knn_robust", "medoid", "steady")


def score(per_window: list, ppy: float, space: dict) -> dict:
    """Best IS objective found (both objectives) and OOS Sharpe of each selection rule, from evaluated trials."""
    from engine.backtest.robust import fold_sharpes, robust_score
    from engine.backtest.sweep_reduce import sharpe_per_bar

    scale = math.sqrt(ppy)
    best: dict = {"robust": [], "sharpe": []}
    oos: dict = {k: [] for k in RULES}
    for is_list, oos_list, ok, params in per_window:
        sr = np.array([sharpe_per_bar(r) for r in is_list])
        rb = np.array([robust_score(fold_sharpes(r)) for r in is_list])
        for name, vals in (("robust", rb), ("sharpe", sr)):
            best[name].append(float(np.max(np.where(ok, vals, -np.inf))) * scale)
        for name, i in rules(sr, rb, params, space, ok).items():
            oos[name].append(oos_list[i])
    return {"is_best_robust": float(np.mean(best["robust"])), "is_best_sharpe": float(np.mean(best["sharpe"])),
            **{f"oos_by_{k}": stitched_sharpe(v, ppy) for k, v in oos.items()}}


def run_one(strategy: str, sampler: str, seed: int, trials: int, days: int, cache: Path,
            market: int | None = None) -> tuple:
    """One (strategy, sampler, seed) walk-forward on market `market` (None: the default one); its key and scores."""
    from engine.backtest.costs import panel_index
    from engine.backtest.metrics import periods_per_year
    from engine.backtest.optuna_search import TpeSettings, search_window
    from engine.backtest.walkforward import sample_params
    from engine.backtest.windows import evaluate_params, make_windows, window_market
    from engine.clock import timeframe_ms
    from engine.config import BacktestConfig
    from engine.strategy.registry import strategy_class

    name, panel, tf = panel_for(strategy, days, cache, market)
    cls = strategy_class(name)
    if os.environ.get("LAB_NOLOG") == "1":  # the uniform priors of session 5, for comparison
        cls = type(cls.__name__, (cls,), {"param_space": classmethod(lambda c, base=cls: {
            k: dataclasses.replace(v, log=False) for k, v in base.param_space().items()})})
    config = BacktestConfig()
    ppy = periods_per_year(timeframe_ms(tf))
    windows = make_windows(len(panel_index(panel)), 3, 0.5, os.environ.get("LAB_ANCHORED") == "1")
    per_window = []
    if sampler == "random":
        params = sample_params(cls, trials, "random", seed)
        for w in windows:
            prepared = window_market(panel, w, config)
            rets = [evaluate_params(cls, p, prepared, w, config, None, None) for p in params]
            per_window.append(([r[0] for r in rets], [r[1] for r in rets], np.ones(len(rets), dtype=bool), params))
    else:
        settings = TpeSettings(**VARIANTS[sampler](trials))
        for w in windows:
            res = search_window(cls, panel, w, config, None, None, trials, seed, {}, ppy, f"lab/{w.number}", [],
                                None, settings)
            per_window.append(([r[0] for r in res.returns], [r[1] for r in res.returns],
                               ~np.array(res.pruned, dtype=bool), res.params))
    return (strategy, sampler, seed), score(per_window, ppy, cls.param_space())


def correlation(strategy: str, n: int, days: int, cache: Path, market: int | None = None) -> list[str]:
    """Does in-sample skill carry out of sample here? Per window, over n random configurations: Spearman rank
    correlation of IS Sharpe (and robust score) with OOS Sharpe, and the mean OOS Sharpe of all vs the top decile."""
    from scipy.stats import spearmanr

    from engine.backtest.costs import panel_index
    from engine.backtest.metrics import periods_per_year
    from engine.backtest.robust import fold_sharpes, robust_score
    from engine.backtest.sweep_reduce import sharpe_per_bar
    from engine.backtest.walkforward import sample_params
    from engine.backtest.windows import evaluate_params, make_windows, window_market
    from engine.clock import timeframe_ms
    from engine.config import BacktestConfig
    from engine.strategy.registry import strategy_class

    name, panel, tf = panel_for(strategy, days, cache, market)
    cls, config = strategy_class(name), BacktestConfig()
    scale = math.sqrt(periods_per_year(timeframe_ms(tf)))
    params = sample_params(cls, n, "random", 99)
    lines = []
    for w in make_windows(len(panel_index(panel)), 3, 0.5, os.environ.get("LAB_ANCHORED") == "1"):
        prepared = window_market(panel, w, config)
        rets = [evaluate_params(cls, p, prepared, w, config, None, None) for p in params]
        sr = np.array([sharpe_per_bar(r[0]) for r in rets]) * scale
        rb = np.array([robust_score(fold_sharpes(r[0])) for r in rets]) * scale
        oo = np.array([sharpe_per_bar(r[1]) for r in rets]) * scale
        top = max(1, n // 10)
        label = strategy if market is None else f"{strategy} m{market}"
        lines.append(f"| {label} | {w.number} | {spearmanr(sr, oo)[0]:.2f} | {spearmanr(rb, oo)[0]:.2f} | "
                     f"{oo.mean():.2f} | {oo[np.argsort(-sr)[:top]].mean():.2f} | "
                     f"{oo[np.argsort(-rb)[:top]].mean():.2f} |")
    return lines


def main() -> None:
    """Run every (strategy, sampler, seed) in parallel and print per-seed rows and medians."""
    from joblib import Parallel, delayed

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategies", default="quantum_momentum,macro_trend")
    ap.add_argument("--variants", default="base,noprune")
    ap.add_argument("--seeds", default="10-14")
    ap.add_argument("--market-seeds", default="", help="e.g. 0-4: one simulated market per seed (simulator seed), "
                    "searched with sampler seed = market seed; replaces --seeds")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "op16-lab"))
    ap.add_argument("--correlation", type=int, default=0, help="instead: IS/OOS rank correlation over N random sets")
    ap.add_argument("--anchored", action="store_true", help="anchored windows (in-sample from bar 0) instead of rolling")
    ap.add_argument("--no-log", action="store_true", help="uniform priors for every parameter (no log-scaled specs)")
    args = ap.parse_args()
    if args.no_log:
        os.environ["LAB_NOLOG"] = "1"
    if args.anchored:
        os.environ["LAB_ANCHORED"] = "1"  # read in the workers too (loky passes the environment)
    markets = bool(args.market_seeds)
    lo, _, hi = (args.market_seeds or args.seeds).partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))
    cache = Path(args.cache)
    cache.mkdir(exist_ok=True)
    strategies = args.strategies.split(",")
    for s in strategies:
        for m in seeds if markets else [None]:
            panel_for(s, args.days, cache, m)
    if args.correlation:
        print("| strategy | window | Spearman(IS Sharpe, OOS) | Spearman(robust, OOS) | mean OOS Sharpe, all | "
              "top decile by IS Sharpe | top decile by robust |\n|---|---:|---:|---:|---:|---:|---:|")
        for s in strategies:
            for m in seeds if markets else [None]:
                print("\n".join(correlation(s, args.correlation, args.days, cache, m)), flush=True)
        return
    samplers = ["random", *args.variants.split(",")]
    what = "market seeds (sampler seed = market seed)" if markets else "sampler seeds, one market"
    print(f"load before: {os.getloadavg()[0]:.1f}; trials {args.trials}/window, {what} {seeds}", flush=True)
    jobs = [(s, m, seed) for s in strategies for m in samplers for seed in seeds]
    out = dict(Parallel(n_jobs=args.jobs)(delayed(run_one)(s, m, seed, args.trials, args.days, cache,
                                                           seed if markets else None) for s, m, seed in jobs))
    keys = ("is_best_robust", "is_best_sharpe", *(f"oos_by_{r}" for r in RULES))
    print("| strategy | sampler | " + " | ".join(f"median {k}" for k in keys) + " |")
    print("|---|---|" + "---:|" * len(keys))
    for s in strategies:
        for m in samplers:
            rows = [out[(s, m, seed)] for seed in seeds]
            med = [statistics.median(r[k] for r in rows) for k in keys]
            print(f"| {s} | {m} | " + " | ".join(f"{v:.2f}" for v in med) + " |", flush=True)
    print("per seed (strategy, sampler, seed, " + ", ".join(keys) + "):")
    for (s, m, seed), r in sorted(out.items()):
        print(f"{s} {m} {seed} " + " ".join(f"{r[k]:.3f}" for k in keys))
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
