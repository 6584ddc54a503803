"""SMA 20/100 crossover through jesse's research.backtest on 1m candles (imported only by the jesse worker's venv).

Spot, long-only, all-in (99.9% of the balance, jesse rejects an order above it), no fees, jesse's own `ta.sma`.
Candles are the same seeded frame as every other peer, as jesse's array [timestamp ms, open, close, high, low,
volume]; no database is involved (the research API takes candles in memory). jesse decides on each candle's close
and fills market orders at that price (its own model), so final equity is reported, not asserted equal. `fast_mode`
is jesse's documented switch for research runs; both are timed when asked.
"""

from __future__ import annotations

import time
from typing import Any


def run_jesse(frame: Any, fast: int, slow: int, init: float, repeats: int, fast_mode: bool = True) -> dict:
    """Best wall / CPU time of `repeats` runs after a warm-up, final equity and trade count; jesse's version."""
    from importlib import metadata

    import numpy as np
    from jesse import indicators as ta
    from jesse import research, utils
    from jesse.strategies import Strategy

    class SmaCross(Strategy):
        def _cross(self) -> bool:
            closes = self.candles[:, 2]
            return len(closes) >= slow and ta.sma(closes, fast) > ta.sma(closes, slow)

        def should_long(self) -> bool:
            return self._cross()

        def should_short(self) -> bool:
            return False

        def go_long(self) -> None:
            qty = utils.size_to_qty(self.balance * 0.999, self.price, fee_rate=self.fee_rate)
            self.buy = qty, self.price

        def update_position(self) -> None:
            if not self._cross():
                self.liquidate()

        def should_cancel_entry(self) -> bool:
            return True

    ts = frame.index.as_unit("ms").asi8.astype("float64")
    candles = np.column_stack([ts, frame["open"], frame["close"], frame["high"], frame["low"], frame["volume"]])
    config = {"starting_balance": init, "fee": 0.0, "type": "spot", "exchange": "Binance Spot",
              "warm_up_candles": 0}
    routes = [{"exchange": "Binance Spot", "strategy": SmaCross, "symbol": "BTC-USDT", "timeframe": "1m"}]
    data = {"Binance Spot-BTC-USDT": {"exchange": "Binance Spot", "symbol": "BTC-USDT", "candles": candles}}

    def once() -> dict:
        return research.backtest(config, routes, [], data, fast_mode=fast_mode)

    once()
    wall = cpu = float("inf")
    out: dict = {}
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.thread_time()
        out = once()
        cpu = min(cpu, time.thread_time() - c0)
        wall = min(wall, time.perf_counter() - t0)
    m = out["metrics"]
    final = float(m.get("finishing_balance", float("nan"))) if isinstance(m, dict) else float("nan")
    return {"final_equity": [final], "trades": [int(m.get("total", 0))], "wall_s": wall, "cpu_s": cpu,
            "version": metadata.version("jesse"), "fast_mode": fast_mode,
            "note": "jesse fills at the deciding candle's close; equity not expected equal"}


if __name__ == "__main__":  # a quick manual check: python jesse_sma.py (in the jesse venv)
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench_backtest import make_frame

    print(run_jesse(make_frame(20_000, 42), 20, 100, 100_000.0, 1))
