"""The kernel's path for one symbol with nothing to do between target changes (no barriers, no funding), compiled
with numba (cache=True); engine.backtest.kernel.simulate_kernel calls it and it returns the same values bit for bit.

Why a separate path: with one symbol and no barriers or funding, only the bars after a target change trade; every
other bar is equity = cash (flat) or cash + qty * close (held). The general loop finds those bars one by one and, at
each, reads the decided target and the fill price from rows it has not touched for tens of bars: two cache misses
per change (~200 ns each at 1M bars). Here the fill bars are listed first, their targets and fill prices gathered
in one loop of independent loads (the CPU overlaps the misses), the fills done from those short arrays with the
kernel's own `_fill`, and the equity of each stretch between fills written by a plain loop the compiler vectorises.
When a target or a fill price at a fill bar is NaN (a bar that cannot trade: the general loop retries it on the next
bar), this path reports that it did not run and the general loop runs instead.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.backtest.kernel_fill import _fill
from engine.backtest.layout import REASON_SIGNAL

# the kernel's own _fill, inlined here: no call and no reference counting of its seven arrays per fill
_fill_inline = njit(inline="always")(_fill.py_func)


@njit(cache=True, inline="always")
def _stretch(equity, close, start, stop, cash, q):  # noqa: ANN001, ANN202 - numba internals
    """Equity of bars [start, stop) holding q (cash + q * close, as the kernel marks) or flat (cash); inlined, so
    no call (and no reference counting of the arrays) per stretch."""
    if q != 0.0:
        for u in range(start, stop):
            equity[u] = cash + q * close[u]
    else:
        for u in range(start, stop):
            equity[u] = cash


@njit(cache=True)
def single_symbol(targets, changed, fill_px, close, sigma, vol_ref, init_cash,  # noqa: ANN001, ANN201
                  fee_taker, fee_maker, half_spread, impact_coef, equity, qty, st, fills, counts, trades):
    """Fill `equity`, `qty`, `st`, `fills`, `counts`, `trades` as simulate_kernel does for k = 1 without barriers or
    funding; returns (ran, exposed bars); ran is False (nothing written) when a fill bar has a NaN target or price."""
    n = targets.shape[0]
    m = 0
    for t in range(n - 1):  # fill bars: t + 1 for a target change decided at t (branch-free: vectorised)
        m += changed[t]
    bars = np.empty(m, dtype=np.int64)
    j = 0
    for t in range(1, n):
        if changed[t - 1]:
            bars[j] = t
            j += 1
    tgt = np.empty(m)
    px = np.empty(m)
    bad = False
    for e in range(m):  # independent loads: their cache misses overlap
        b = bars[e]
        tgt[e] = targets[b - 1, 0]
        px[e] = fill_px[b, 0]
        bad |= (tgt[e] != tgt[e]) | (px[e] != px[e])
    if bad:
        return False, 0
    close1 = close.ravel()  # (n x 1): a contiguous 1-D view (a copy only for a strided JIT argument)
    cash = init_cash
    prev_target = 0.0
    start = 0
    exposed = 0
    for e in range(m):
        b = bars[e]
        q = qty[0]
        _stretch(equity, close1, start, b, cash, q)
        if q != 0.0:
            exposed += b - start
        start = b
        target = tgt[e]
        if target == prev_target:
            continue
        p = px[e]
        eq = cash
        if q != 0.0:
            eq += q * p
        prev_target = target
        new_q = target * eq / (p * (1.0 + fee_taker))
        dq = new_q - q
        if dq != 0.0:
            cash = _fill_inline(b, 0, dq, p, False, REASON_SIGNAL, qty, cash, st, fills, counts, trades,
                         fee_taker, fee_maker, half_spread, impact_coef, sigma, vol_ref)
    q = qty[0]
    _stretch(equity, close1, start, n, cash, q)
    if q != 0.0:
        exposed += n - start
    return True, exposed
