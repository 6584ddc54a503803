"""Retrain time of the meta-model on 2 years of 1h bars (goal < 10 s), with the out-of-sample report.

Run: .venv/bin/python benchmarks/bench_ml.py [--days 730]
Data generation by the simulator is timed separately (it is not part of a retrain: the bars are already in
state.db then). Wall and CPU seconds are both reported because the benchmark machine is shared.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import pandas as pd

from engine.data.simulator import SimulatedExchange
from engine.ml.dataset import build_dataset, sim_taker_flow
from engine.ml.labels import BarrierSpec
from engine.ml.meta_model import train_meta_model
from engine.strategy.registry import load_strategy

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def sim_panel(days: int, now_s: float = 1_790_000_000.0) -> dict[str, pd.DataFrame]:
    """`days` of simulated 1h bars with kline taker-buy volume (day windows round-robin for the sim's cache)."""
    sim = SimulatedExchange(seed=7, clock=lambda: now_s)
    now = sim.milliseconds() // 3_600_000 * 3_600_000
    since = now - days * 86_400_000
    parts: dict[str, list[pd.DataFrame]] = {s: [] for s in SYMBOLS}
    for w0 in range(since, now, 60 * 86_400_000):
        for sym in SYMBOLS:
            f = sim.ohlcv_frame(sym, "1h", w0, min(now, w0 + 60 * 86_400_000))
            f["taker_buy_volume"] = sim_taker_flow(sim, sym, "1h", f.index).to_numpy()
            parts[sym].append(f)
    return {s: pd.concat(v) for s, v in parts.items()}


def main() -> None:
    """Time dataset building and training; print a markdown table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--folds", type=int, default=4)
    args = ap.parse_args()
    t = time.perf_counter()
    panel = sim_panel(args.days)
    t_data = time.perf_counter() - t
    strategy = load_strategy("quantum_momentum")
    w0, c0 = time.perf_counter(), time.process_time()
    ds = build_dataset(strategy, panel, BarrierSpec(2.0, 1.0, 48, 100))
    w1, c1 = time.perf_counter(), time.process_time()
    _model, rep = train_meta_model(ds, panel, cv_folds=args.folds, embargo_pct=0.01)
    w2, c2 = time.perf_counter(), time.process_time()
    oos = rep.oos
    print(f"machine: {platform.machine()} 2 cores / 24 GiB (shared with other jobs), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"data: {args.days} days x {len(SYMBOLS)} symbols of 1h bars = {sum(len(f) for f in panel.values())} bars "
          f"(simulator generation {t_data:.1f} s, not part of a retrain); {len(ds.y)} events, {len(ds.features)} "
          f"features; estimator chosen: {rep.estimator}; folds {args.folds}")
    print("| step | wall s | CPU s |")
    print("|---|---|---|")
    print(f"| dataset (signals, features, labels, weights) | {w1 - w0:.2f} | {c1 - c0:.2f} |")
    print(f"| purged CV of 2 candidates | {rep.elapsed_s['cv']:.2f} | |")
    print(f"| calibrated fit | {rep.elapsed_s['fit']:.2f} | |")
    print(f"| **retrain total** | **{w2 - w0:.2f}** | **{c2 - c0:.2f}** |")
    print()
    print("| OOS metric | value |")
    print("|---|---|")
    for key, value in oos.items():
        print(f"| {key} | {value:.4f} |")
    print("| cv_auc (mean) | " + ", ".join(f"{k} {np.mean(v):.3f}" for k, v in rep.cv_auc.items()) + " |")


if __name__ == "__main__":
    main()
