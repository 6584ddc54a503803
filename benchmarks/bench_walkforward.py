"""Benchmark: a walk-forward optimisation on 2 years of 1h bars (3 symbols) on 2 cores, locally and on a dask cluster.

Run:  .venv/bin/python benchmarks/bench_walkforward.py [--strategy quantum_momentum] [--backends loky,sequential]
      .venv/bin/python benchmarks/bench_walkforward.py --params 250 --backends sequential,loky --dask 1,2,4

Goal (issue 17): 1,000 trials (250 parameter sets x 4 windows) in < 30 s on 2 cores, and near-linear speed-up on a
dask cluster of local worker processes (`dask scheduler` + `dask worker --nworkers N`, started here, warmed up with
a small sweep first). Every dask run is checked equal to the sequential run (windows table and OOS equity).

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


def dask_sweep(cls: type, panel: dict, workers: int, params: int, windows: int) -> tuple[float, object]:
    """(wall s, result) of one sweep on a fresh local dask cluster of `workers` single-threaded worker processes."""
    import socket
    import subprocess

    from distributed import Client

    from engine.backtest.walkforward import run_walkforward
    from engine.config import BacktestConfig

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    addr = f"tcp://127.0.0.1:{port}"
    dask = Path(sys.executable).with_name("dask")
    log = open(os.devnull, "wb")  # noqa: SIM115
    sched = subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                             stdout=log, stderr=log)
    work = subprocess.Popen([str(dask), "worker", addr, "--nworkers", str(workers), "--nthreads", "1",
                             "--no-dashboard", "--host", "127.0.0.1"], stdout=log, stderr=log, cwd=ROOT)
    try:
        with Client(addr, timeout="60s") as client:
            client.wait_for_workers(workers, timeout=180)
            # warm-up: each worker imports the engine and loads the kernels once, outside the timing
            run_walkforward(cls, panel, BacktestConfig(), n_trials=2 * workers, n_windows=windows, backend="dask",
                            n_jobs=workers, seed=2, timeframe="1h", search="random")
            t0 = time.perf_counter()
            wf = run_walkforward(cls, panel, BacktestConfig(), n_trials=params, n_windows=windows, backend="dask",
                                 n_jobs=workers, seed=1, timeframe="1h", search="random")
            return time.perf_counter() - t0, wf
    finally:
        for proc in (work, sched):
            proc.terminate()
            proc.wait(30)


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
    ap.add_argument("--dask", default="", help="worker counts of local dask clusters to time, e.g. 1,2,4")
    args = ap.parse_args()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    cls = strategy_class_for(args.strategy)
    panel = make_panel()
    n_bars = len(next(iter(panel.values())))
    rows = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(Path(tmp) / "state.db")
            t0 = time.perf_counter()
            # random search: the N-sets-in-every-window sweep this benchmark times (TPE is the default since session 7)
            wf = run_walkforward(cls, panel, BacktestConfig(), n_trials=args.params, n_windows=args.windows,
                                 store=store, n_jobs=args.jobs, backend=backend, timeframe="1h", seed=1,
                                 search="random")
            wall = time.perf_counter() - t0
            store.dispose()
        trials = args.params * args.windows
        rows.append((backend, args.jobs, trials, wall, wf))
    for workers in [int(w) for w in args.dask.split(",") if w]:
        wall, wf = dask_sweep(cls, panel, workers, args.params, args.windows)
        rows.append((f"dask cluster, {workers} worker process(es)", workers, args.params * args.windows, wall, wf))
    ref = next((wf for backend, _j, _t, _w, wf in rows if backend == "sequential"), None)
    print(f"\nmachine: {os.cpu_count()} cores, date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"strategy {args.strategy}, {n_bars:,} 1h bars x {len(panel)} symbols, load before {load}, after "
          f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}\n")
    print("| backend | jobs | trials | wall s | trials/s | goal < 30 s | OOS Sharpe | DSR | n_trials | PBO | = sequential |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for backend, jobs, trials, wall, wf in rows:
        m = wf.metrics
        same = "—" if ref is None or wf is ref else str(ref.table.equals(wf.table) and ref.oos_equity.equals(wf.oos_equity))
        print(f"| {backend} | {jobs} | {trials} | {wall:.1f} | {trials / wall:.1f} | "
              f"{'met' if wall < 30 else 'MISSED'} | {m['sharpe']:.2f} | {m['dsr']:.3f} | {m['n_trials']} | "
              f"{m['pbo']:.2f} | {same} |")


if __name__ == "__main__":
    main()
