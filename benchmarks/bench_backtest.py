"""Benchmark: our full backtest (signals, portfolio, stats) vs vectorbt's Portfolio.from_signals on 1M and 5M 1m bars.

Run:  .venv/bin/python benchmarks/bench_backtest.py            (needs vectorbt: .venv/bin/pip install vectorbt,
                                                                 or `pip install -e '.[bench]'`)
      .venv/bin/python benchmarks/bench_backtest.py --sizes 1000000 --repeats 1
      .venv/bin/python benchmarks/bench_backtest.py --vbt-python /tmp/vbt-venv/bin/python

vectorbt is handed a tz-naive index (a tz-aware one sends it down slow pandas paths). vectorbt 1.2.0 imports and runs
in the project venv (numpy 2.4, pandas 3.1); the reference peer is a separate venv with the long-standing combination:
    python3 -m venv /tmp/vbt-venv
    /tmp/vbt-venv/bin/pip install "vectorbt==0.26.2" "numpy<2" "pandas<2.3" "numba<0.61" "plotly<6" psutil
The vectorbt worker imports only numpy, pandas, psutil and vectorbt, so it runs under that interpreter unchanged.

Each side runs in its own subprocess (same seeded synthetic OHLCV, generated identically) so peak RSS is measured per
side. Inside a worker, a small warm-up run loads numba caches / JIT-compiles first; then the timed runs follow.
Reported per side: best wall time of the repeats, candles/s, peak RSS of the process (ru_maxrss) and the peak RSS
increment over the pre-run baseline (sampled every 2 ms by a thread). Also: our kernel alone vs a bare numba loop on
the same targets, and a check that both engines end on the same equity (SMA crossover 20/100, long-only, no fees (the vectorbt equality test covers
fees),
fill at the next bar's open, all-in sizing).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FEE = 0.0  # a random walk bleeds to ~0 equity under 35k fee-paying trades; fees are covered by the equality test
FAST, SLOW = 20, 100


def make_frame(n: int, seed: int = 42, tz: str | None = "UTC"):  # noqa: ANN201 - pandas DataFrame
    """Seeded random-walk 1m OHLCV bars, generated in place into one (5 x n) block that becomes the frame's storage.

    No temporaries and no copy into the DataFrame, so data generation does not set the process's peak RSS (it is
    the same for both sides). Values are bit-identical to `normal(0, 8e-4)` / `uniform(1, 50)` draws.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    block = np.empty((5, n))
    open_, high, low, close, volume = block
    rng.standard_normal(out=close)
    close *= 0.0008
    np.cumsum(close, out=close)
    np.exp(close, out=close)
    close *= 30_000.0
    open_[0] = 30_000.0
    open_[1:] = close[:-1]
    np.maximum(open_, close, out=high)
    high *= 1.0004
    np.minimum(open_, close, out=low)
    low *= 0.9996
    rng.random(out=volume)
    volume *= 49.0
    volume += 1.0
    index = pd.date_range("2015-01-01", periods=n, freq="1min", tz=tz, name="ts")
    return pd.DataFrame(block.T, index=index, columns=["open", "high", "low", "close", "volume"], copy=False)


