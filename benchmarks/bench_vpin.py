"""VPIN throughput (trades/s): batch and live incremental vs the textbook reference loop, on real and synthetic tapes.

Run: .venv/bin/python benchmarks/bench_vpin.py [--synthetic 1000000]
Real tapes come from ../shared/data/trades (skipped when absent). Agreement is checked in the same run: batch vs
reference (max abs VPIN difference) and live vs batch (must be exactly equal).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from engine.risk.vpin import VpinTracker, buckets_frame, vpin_batch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the textbook oracle lives with the tests
from tests.support.vpin_reference import reference_vpin  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "trades"


def _best(fn, repeats: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench(name: str, trades: pd.DataFrame, n_buckets: int = 200, window: int = 50, cdf_window: int = 500,
          chunk: int = 100, repeats: int = 3) -> dict:
    """Time batch, live (chunks of `chunk` trades) and reference on one tape; check agreement."""
    V = float(trades["amount"].sum()) / n_buckets
    amounts, sides = trades["amount"].to_numpy(), trades["side"].to_numpy()
    t_batch = _best(lambda: vpin_batch(trades, V, window, cdf_window), repeats)
    t_ref = _best(lambda: reference_vpin(amounts, sides, V, window), repeats)

    def live() -> list:
        tr = VpinTracker(V, window, cdf_window)
        out = []
        for i in range(0, len(trades), chunk):
            out += tr.update(trades.iloc[i:i + chunk])
        return out

    t_live = _best(live, 1)
    batch = vpin_batch(trades, V, window, cdf_window)
    ref = reference_vpin(amounts, sides, V, window)
    n = min(len(batch), len(ref))
    diff = float(np.nanmax(np.abs(batch["vpin"].to_numpy()[:n] - ref["vpin"].to_numpy()[:n]))) if n > window else 0.0
    equal = bool(np.array_equal(buckets_frame(live())["vpin"].to_numpy(), batch["vpin"].to_numpy(), equal_nan=True))
    n_tr = len(trades)
    return {"tape": name, "trades": n_tr, "buckets": len(batch), "batch_tps": n_tr / t_batch,
            "live_tps": n_tr / t_live, "reference_tps": n_tr / t_ref, "batch_vs_ref": t_ref / t_batch,
            "max_abs_diff": diff, "live_equals_batch": equal}


def main() -> None:
    """Print a markdown table of throughputs and agreement."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--synthetic", type=int, default=1_000_000)
    args = ap.parse_args()
    rows = []
    if SHARED.is_dir():
        for path in sorted(SHARED.glob("*.csv")):
            tape = pd.read_csv(path)
            rows.append(bench(path.stem, tape, n_buckets=max(60, len(tape) // 100), window=20, cdf_window=100))
    rng = np.random.default_rng(0)
    n = args.synthetic
    synth = pd.DataFrame({"timestamp": np.cumsum(rng.integers(0, 50, n)), "amount": rng.lognormal(-1, 1.2, n),
                          "side": np.where(rng.random(n) < 0.5, "buy", "sell")})
    rows.append(bench(f"synthetic_{n}", synth, n_buckets=n // 200, repeats=1))
    print(f"machine: {platform.machine()} 2 cores / 24 GiB (shared), python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| tape | trades | buckets | batch trades/s | live trades/s (100/update) | reference trades/s | "
          "batch / reference | max abs VPIN diff | live == batch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tape']} | {r['trades']} | {r['buckets']} | {r['batch_tps']:,.0f} | {r['live_tps']:,.0f} | "
              f"{r['reference_tps']:,.0f} | {r['batch_vs_ref']:.1f}x | {r['max_abs_diff']:.1e} | "
              f"{r['live_equals_batch']} |")


if __name__ == "__main__":
    main()
