"""Benchmark: the hot store queries at 1k and 1M rows per series, so growth shows as a number, not a surprise.

Run:  .venv/bin/python benchmarks/bench_store_queries.py            (builds a temporary state.db; about a minute)
      .venv/bin/python benchmarks/bench_store_queries.py --sizes 1000 100000

For each size, three candle series of that many 1m bars (plus as many equity snapshots per scope, at most 200k) are
written, then each query runs 50 times and the median is printed: `candle_span` (two primary-key seeks, what pulls
use), `candle_bounds` (adds COUNT(*), which reads the whole series) and the latest equity snapshot of a scope. A flat
query shows about the same time at both sizes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.store.db import open_store  # noqa: E402
from engine.store.market_repo import candle_bounds, candle_span  # noqa: E402

T0 = 1_700_000_000_000
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def _fill(store, n: int) -> None:
    for sym in SYMBOLS:
        for start in range(0, n, 200_000):
            store.executemany("INSERT INTO candles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                              (("sim", sym, "1m", T0 + i * 60_000, 1.0, 1.0, 1.0, 1.0, 1.0)
                               for i in range(start, min(n, start + 200_000))))
    store.executemany("INSERT INTO equity_snapshots (ts, scope, equity, cash, gross_exposure, net_exposure, "
                      "unrealized_pnl, realized_pnl) VALUES (?, ?, 1, 1, 0, 0, 0, 0)",
                      ((T0 + i * 10_000, scope) for scope in ("portfolio", "qm") for i in range(min(n, 200_000))))


def _median_ms(fn: Callable[[], object], repeats: int = 50) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Build stores of each size and print the median time of each hot query."""
    parser = argparse.ArgumentParser(prog="bench_store_queries")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 1_000_000])
    args = parser.parse_args(argv)
    queries: dict[str, Callable] = {
        "candle_span (pulls)": lambda s: candle_span(s, "sim", "BTC/USDT", "1m"),
        "candle_bounds (with COUNT)": lambda s: candle_bounds(s, "sim", "BTC/USDT", "1m"),
    }
    sql = {
        "latest equity of a scope": "SELECT * FROM equity_snapshots WHERE scope = 'qm' ORDER BY ts DESC LIMIT 1",
    }
    results: dict[str, dict[int, float]] = {}
    with tempfile.TemporaryDirectory(prefix="qd-bench-store-") as tmp:
        for n in args.sizes:
            store = open_store(Path(tmp) / f"state-{n}.db")
            _fill(store, n)
            for name, fn in queries.items():
                results.setdefault(name, {})[n] = _median_ms(lambda: fn(store))
            for name, text in sql.items():
                def run(text: str = text) -> object:
                    with store.raw() as conn:
                        return conn.execute(text).fetchall()
                results.setdefault(name, {})[n] = _median_ms(run)
            store.dispose()
    print(f"{'query':<28}" + "".join(f"{f'{n:,} rows/series':>24}" for n in args.sizes))
    for name, by_size in results.items():
        print(f"{name:<28}" + "".join(f"{by_size[n]:>21.3f} ms" for n in args.sizes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
