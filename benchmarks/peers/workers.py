"""One process per peer for bench_peers.py: `python workers.py PEER BARS SYMBOLS REPEATS [OPTION]` prints one JSON line.

Each peer runs the same strategy on the same bars: SMA 20/100 crossover, long-only, all-in, no fees, decided on a
bar's close and filled at the next bar's open (vectorbt: `price=open` on the shifted signal; nautilus and jesse: their
own order model, reported as is). Bars are the seeded random walk of bench_backtest.make_frame (symbol j uses seed
42 + j), regenerated in each process. The workers import only what their venv has: numpy and pandas everywhere, plus
the peer itself; `ours`, `pandas` and `numba` run in the project's .venv. Times are the best of REPEATS runs after a
warm-up run (JIT compilation and caches excluded); CPU time is this thread's (`time.thread_time`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # bench_backtest.make_frame (imports only numpy / pandas when called)

FAST, SLOW, INIT = 20, 100, 100_000.0


def frames(n: int, k: int, tz: str | None) -> list:
    """k seeded random-walk 1m OHLCV frames of n bars."""
    from bench_backtest import make_frame

    return [make_frame(n, 42 + j, tz=tz) for j in range(k)]


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """(best wall s, best CPU s, last result) of `repeats` calls after one warm-up call."""
    import gc

    result = fn()
    wall = cpu = float("inf")
    for _ in range(repeats):
        result = None
        gc.collect()
        t0, c0 = time.perf_counter(), time.thread_time()
        result = fn()
        cpu = min(cpu, time.thread_time() - c0)
        wall = min(wall, time.perf_counter() - t0)
    return wall, cpu, result


def worker_ours(n: int, k: int, repeats: int, option: str) -> dict:
    """run_backtest (signals with engine.features.fast, AOT kernel, metrics); per symbol, or one k-symbol panel."""
    from dataclasses import dataclass

    import numpy as np
    import pandas as pd

    from engine.backtest import kernels
    from engine.backtest.engine import run_backtest
    from engine.backtest.sizing import fixed_fraction
    from engine.config import BacktestConfig
    from engine.features import fast
    from engine.strategy.base import Strategy, panel_field, panel_index

    @dataclass(frozen=True)
    class FastSmaConfig:
        fast: int = FAST
        slow: int = SLOW

    class FastSma(Strategy):
        """SMA crossover as a strategy author writes it with the compiled helpers: long while fast > slow."""

        name = "sma_fast"
        Config = FastSmaConfig

        def signals(self, panel):  # noqa: ANN001, ANN202
            index = panel_index(panel)
            close = panel_field(panel, "close", index).to_numpy(dtype="float64")
            fast_ma, slow_ma = fast.rolling_means(close, (self.config.fast, self.config.slow))
            with np.errstate(invalid="ignore"):
                side = (fast_ma > slow_ma).view(np.int8)
            return pd.DataFrame(side, index=index, columns=list(panel), copy=False)

    cfg = BacktestConfig(fee_taker=0.0, fee_maker=0.0, half_spread_bps=0.0, impact_coef=0.0,
                         initial_capital=INIT)
    strat = FastSma()
    data = frames(n, k, "UTC")
    names = [f"S{j}/USDT" for j in range(k)]
    if option == "panel":  # one portfolio over k symbols, 1/k of equity each
        panel = dict(zip(names, data))
        sizer = fixed_fraction(1.0 / k)
        wall, cpu, res = timed(lambda: run_backtest(strat, panel, cfg, sizer=sizer, lookahead=False), repeats)
        return {"final_equity": [float(res.equity.iloc[-1])], "trades": [int(len(res.trades))], "wall_s": wall,
                "cpu_s": cpu, "phases": {p: round(v, 4) for p, v in res.elapsed_s.items()},
                "kernel": kernels.implementation(), "helpers": fast.implementation(),
                "numba_loaded": "numba" in sys.modules}
    sizer = fixed_fraction(1.0)
    panels = [{names[j]: data[j]} for j in range(k)]
    if option == "profile":
        return _profile(lambda: [run_backtest(strat, p, cfg, sizer=sizer, lookahead=False) for p in panels], repeats)
    wall, cpu, results = timed(lambda: [run_backtest(strat, p, cfg, sizer=sizer, lookahead=False) for p in panels],
                               repeats)
    phases: dict[str, float] = {}
    for r in results:
        for p, v in r.elapsed_s.items():
            phases[p] = round(phases.get(p, 0.0) + v, 4)
    return {"final_equity": [float(r.equity.iloc[-1]) for r in results], "trades": [int(len(r.trades)) for r in results],
            "sharpe": [float(r.metrics["sharpe"]) for r in results], "wall_s": wall, "cpu_s": cpu, "phases": phases,
            "kernel": kernels.implementation(), "helpers": fast.implementation(),
            "numba_loaded": "numba" in sys.modules}


PHASES = [  # (label, file suffix, function): where our full backtest spends its CPU time
    ("signals: the strategy (two rolling means in one pass, compare)", "workers.py", "signals"),
    ("validation, sizer, targets, change flags (one AOT pass: side_targets)", "kernels.py", "side_targets"),
    ("", "inputs.py", "clean_signals"),  # the separate steps, when the pass does not apply
    ("", "sizing.py", "size"),
    ("", "engine.py", "target_array"),
    ("market arrays (OHLC to contiguous arrays)", "costs.py", "market_arrays"),
    ("kernel (capacity, AOT simulate)", "engine.py", "run_kernel"),
    ("fills and trades frames", "engine.py", "_fills_frame"),
    ("", "engine.py", "_trades_frame"),
    ("metrics (AOT curve stats, PSR, trade stats)", "metrics.py", "compute_metrics"),
    ("", "metrics.py", "trade_stats"),
    ("result frames, deflation fields", "engine.py", "_deflate"),
]


def _profile(fn: Callable[[], Any], repeats: int) -> dict:
    """CPU time per phase of fn (cProfile on this thread's clock, averaged over `repeats` runs after a warm-up)."""
    import cProfile
    import pstats

    fn()
    prof = cProfile.Profile(timer=time.thread_time)
    c0 = time.thread_time()
    for _ in range(repeats):
        prof.enable()
        fn()
        prof.disable()
    total = (time.thread_time() - c0) / repeats
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    out: dict[str, float] = {}
    label = ""
    for lab, suffix, func in PHASES:
        label = lab or label
        cum = sum(v[3] for (file, _line, name), v in stats.items() if name == func and file.endswith(suffix))
        out[label] = round(out.get(label, 0.0) + cum / repeats, 5)
    out["other (Python glue, pandas construction)"] = round(max(total - sum(out.values()), 0.0), 5)
    return {"profile": out, "cpu_s": total, "note": "cProfile adds overhead to each Python call"}


def worker_vectorbt(n: int, k: int, repeats: int, option: str) -> dict:
    """vectorbt: vbt.MA signals, Portfolio.from_signals at the next open, the same stats; engine = option."""
    import numpy as np
    import pandas as pd
    import vectorbt as vbt
    from vectorbt import _engine

    vbt.settings["engine"] = option
    data = frames(n, k, None)  # a tz-aware index sends vectorbt down slow pandas paths
    close = pd.concat([f["close"] for f in data], axis=1, keys=range(k))
    open_ = pd.concat([f["open"] for f in data], axis=1, keys=range(k))

    def run() -> dict:
        fast_ma = vbt.MA.run(close, FAST, engine=option).ma
        slow_ma = vbt.MA.run(close, SLOW, engine=option).ma
        sig = (fast_ma.to_numpy() > slow_ma.to_numpy())
        entries = np.zeros_like(sig)
        entries[1:] = sig[:-1]  # decided on the close, filled at the next open
        entries = pd.DataFrame(entries, index=close.index, columns=close.columns)
        pf = vbt.Portfolio.from_signals(close, entries, ~entries, price=open_, size=np.inf, fees=0.0,
                                        init_cash=INIT, freq="1min", engine=option)
        final = pf.final_value()
        return {"final_equity": [float(v) for v in np.atleast_1d(final)],
                "trades": [int(v) for v in np.atleast_1d(pf.trades.count())],
                "sharpe": [float(v) for v in np.atleast_1d(pf.sharpe_ratio())],
                "max_dd": [float(v) for v in np.atleast_1d(pf.max_drawdown())],
                "total_return": [float(v) for v in np.atleast_1d(pf.total_return())]}

    wall, cpu, res = timed(run, repeats)
    return {**res, "wall_s": wall, "cpu_s": cpu, "engine": option, "rust_available": bool(_engine.is_rust_available()),
            "version": vbt.__version__}


def _signals_numpy(close):  # noqa: ANN001, ANN202
    import numpy as np
    import pandas as pd

    s = pd.Series(close)
    with np.errstate(invalid="ignore"):
        return (s.rolling(FAST).mean() > s.rolling(SLOW).mean()).to_numpy()


def _curve_numpy(sig, open_, close):  # noqa: ANN001, ANN202
    """All-in next-open equity by vectorised arithmetic: per-bar growth factors, then one cumulative product."""
    import numpy as np

    held = np.zeros(len(sig), dtype=bool)
    held[1:] = sig[:-1]  # held during bar t when the signal was on at t-1's close
    prev_held = np.zeros_like(held)
    prev_held[1:] = held[:-1]
    prev_close = np.empty_like(close)
    prev_close[0] = close[0]
    prev_close[1:] = close[:-1]
    growth = np.ones_like(close)
    enter = held & ~prev_held
    stay = held & prev_held
    leave = ~held & prev_held
    growth[enter] = close[enter] / open_[enter]
    growth[stay] = close[stay] / prev_close[stay]
    growth[leave] = open_[leave] / prev_close[leave]
    equity = INIT * np.cumprod(growth)
    return equity, int(enter.sum())


def _stats_numpy(equity):  # noqa: ANN001, ANN202
    import numpy as np

    r = equity[1:] / equity[:-1] - 1.0
    sharpe = r.mean() / r.std(ddof=1) * np.sqrt(525_600) if r.std() > 0 else 0.0
    dd = (equity / np.maximum.accumulate(equity) - 1.0).min()
    return float(sharpe), float(dd)


def worker_pandas(n: int, k: int, repeats: int, option: str) -> dict:
    """pandas rolling means for the signals, numpy arithmetic for the all-in next-open portfolio and stats."""
    data = [(f["open"].to_numpy(), f["close"].to_numpy()) for f in frames(n, k, "UTC")]

    def run() -> dict:
        out: dict = {"final_equity": [], "trades": [], "sharpe": []}
        for open_, close in data:
            equity, trades = _curve_numpy(_signals_numpy(close), open_, close)
            out["final_equity"].append(float(equity[-1]))
            out["trades"].append(trades)
            out["sharpe"].append(_stats_numpy(equity)[0])
        return out

    wall, cpu, res = timed(run, repeats)
    return {**res, "wall_s": wall, "cpu_s": cpu}


def worker_numba(n: int, k: int, repeats: int, option: str) -> dict:
    """A bare numba loop: running sums for both SMAs, the all-in next-open position and the equity stats in one pass."""
    import numpy as np
    from numba import njit

    @njit(cache=False)
    def one(open_, close, fast_w, slow_w, init):  # noqa: ANN001, ANN202
        n = len(close)
        s_fast = s_slow = 0.0
        cash, qty, sig_prev = init, 0.0, False
        trades = 0
        prev_eq = init
        m = m2 = 0.0
        peak, max_dd = init, 0.0
        for t in range(n):
            if sig_prev and qty == 0.0:  # enter at this open
                qty = cash / open_[t]
                cash = 0.0
                trades += 1
            elif not sig_prev and qty > 0.0:  # exit at this open
                cash = qty * open_[t]
                qty = 0.0
            eq = cash + qty * close[t]
            if t > 0:
                r = eq / prev_eq - 1.0
                d = r - m
                m += d / t
                m2 += d * (r - m)
            prev_eq = eq
            peak = max(peak, eq)
            max_dd = min(max_dd, eq / peak - 1.0)
            s_fast += close[t]
            s_slow += close[t]
            if t >= fast_w:
                s_fast -= close[t - fast_w]
            if t >= slow_w:
                s_slow -= close[t - slow_w]
            sig_prev = t >= slow_w - 1 and s_fast / fast_w > s_slow / slow_w
        sd = np.sqrt(m2 / (n - 2)) if n > 2 else 0.0
        return eq, trades, (m / sd * np.sqrt(525_600.0) if sd > 0 else 0.0), max_dd

    data = [(f["open"].to_numpy(), f["close"].to_numpy()) for f in frames(n, k, "UTC")]

    def run() -> dict:
        out: dict = {"final_equity": [], "trades": [], "sharpe": []}
        for open_, close in data:
            eq, trades, sharpe, _ = one(open_, close, FAST, SLOW, INIT)
            out["final_equity"].append(float(eq))
            out["trades"].append(int(trades))
            out["sharpe"].append(float(sharpe))
        return out

    wall, cpu, res = timed(run, repeats)
    return {**res, "wall_s": wall, "cpu_s": cpu}


def worker_nautilus(n: int, k: int, repeats: int, option: str) -> dict:
    """nautilus_trader's BacktestEngine on the same 1m bars (k = 1), an SMA 20/100 strategy with market orders."""
    from peers.nautilus_sma import run_nautilus

    return run_nautilus(frames(n, 1, "UTC")[0], FAST, SLOW, INIT, repeats)


def worker_jesse(n: int, k: int, repeats: int, option: str) -> dict:
    """jesse's research.backtest on the same 1m candles (k = 1), an SMA 20/100 strategy, spot, all-in."""
    from peers.jesse_sma import run_jesse

    return run_jesse(frames(n, 1, "UTC")[0], FAST, SLOW, INIT, repeats)


WORKERS = {"ours": worker_ours, "vectorbt": worker_vectorbt, "pandas": worker_pandas, "numba": worker_numba,
           "nautilus": worker_nautilus, "jesse": worker_jesse}

if __name__ == "__main__":
    peer, bars, symbols, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    opt = sys.argv[5] if len(sys.argv) > 5 else ""
    t_start = time.perf_counter()
    result = WORKERS[peer](bars, symbols, reps, opt)
    result.update({"peer": peer, "bars": bars, "symbols": symbols, "option": opt, "pid": os.getpid(),
                   "python": sys.version.split()[0], "process_s": round(time.perf_counter() - t_start, 2)})
    print(json.dumps(result))
