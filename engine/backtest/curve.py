"""The equity-curve statistics pass, compiled with numba (cache=True); metrics.py calls it through
engine.backtest.kernels (the ahead-of-time compiled copy when built, so metrics need not import numba)."""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def curve_stats(values):  # noqa: ANN001, ANN201 - numba
    """One compiled pass over an equity curve (plus one for central moments): return moments, downside
    deviation, maximum drawdown and the longest stretch below a peak, without numpy temporaries."""
    n = values.shape[0] - 1
    total = 0.0
    for i in range(n):
        total += values[i + 1] / values[i] - 1.0
    mean = total / n
    m2 = m3 = m4 = down2 = 0.0
    peak = values[0]
    max_dd = 0.0
    run = longest = 0
    for i in range(n):
        r = values[i + 1] / values[i] - 1.0
        d = r - mean
        d2 = d * d
        m2 += d2
        m3 += d2 * d
        m4 += d2 * d2
        neg = min(r, 0.0)  # branch-free: adding +0.0 leaves the sum unchanged
        down2 += neg * neg
        v = values[i + 1]
        peak = max(peak, v)
        max_dd = min(max_dd, v / peak - 1.0)
        if v < peak:
            run += 1
            if run > longest:
                longest = run
        else:
            run = 0
    return mean, m2 / n, m3 / n, m4 / n, down2 / n, max_dd, longest
