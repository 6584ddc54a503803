"""Benchmark: engine.features.fast (AOT-compiled indicator helpers) against pandas, and the two shipped strategies'
signals with them against the same strategies on pandas' windows (the implementation before issue 17).

Run:  .venv/bin/python benchmarks/bench_indicators.py [--bars 1000000] [--repeats 5]

Helpers: one float64 column of `--bars` random-walk prices, best CPU time of `--repeats` (this thread's clock) for
rolling mean/std (window 100), EWM mean (span 100), z-score (100), and rank across 10 columns of `--bars // 10`
rows; each result is checked equal to pandas to 1e-9. Strategies: quantum_momentum and macro_trend `signals()` on
2 years of 1h bars x 3 symbols (seeded random walks), identical signals asserted. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def best_cpu(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """(best thread CPU s, last result) of `repeats` calls after a warm-up call."""
    out = fn()
    best = float("inf")
    for _ in range(repeats):
        c0 = time.thread_time()
        out = fn()
        best = min(best, time.thread_time() - c0)
    return best, out


def main() -> None:
    """Time every helper and both strategies against pandas; print the table."""
    from engine.features import fast
    from engine.strategy import numeric
    from strategies.macro_trend import MacroTrend
    from strategies.quantum_momentum import QuantumMomentum
    from tests.strategies.test_fast_signals_unchanged import broadcast_row_rank, pandas_ewm_mean, pandas_rolling

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    x = 30_000.0 * np.exp(np.cumsum(rng.normal(0, 8e-4, args.bars)))
    s = pd.Series(x)
    wide = pd.DataFrame(rng.normal(size=(args.bars // 10, 10)))
    cases = [
        ("rolling_mean(100)", lambda: fast.rolling_mean(x, 100), lambda: s.rolling(100).mean()),
        ("rolling_std(100)", lambda: fast.rolling_std(x, 100), lambda: s.rolling(100).std()),
        ("ewm_mean(span=100)", lambda: fast.ewm_mean(x, span=100), lambda: s.ewm(span=100).mean()),
        ("zscore(100)", lambda: fast.zscore(x, 100), lambda: (s - s.rolling(100).mean()) / s.rolling(100).std()),
        ("rank_across (10 columns)", lambda: fast.rank_across(wide), lambda: wide.rank(axis=1)),
    ]
    print(f"helpers: {fast.implementation()}; {args.bars:,} bars; best of {args.repeats}; load average "
          f"{' '.join(f'{v:.2f}' for v in __import__('os').getloadavg())}\n")
    print("| what | ours CPU ms | pandas CPU ms | speed-up | max abs diff |")
    print("|---|---|---|---|---|")
    for name, ours_fn, ref_fn in cases:
        t_ours, ours = best_cpu(ours_fn, args.repeats)
        t_ref, ref = best_cpu(ref_fn, args.repeats)
        o, r = np.asarray(ours, dtype="float64"), np.asarray(ref, dtype="float64")
        assert np.array_equal(np.isnan(o), np.isnan(r)), name
        diff = float(np.nanmax(np.abs(o - r))) if np.isfinite(r).any() else 0.0
        print(f"| {name} | {t_ours * 1e3:.1f} | {t_ref * 1e3:.1f} | {t_ref / t_ours:.1f}x | {diff:.1e} |")
    n = 2 * 8760
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    panel = {}
    for j, sym in enumerate(("BTC/USDT", "ETH/USDT", "SOL/USDT")):
        close = 100.0 * np.exp(np.cumsum(np.random.default_rng(10 + j).normal(0, 0.01, n)))
        panel[sym] = pd.DataFrame({"open": close, "high": close * 1.002, "low": close * 0.998, "close": close,
                                   "volume": 1.0}, index=index)
    for strat in (QuantumMomentum(), MacroTrend()):
        t_new, new = best_cpu(lambda: strat.signals(panel), args.repeats)
        saved = numeric.rolling, numeric.ewm_mean, numeric.row_rank
        numeric.rolling, numeric.ewm_mean, numeric.row_rank = pandas_rolling, pandas_ewm_mean, broadcast_row_rank
        try:
            t_old, old = best_cpu(lambda: strat.signals(panel), args.repeats)
        finally:
            numeric.rolling, numeric.ewm_mean, numeric.row_rank = saved
        same = new.equals(old)
        print(f"| {strat.name}.signals, 2y x 3 symbols 1h | {t_new * 1e3:.1f} | {t_old * 1e3:.1f} "
              f"| {t_old / t_new:.1f}x | signals identical: {'yes' if same else 'NO'} |")
        assert same, strat.name


if __name__ == "__main__":
    main()
