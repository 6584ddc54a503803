"""Record layouts of the backtest kernel, without numba: fill / trade reasons and the columns of its output arrays.

The compiled kernel (engine.backtest.kernel) imports these; numba reads imported module-level ints as compile-time
constants. Code that only reads the kernel's outputs imports them from here, so it does not pull in numba.
"""

from __future__ import annotations

# exit / fill reasons
REASON_SIGNAL = 0
REASON_STOP = 1
REASON_TAKE = 2
REASON_TIME = 3
REASON_END = 4  # open at the end of data (trade record only; no fill)
REASON_NAMES = ("signal", "stop_loss", "take_profit", "time", "open")

# columns of the fill record array
F_BAR, F_SYM, F_QTY, F_PRICE, F_REF, F_FEE, F_SLIP, F_REASON = range(8)
N_FILL_COLS = 8
# columns of the trade record array
(T_SYM, T_ENTRY_BAR, T_EXIT_BAR, T_SIDE, T_QTY, T_ENTRY_PX, T_EXIT_PX, T_PNL, T_FEES, T_SLIP, T_FUNDING,
 T_REASON) = range(12)
N_TRADE_COLS = 12
# columns of the per-symbol open-trade state (S_SL / S_TP: the trade's stop-loss / take-profit fraction, fixed at entry)
(S_ENTRY_BAR, S_AVG, S_MAXQ, S_FEES, S_SLIP, S_FUND, S_REAL, S_EXIT_VAL, S_EXIT_QTY, S_SL, S_TP) = range(11)
N_STATE_COLS = 11
