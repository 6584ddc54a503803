"""Benchmark: a walk-forward optimisation of 200 trials on 2 years of 1h bars (3 symbols) on 2 cores.

Run:  .venv/bin/python benchmarks/bench_walkforward.py [--strategy quantum_momentum] [--backends loky,sequential]

200 trials = 50 parameter sets x 4 rolling windows, each trial a full signal + kernel run over its window, all
recorded in a fresh trial registry (temp state.db), plus PBO (CSCV) and the DSR of the stitched out-of-sample curve.
Wall time includes starting the joblib worker processes (a cold pool: the first sweep of a session). Data: seeded
synthetic random-walk bars (generating 2 years of simulator history would dominate the measurement).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_panel(n: int = 2 * 365 * 24, symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT", "SOL/USDT")):  # noqa: ANN201
    """Seeded hourly random walks with mild trends, one frame per symbol."""
    import numpy as np
    import pandas as pd

    idx = pd.date_range("2023-01-01", periods=n, freq="1h", tz="UTC", name="ts")
    panel = {}
    for i, sym in enumerate(symbols):
        rng = np.random.default_rng(100 + i)
        drift = np.repeat(rng.normal(0, 0.0004, n // 500 + 1), 500)[:n]
        close = 1000.0 * (i + 1) * np.exp(np.cumsum(drift + rng.normal(0, 0.008, n)))
        open_ = np.r_[close[0], close[:-1]]
        panel[sym] = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.002,
                                   "low": np.minimum(open_, close) * 0.998, "close": close,
                                   "volume": rng.uniform(100, 1000, n)}, index=idx)
    return panel


def main() -> None:
    """Run the sweep on each backend and print a markdown table."""
    from engine.backtest.research import strategy_class_for
    from engine.backtest.walkforward import run_walkforward
    from engine.config import BacktestConfig
    from engine.store import open_store

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategy", default="quantum_momentum")
    ap.add_argument("--backends", default="loky")
    ap.add_argument("--params", type=int, default=50)
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    cls = strategy_class_for(args.strategy)
    panel = make_panel()
    n_bars = len(next(iter(panel.values())))
    rows = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(Path(tmp) / "state.db")
            t0 = time.perf_counter()
            wf = run_walkforward(cls, panel, BacktestConfig(), n_trials=args.params, n_windows=args.windows,
                                 store=store, n_jobs=args.jobs, backend=backend, timeframe="1h", seed=1)
            wall = time.perf_counter() - t0
            store.dispose()
        trials = args.params * args.windows
        rows.append((backend, trials, wall, wf))
    print(f"\nmachine: {os.cpu_count()} cores, date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"strategy {args.strategy}, {n_bars:,} 1h bars x {len(panel)} symbols\n")
    print("| backend | jobs | trials | wall s | trials/s | goal < 60 s | OOS Sharpe | DSR | n_trials | PBO |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for backend, trials, wall, wf in rows:
        m = wf.metrics
        print(f"| {backend} | {args.jobs} | {trials} | {wall:.1f} | {trials / wall:.1f} | "
              f"{'met' if wall < 60 else 'MISSED'} | {m['sharpe']:.2f} | {m['dsr']:.3f} | {m['n_trials']} | "
              f"{m['pbo']:.2f} |")


if __name__ == "__main__":
    main()
