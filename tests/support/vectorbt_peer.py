"""The vectorbt peer for the SMA-crossover comparison: same signals, same next-open fills and fees, so final equity
and trades can be compared with ours (used by the optional equality test and benchmarks/bench_backtest.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def vectorbt_from_signals(frame: pd.DataFrame, signals: pd.Series, fee: float, init_cash: float) -> Any:
    """vectorbt Portfolio.from_signals executing signal[t] at open[t+1] with all-in sizing (size=inf)."""
    import vectorbt as vbt

    naive = frame.tz_localize(None) if frame.index.tz is not None else frame  # tz-aware indexes are slow in vectorbt
    prev = signals.shift(1).fillna(0).to_numpy()
    entries = pd.Series(prev > 0, index=naive.index)
    exits = pd.Series(prev <= 0, index=naive.index)
    return vbt.Portfolio.from_signals(naive["close"], entries, exits, price=naive["open"], size=np.inf,
                                      fees=fee, init_cash=init_cash, freq=pd.Timedelta(naive.index[1] - naive.index[0]))


def vectorbt_trades(pf: Any, index: pd.DatetimeIndex) -> pd.DataFrame:
    """vectorbt's trades as (entry_ts, exit_ts, entry_price, exit_price, size) for comparison."""
    rec = pf.trades.records
    return pd.DataFrame({"entry_ts": index[rec["entry_idx"].to_numpy()], "exit_ts": index[rec["exit_idx"].to_numpy()],
                         "entry_price": rec["entry_price"].to_numpy(), "exit_price": rec["exit_price"].to_numpy(),
                         "qty": rec["size"].to_numpy()})
