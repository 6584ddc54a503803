"""The equity-curve statistics pass, compiled with numba (cache=True); metrics.py calls it through
engine.backtest.kernels (the ahead-of-time compiled copy when built, so metrics need not import numba)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def curve_stats(values):  # noqa: ANN001, ANN201 - numba
    """Return moments, downside deviation, maximum drawdown and the longest stretch below a peak of an equity curve,
    in two compiled passes without numpy temporaries beyond the returns.

    Pass 1 computes each return once (kept for pass 2: a division costs more than a store and a load), sums them
    for the mean, and follows the drawdown: the deepest point below a peak is the lowest value before the next peak,
    since v / peak - 1 never decreases as v grows, so one division per peak replaces one per bar with the same
    result. Pass 2 accumulates the central moments in the original order, so every value is unchanged."""
    n = values.shape[0] - 1
    rets = np.empty(n)
    total = 0.0
    peak = values[0]
    low = peak  # the lowest value since the current peak
    max_dd = 0.0
    run = longest = 0
    for i in range(n):
        v = values[i + 1]
        r = v / values[i] - 1.0
        rets[i] = r
        total += r
        if v > peak:  # a new peak closes the stretch below the previous one
            max_dd = min(max_dd, low / peak - 1.0)
            peak = v
            low = v
            run = 0
        elif v < peak:
            low = min(low, v)
            run += 1
            longest = max(longest, run)
        else:
            run = 0
    max_dd = min(max_dd, low / peak - 1.0)
    mean = total / n
    m2 = m3 = m4 = down2 = 0.0
    for i in range(n):
        r = rets[i]
        d = r - mean
        d2 = d * d
        m2 += d2
        m3 += d2 * d
        m4 += d2 * d2
        neg = min(r, 0.0)  # branch-free: adding +0.0 leaves the sum unchanged
        down2 += neg * neg
    return mean, m2 / n, m3 / n, m4 / n, down2 / n, max_dd, longest
