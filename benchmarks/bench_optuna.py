"""Benchmark: optuna TPE vs random search at equal trial budget, walk-forward on simulator bars, both built-ins.

Run:  .venv/bin/python benchmarks/bench_optuna.py [--trials 30] [--windows 3] [--days 365] [--seeds 5]

For each built-in strategy (quantum_momentum on 1h, macro_trend on 4h, their default timeframes) the simulator's
history of the configured symbols is pulled once into a temp state.db; then for each seed a walk-forward runs with
`--search tpe` (robust selection: its objective) and with `--search random`, twice: choosing each window's
configuration by the same robust score as TPE (equal footing: only the sampler differs) and by the plain in-sample
Sharpe (random's default), all with the same number of trials per window. The score is the Sharpe of
the stitched out-of-sample equity (annualised), reported as the median over the seeds, with each run's in-sample
Sharpe of the selected configuration and the wall time. No registry (store=None): the two searches must not deflate
each other. Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load(strategy: str, days: int, tmp: Path):  # noqa: ANN201
    """Simulator bars for the strategy's default timeframe (pulled into a temp store once)."""
    from engine.backtest.research import load_research
    from engine.config import load_settings, settings_with
    from engine.store import open_store

    settings = settings_with(load_settings(environ={}), store={"path": str(tmp / "state.db")})
    store = open_store(settings.store_url())
    try:
        return load_research(settings, store, strategy, {}, None, None, f"{days}d", "now", "sim", pull=True)
    finally:
        store.dispose()


def main() -> None:
    """Run both searches for every seed and strategy and print the medians."""
    from engine.backtest.walkforward import run_walkforward
    from engine.config import BacktestConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategies", default="quantum_momentum,macro_trend")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    print(f"load before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    lines = ["| strategy | bars x symbols | search | selection | median OOS Sharpe | per seed | median IS Sharpe "
             "| wall s |", "|---|---|---|---|---:|---|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in args.strategies.split(","):
            data = load(strategy, args.days, Path(tmp) / strategy)
            n_bars = len(next(iter(data.panel.values())))
            for search, selection in (("tpe", "robust"), ("random", "robust"), ("random", "sharpe")):
                oos, ins, wall = [], [], 0.0
                for seed in range(args.seeds):
                    t0 = time.perf_counter()
                    wf = run_walkforward(data.strategy_cls, data.panel, BacktestConfig(), n_trials=args.trials,
                                         n_windows=args.windows, search=search, seed=seed, n_jobs=args.jobs,
                                         backend="loky", timeframe=data.spec.timeframe,
                                         selection=selection)
                    wall += time.perf_counter() - t0
                    oos.append(wf.metrics["sharpe"])
                    ins.append(float(wf.table["is_sharpe"].mean()))
                lines.append(f"| {strategy} | {n_bars} x {len(data.panel)} | {search} | {selection} | "
                             f"{statistics.median(oos):.2f} | {', '.join(f'{v:.2f}' for v in oos)} | "
                             f"{statistics.median(ins):.2f} | {wall:.0f} |")
                print(lines[-1], flush=True)
    print(f"load after: {os.getloadavg()[0]:.1f}")
    print(f"\n{args.trials} trials per window x {args.windows} windows, {args.seeds} seeds, {args.days} days\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
