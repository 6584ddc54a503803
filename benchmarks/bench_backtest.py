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

Each side runs in its own subprocess (same seeded synthetic OHLCV, generated identically and without temporaries)
so peak RSS is measured per side. Inside a worker, a small warm-up run loads numba caches / JIT-compiles first; then
one run under a thread that samples RSS every 2 ms (peak increment over the pre-run baseline), then `--repeats`
unsampled timed runs. Reported per side: best wall and best CPU time (this thread's, `time.thread_time`; the steadier
measure on a shared machine), candles/s on CPU time, peak RSS of the process (ru_maxrss, read before our side's extra
lookahead and kernel runs). Ours runs `run_backtest` with the lookahead check OFF (vectorbt has none); a separate
untimed-for-the-ratio run with it ON is reported too. Our worker reports which kernel it ran (`aot`: the ahead-of-time
compiled extension built by `make` / `python -m engine.backtest.aot`, in which case the process never imports numba;
`jit`: numba's JIT fallback) and whether numba was loaded. A third subprocess, whose memory is not reported, times
`run_kernel` (change flags, capacity, kernel) on the AOT and on the JIT kernel against a bare numba loop (JIT, and its
AOT copy) on the same targets (best of 7 each). Finally a check that both engines end on the same equity (SMA crossover
20/100, long-only, no fees (the vectorbt equality test covers fees), fill at the next bar's open, all-in sizing).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

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


def measure(fn: Callable[[], object], repeats: int) -> tuple[float, float, int, object]:
    """Run fn once under the RSS sampler (peak increment), then `repeats` times unsampled for timing.

    Returns (best wall s, best CPU s of this thread, peak RSS increment in bytes, last result). CPU time is the
    steadier measure on a shared machine; neither side runs work on other threads here. Garbage from the previous
    run is collected before each run (untimed): vectorbt's portfolio holds reference cycles, and uncollected
    portfolios of earlier repeats would otherwise inflate its peak RSS.
    """
    gc.collect()
    with PeakSampler() as sampler:
        result = fn()
    del result
    wall = cpu = float("inf")
    for _ in range(repeats):
        result = None
        gc.collect()
        t0, c0 = time.perf_counter(), time.thread_time()
        result = fn()
        cpu = min(cpu, time.thread_time() - c0)
        wall = min(wall, time.perf_counter() - t0)
    return wall, cpu, sampler.peak_delta, result


def best_of(fn: Callable[[], object], repeats: int = 7) -> tuple[float, float]:
    """(best wall s, best thread CPU s) of `repeats` calls."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        cpu = min(cpu, time.thread_time() - c0)
        wall = min(wall, time.perf_counter() - t0)
    return wall, cpu


def worker_ours(n: int, repeats: int) -> dict:
    """Time run_backtest (signals + kernel + metrics) on n bars, with its peak RSS; report the kernel it used."""
    from engine.backtest import kernels
    from engine.backtest.engine import run_backtest
    from tests.support.strategies.sma_cross import SmaCross
    from engine.backtest.sizing import fixed_fraction
    from engine.config import BacktestConfig

    cfg = BacktestConfig(fee_taker=FEE, fee_maker=FEE, half_spread_bps=0.0, impact_coef=0.0)
    strat = SmaCross(fast=FAST, slow=SLOW, long_only=True)
    sizer = fixed_fraction(1.0)
    run_backtest(strat, {"BTC/USDT": make_frame(5_000, 1)}, cfg, sizer=sizer, lookahead=False)  # warm caches
    frame = make_frame(n)
    panel = {"BTC/USDT": frame}
    best, cpu, peak, result = measure(lambda: run_backtest(strat, panel, cfg, sizer=sizer, lookahead=False), repeats)
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the untimed extra runs below
    numba_loaded = "numba" in sys.modules
    t0 = time.perf_counter()
    run_backtest(strat, panel, cfg, sizer=sizer, lookahead=True)
    with_lookahead = time.perf_counter() - t0
    return {"side": "ours", "bars": n, "seconds": best, "cpu_s": cpu, "peak_delta_mb": peak / 2**20,
            "max_rss_mb": max_rss, "final_equity": float(result.equity.iloc[-1]), "trades": int(len(result.trades)),
            "sharpe": result.metrics["sharpe"], "kernel_impl": kernels.implementation(), "numba_loaded": numba_loaded,
            "with_lookahead_s": with_lookahead, "phases": {k: round(v, 4) for k, v in result.elapsed_s.items()}}


def worker_kernel(n: int, repeats: int) -> dict:
    """`run_kernel` on the AOT and the JIT kernel vs a bare numba loop (JIT and AOT) on the same targets, best of 7.

    Its own subprocess: it imports numba for the JIT side, which must not count in the backtest's RSS.
    """
    import numpy as np

    from engine.backtest import kernel, kernels
    from engine.backtest.costs import market_arrays
    from engine.backtest.engine import Barriers, run_backtest, run_kernel
    from engine.strategy.stops import Stops, stop_arrays
    from tests.support.strategies.sma_cross import SmaCross
    from engine.backtest.sizing import fixed_fraction
    from engine.config import BacktestConfig

    cfg = BacktestConfig(fee_taker=FEE, fee_maker=FEE, half_spread_bps=0.0, impact_coef=0.0)
    frame = make_frame(n)
    panel = {"BTC/USDT": frame}
    result = run_backtest(SmaCross(fast=FAST, slow=SLOW, long_only=True), panel, cfg, sizer=fixed_fraction(1.0),
                          lookahead=False)
    targets = result.targets.to_numpy()
    m = market_arrays(panel, cfg)
    tgt1 = np.ascontiguousarray(targets[:, 0])
    open_, close = frame["open"].to_numpy(), frame["close"].to_numpy()
    out: dict = {"side": "kernel", "bars": n}
    impls = ["jit"] if kernels.aot_module() is None else ["aot", "jit"]
    fixed_barriers = Barriers(stop_loss=0.002, take_profit=0.004)
    atr_arrays = stop_arrays(Stops(stop_loss=3.0, take_profit=6.0, scale="atr", window=14), panel, m.index,
                             m.symbols)
    equities = {}
    for impl in impls:
        if impl == "jit":  # switch the dispatch to numba's JIT (compiled or loaded from cache by the first call)
            os.environ["QUANTDESK_KERNEL"] = "jit"
            kernels.reset()
        assert kernels.implementation() == impl
        equities[impl] = run_kernel(targets, m, cfg)[0]
        out[f"kernel_{impl}_s"], out[f"kernel_{impl}_cpu_s"] = best_of(lambda: run_kernel(targets, m, cfg))
        # with barriers: a fixed stop / take-profit, and ATR-scaled per-trade fractions (a strategy's Stops)
        out[f"kernel_{impl}_barriers_s"], out[f"kernel_{impl}_barriers_cpu_s"] = best_of(
            lambda: run_kernel(targets, m, cfg, fixed_barriers))
        out[f"kernel_{impl}_atr_stops_s"], out[f"kernel_{impl}_atr_stops_cpu_s"] = best_of(
            lambda: run_kernel(targets, m, cfg, None, atr_arrays))
    bare = {"jit": kernel.bare_loop}
    if "aot" in impls:
        bare["aot"] = kernels.fresh_aot().bare_loop
    for impl, fn in bare.items():
        eq = fn(tgt1, open_, close, cfg.initial_capital, FEE)
        out[f"bare_{impl}_s"], out[f"bare_{impl}_cpu_s"] = best_of(lambda: fn(tgt1, open_, close, cfg.initial_capital,
                                                                             FEE))
        out[f"bare_{impl}_final_equity"] = float(eq[-1])
    out["kernel_used"] = impls[0]
    out["aot_equals_jit"] = bool(np.array_equal(equities[impls[0]], equities["jit"]))
    return out


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
    best, cpu, peak, stats = measure(lambda: run(frame)[1], repeats)  # the portfolio is dropped after each run
    return {"side": "vectorbt", "bars": n, "seconds": best, "cpu_s": cpu, "peak_delta_mb": peak / 2**20,
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
    ap.add_argument("--worker", choices=("ours", "kernel", "vectorbt"))
    ap.add_argument("--vbt-python", default=None, help="interpreter for the vectorbt side (e.g. a separate venv "
                    "with vectorbt 0.26 / pandas 2.2); default: this one")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.worker:
        fn = {"ours": worker_ours, "kernel": worker_kernel, "vectorbt": worker_vectorbt}[args.worker]
        print(json.dumps(fn(sizes[0], args.repeats)))
        return
    rows = []
    for n in sizes:
        ours = _spawn("ours", n, args.repeats)
        ours.update({k: v for k, v in _spawn("kernel", n, args.repeats).items() if k not in ("side", "bars")})
        theirs = _spawn("vectorbt", n, args.repeats, args.vbt_python)
        rows.append((n, ours, theirs))
        print(json.dumps({"ours": ours, "vectorbt": theirs}), file=sys.stderr)
    print(f"\nmachine: {os.cpu_count()} cores, date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"vectorbt {rows[0][2].get('version')}\n")
    print("| bars | kernel (numba loaded) | ours wall s / CPU s | vectorbt wall s / CPU s | ours candles/s (CPU) "
          "| vectorbt candles/s (CPU) | speed ratio wall / CPU | ours peak RSS MB (delta) "
          "| vectorbt peak RSS MB (delta) | RSS ratio (total / delta) | final equity rel diff | trades ours/vbt "
          "| ours + lookahead s |")
    print("|" + "---|" * 13)
    for n, o, v in rows:
        print(f"| {n:,} | {o['kernel_impl']} ({'yes' if o['numba_loaded'] else 'no'}) "
              f"| {o['seconds']:.3f} / {o['cpu_s']:.3f} | {v['seconds']:.3f} / {v['cpu_s']:.3f} "
              f"| {n / o['cpu_s']:,.0f} | {n / v['cpu_s']:,.0f} "
              f"| {v['seconds'] / o['seconds']:.2f}x / {v['cpu_s'] / o['cpu_s']:.2f}x "
              f"| {o['max_rss_mb']:.0f} ({o['peak_delta_mb']:.0f}) | {v['max_rss_mb']:.0f} ({v['peak_delta_mb']:.0f}) "
              f"| {o['max_rss_mb'] / v['max_rss_mb']:.2f} / {o['peak_delta_mb'] / max(v['peak_delta_mb'], 1e-9):.2f} "
              f"| {abs(o['final_equity'] / v['final_equity'] - 1):.1e} | {o['trades']}/{v['trades']} "
              f"| {o['with_lookahead_s']:.3f} |")
    print("\nrun_kernel vs a bare loop on the same targets (best of 7; CPU s, wall s in parentheses); the goal is the "
          "kernel used (first row) within 3x of the bare numba (JIT) loop\n")
    print("| bars | kernel | kernel CPU s (wall) | bare JIT loop CPU s (wall) | kernel / bare JIT CPU (wall) "
          "| bare AOT loop CPU s | kernel / bare AOT CPU | same equity as JIT kernel |")
    print("|" + "---|" * 8)
    for n, o, _ in rows:
        for impl in (["aot", "jit"] if "kernel_aot_s" in o else ["jit"]):
            k_cpu, k_wall = o[f"kernel_{impl}_cpu_s"], o[f"kernel_{impl}_s"]
            aot_bare = (f"| {o['bare_aot_cpu_s']:.4f} | {k_cpu / o['bare_aot_cpu_s']:.2f}x" if "bare_aot_s" in o
                        else "| - | -")
            print(f"| {n:,} | {impl}{' (used)' if impl == o['kernel_used'] else ''} | {k_cpu:.4f} ({k_wall:.4f}) "
                  f"| {o['bare_jit_cpu_s']:.4f} ({o['bare_jit_s']:.4f}) "
                  f"| {k_cpu / o['bare_jit_cpu_s']:.2f}x ({k_wall / o['bare_jit_s']:.2f}x) {aot_bare} "
                  f"| {'yes' if o['aot_equals_jit'] else 'NO'} |")

if __name__ == "__main__":
    main()