class PeakSampler:
    """Samples this process's RSS every 2 ms in a thread; `peak_delta` is the maximum above the start value."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.base = self._proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.002)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def peak_delta(self) -> int:
        """Bytes above the baseline at the highest sampled point."""
        return self.peak - self.base


def worker_ours(n: int, repeats: int) -> dict:
    """Time run_backtest (signals + kernel + metrics) on n bars; also the kernel alone and a bare numba loop."""
    import numpy as np

    from engine.backtest import kernel
    from engine.backtest.engine import run_backtest
    from engine.backtest.examples import SmaCross
    from engine.backtest.sizing import fixed_fraction
    from engine.config import BacktestConfig

    cfg = BacktestConfig(fee_taker=FEE, fee_maker=FEE, half_spread_bps=0.0, impact_coef=0.0)
    strat = SmaCross(fast=FAST, slow=SLOW, long_only=True)
    sizer = fixed_fraction(1.0)
    run_backtest(strat, {"BTC/USDT": make_frame(5_000, 1)}, cfg, sizer=sizer, lookahead=False)  # warm caches
    frame = make_frame(n)
    panel = {"BTC/USDT": frame}
    best, result, peak = float("inf"), None, 0
    for _ in range(repeats):
        result = None
        with PeakSampler() as sampler:
            t0 = time.perf_counter()
            result = run_backtest(strat, panel, cfg, sizer=sizer, lookahead=False)
            best = min(best, time.perf_counter() - t0)
        peak = max(peak, sampler.peak_delta)
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the untimed extra runs below
    assert result is not None
    t0 = time.perf_counter()
    run_backtest(strat, panel, cfg, sizer=sizer, lookahead=True)
    with_lookahead = time.perf_counter() - t0
    targets = result.targets.to_numpy()
    kernel_s = min(result.elapsed_s["kernel"], _time_kernel(result, targets, cfg))
    tgt1 = np.ascontiguousarray(targets[:, 0])
    open_, close = frame["open"].to_numpy(), frame["close"].to_numpy()
    kernel.bare_loop(tgt1[:100], open_[:100], close[:100], cfg.initial_capital, FEE)
    bare = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        bare_eq = kernel.bare_loop(tgt1, open_, close, cfg.initial_capital, FEE)
        bare = min(bare, time.perf_counter() - t0)
    return {"side": "ours", "bars": n, "seconds": best, "peak_delta_mb": peak / 2**20, "max_rss_mb": max_rss,
            "final_equity": float(result.equity.iloc[-1]), "trades": int(len(result.trades)),
            "sharpe": result.metrics["sharpe"], "kernel_s": kernel_s, "bare_loop_s": bare,
            "bare_final_equity": float(bare_eq[-1]), "with_lookahead_s": with_lookahead,
            "phases": {k: round(v, 4) for k, v in result.elapsed_s.items()}}


def _time_kernel(result, targets, cfg) -> float:  # noqa: ANN001
    """Best of 5 runs of the kernel alone on prepared arrays (the bare loop also gets best of 5)."""
    from engine.backtest.costs import market_arrays
    from engine.backtest.engine import run_kernel

    m = market_arrays(result.panel, cfg)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        run_kernel(targets, m, cfg)
        best = min(best, time.perf_counter() - t0)
    return best


def worker_vectorbt(n: int, repeats: int) -> dict:
    """Time vectorbt: MA crossover signals (vbt.MA), Portfolio.from_signals at next open, and the same stats."""
    import numpy as np
    import pandas as pd
    import vectorbt as vbt

    def run(frame: pd.DataFrame):  # noqa: ANN202
        close = frame["close"]
        fast = vbt.MA.run(close, FAST).ma
        slow = vbt.MA.run(close, SLOW).ma
        sig = (fast > slow).shift(1, fill_value=False).to_numpy()
        entries = pd.Series(sig, index=frame.index)
        pf = vbt.Portfolio.from_signals(close, entries, ~entries, price=frame["open"], size=np.inf, fees=FEE,
                                        init_cash=100_000.0, freq="1min")
        stats = {"total_return": pf.total_return(), "sharpe": pf.sharpe_ratio(), "max_dd": pf.max_drawdown(),
                 "trades": pf.trades.count(), "final": pf.final_value()}
        return pf, stats

    # vectorbt gets the same bars with a tz-naive index: with a tz-aware one it falls into slow pandas paths
    # (from_signals ~18x, sharpe_ratio ~70x slower at 200k bars), which would flatter us.
    run(make_frame(5_000, 1, tz=None))  # compile / load caches
    frame = make_frame(n, tz=None)  # generated tz-naive (tz_localize(None) would copy the frame)
    best, stats, peak = float("inf"), None, 0
    for _ in range(repeats):
        stats = None
        with PeakSampler() as sampler:
            t0 = time.perf_counter()
            _pf, stats = run(frame)
            best = min(best, time.perf_counter() - t0)
            del _pf
        peak = max(peak, sampler.peak_delta)
    assert stats is not None
    return {"side": "vectorbt", "bars": n, "seconds": best, "peak_delta_mb": peak / 2**20,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "final_equity": float(stats["final"]), "trades": int(stats["trades"]), "sharpe": float(stats["sharpe"]),
            "version": vbt.__version__}


def _spawn(side: str, n: int, repeats: int, python: str | None = None) -> dict:
    out = subprocess.run([python or sys.executable, __file__, "--worker", side, "--sizes", str(n), "--repeats", str(repeats)],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run both sides for each size in subprocesses and print a markdown results table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,5000000")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--worker", choices=("ours", "vectorbt"))
    ap.add_argument("--vbt-python", default=None, help="interpreter for the vectorbt side (e.g. a separate venv "
                    "with vectorbt 0.26 / pandas 2.2); default: this one")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.worker:
        fn = worker_ours if args.worker == "ours" else worker_vectorbt
        print(json.dumps(fn(sizes[0], args.repeats)))
        return
    rows = []
    for n in sizes:
        ours = _spawn("ours", n, args.repeats)
        theirs = _spawn("vectorbt", n, args.repeats, args.vbt_python)
        rows.append((n, ours, theirs))
        print(json.dumps({"ours": ours, "vectorbt": theirs}), file=sys.stderr)
    print(f"\nmachine: {os.cpu_count()} cores, date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"vectorbt {rows[0][2].get('version')}\n")
    print("| bars | ours s | vectorbt s | ours candles/s | vectorbt candles/s | speed ratio | kernel s | bare loop s "
          "| kernel/bare | ours peak RSS MB (delta) | vectorbt peak RSS MB (delta) | RSS ratio (total / delta) "
          "| final equity rel diff | trades ours/vbt | ours + lookahead s |")
    print("|" + "---|" * 15)
    for n, o, v in rows:
        print(f"| {n:,} | {o['seconds']:.3f} | {v['seconds']:.3f} | {n / o['seconds']:,.0f} | {n / v['seconds']:,.0f} "
              f"| {v['seconds'] / o['seconds']:.2f}x | {o['kernel_s']:.4f} | {o['bare_loop_s']:.4f} "
              f"| {o['kernel_s'] / o['bare_loop_s']:.2f}x | {o['max_rss_mb']:.0f} ({o['peak_delta_mb']:.0f}) "
              f"| {v['max_rss_mb']:.0f} ({v['peak_delta_mb']:.0f}) "
              f"| {o['max_rss_mb'] / v['max_rss_mb']:.2f} / {o['peak_delta_mb'] / max(v['peak_delta_mb'], 1e-9):.2f} "
              f"| {abs(o['final_equity'] / v['final_equity'] - 1):.1e} | {o['trades']}/{v['trades']} "
              f"| {o['with_lookahead_s']:.3f} |")


if __name__ == "__main__":
    main()
