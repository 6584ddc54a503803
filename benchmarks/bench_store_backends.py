"""SQLite vs PostgreSQL in one run (issue 18): candle ingest and the 1M-candle load on each backend, with pandas'
read_sql on the same PostgreSQL table as the peer; and a walk-forward sweep on a separate-process dask cluster of
1, 2 and 4 workers (`dask scheduler` + `dask worker`), against the same sweep run sequentially.

PostgreSQL is a throwaway local cluster (tests/support/postgres.py) on 127.0.0.1 with fsync off, i.e. the server's
CPU cost without disk waits, the same way the SQLite side runs with synchronous=NORMAL on a page-cached file. Each
measurement is the best of --repeat runs; machine load (1-minute load average) is printed with the results because
this machine is shared. Run: `.venv/bin/python benchmarks/bench_store_backends.py [--rows 1000000] [--repeat 2]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_ingest import make_rows  # noqa: E402
from engine.store import open_store  # noqa: E402
from engine.store.candles import load_candles, load_candles_dbapi, upsert_candles  # noqa: E402
from tests.support.postgres import start_server  # noqa: E402


def timed(fn) -> float:  # noqa: ANN001
    """Wall seconds of one call."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def best(fn, repeat: int) -> float:  # noqa: ANN001
    """Minimum wall seconds over `repeat` calls."""
    return min(timed(fn) for _ in range(repeat))


def store_rows(rows_n: int, repeat: int) -> list[tuple[str, float, float, str]]:
    """(measurement, sqlite s, postgresql s, peer note) rows."""
    import pandas as pd
    from sqlalchemy import create_engine

    rows = make_rows(rows_n)
    server = start_server()
    out = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            lite = open_store(Path(tmp) / "bench.db")
            pg_url = server.fresh_database()
            pg = open_store(pg_url)
            w_lite = timed(lambda: upsert_candles(lite, "b", "BTC/USDT", "1m", rows))
            w_pg = timed(lambda: upsert_candles(pg, "b", "BTC/USDT", "1m", rows))
            import engine.store.candles as candles_mod

            copy_min, candles_mod.PG_COPY_MIN_ROWS = candles_mod.PG_COPY_MIN_ROWS, 1 << 62
            try:  # the multi-row statement path every backend shares, into a fresh database, for comparison
                pg_stmt = open_store(server.fresh_database())
                w_stmt = timed(lambda: upsert_candles(pg_stmt, "b", "BTC/USDT", "1m", rows))
                pg_stmt.dispose()
            finally:
                candles_mod.PG_COPY_MIN_ROWS = copy_min
            out.append((f"ingest {rows_n:,} candles (upsert_candles)", w_lite, w_pg,
                        f"PostgreSQL binary COPY + one merge; its multi-row statement path: {w_stmt:.2f}s "
                        f"({w_stmt / w_pg:.1f}x slower)"))
            l_lite = best(lambda: load_candles(lite, "b", "BTC/USDT", "1m"), repeat)
            l_pg = best(lambda: load_candles(pg, "b", "BTC/USDT", "1m"), repeat)
            out.append((f"load {rows_n:,} candles (load_candles)", l_lite, l_pg, ""))
            g_pg = best(lambda: load_candles_dbapi(pg, "b", "BTC/USDT", "1m"), repeat)
            engine = create_engine(pg_url)
            sql = ("SELECT ts, open, high, low, close, volume FROM candles WHERE exchange = 'b' AND "
                   "symbol = 'BTC/USDT' AND timeframe = '1m' ORDER BY ts")
            peer = best(lambda: pd.read_sql(sql, engine, index_col="ts"), repeat)
            out.append(("load on PostgreSQL: generic DB-API path / pandas.read_sql (peer)", g_pg, peer,
                        f"ours {l_pg:.2f}s = {peer / l_pg:.1f}x faster than pandas.read_sql"))
            engine.dispose()
            lite.dispose()
            pg.dispose()
    finally:
        server.stop()
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sweep_rows(trials: int) -> list[tuple[str, float]]:
    """(setup, seconds) for one walk-forward sweep: sequential, then dask clusters of 1, 2 and 4 worker processes."""
    from distributed import Client

    from benchmarks.bench_walkforward import make_panel
    from engine.backtest.walkforward import run_walkforward
    from engine.config import BacktestConfig
    from engine.strategy.registry import strategy_class

    panel = make_panel()
    cls = strategy_class("macro_trend")
    cfg = BacktestConfig()
    # random search: the parameter sweep this benchmark has always timed (TPE, the default since session 7, runs
    # each window's study sequentially)
    out = [("sequential (this process)", timed(lambda: run_walkforward(cls, panel, cfg, n_trials=trials,
                                                                       n_windows=4, backend="sequential", seed=1,
                                                                       search="random")))]
    dask = Path(sys.executable).with_name("dask")
    for workers in (1, 2, 4):
        port = _free_port()
        addr = f"tcp://127.0.0.1:{port}"
        log = open(os.devnull, "wb")  # noqa: SIM115
        sched = subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], stdout=log, stderr=log)
        work = subprocess.Popen([str(dask), "worker", addr, "--nworkers", str(workers), "--nthreads", "1",
                                 "--no-dashboard", "--host", "127.0.0.1"], stdout=log, stderr=log, cwd=ROOT)
        try:
            with Client(addr, timeout="60s") as client:
                client.wait_for_workers(workers, timeout=120)
                # warm-up: each worker imports the engine and JIT-compiles the kernel once, outside the timing
                run_walkforward(cls, panel, cfg, n_trials=2 * workers, n_windows=4, backend="dask", n_jobs=workers,
                                seed=2, search="random")
                secs = timed(lambda: run_walkforward(cls, panel, cfg, n_trials=trials, n_windows=4, backend="dask",
                                                     n_jobs=workers, seed=1, search="random"))
            out.append((f"dask cluster, {workers} worker process(es)", secs))
        finally:
            for proc in (work, sched):
                proc.terminate()
                proc.wait(30)
    return out


def main() -> None:
    """Run both parts and print markdown tables with the machine and its load."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--no-sweep", action="store_true", help="only the store part")
    args = parser.parse_args()
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    print("\n| measurement | SQLite s | PostgreSQL s | note |\n|---|---|---|---|")
    for name, a, b, note in store_rows(args.rows, args.repeat):
        print(f"| {name} | {a:.2f} | {b:.2f} | {note} |")
    if args.no_sweep:
        print(f"\nload average at end {os.getloadavg()[0]:.1f}")
        return
    print(f"\n| walk-forward sweep, {args.trials} trials x 4 windows, 2y x 3 symbols of 1h bars | seconds |\n|---|---|")
    for name, secs in sweep_rows(args.trials):
        print(f"| {name} | {secs:.1f} |")
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
