"""Compiled indicator kernels on (bars x columns) float64 arrays: rolling sum/mean/var, EWM mean, crossings, ranks.

Each kernel reproduces the update order of pandas' own window algorithms (pandas 3.x `_libs/window`), so results
equal `DataFrame.rolling(...)` / `.ewm(...)` to the last bits in ordinary data (the tests hold them to 1e-9):
  * sums and means: a running Kahan-compensated sum with separate compensations for values entering and leaving the
    window, a count of trailing equal values (a window of one repeated value returns that value exactly) and, for
    the mean, a sign count that clamps a wrong-signed result of cancellation to 0;
  * variance: Welford's online update with Kahan compensation; when an update loses more than ~3 significant digits
    (the new sum of squares below 1e-13 of the previous one) the window is recomputed from its values;
  * EWM mean (adjust=True): the weighted recursion on the centre of mass, NaN skipped but ageing the weights.
NaN is "no data" everywhere; `minp` is the minimum number of observations for a value (else NaN).

`python -m engine.backtest.aot` compiles these functions ahead of time (engine/features/_fast_aot); engine.features
.fast calls that extension, or these functions through numba's JIT when it is missing or stale.
"""

from __future__ import annotations

import numpy as np
from numba import njit

INV_COND_TOL = np.finfo(np.float64).eps * 1e3  # an update keeping < ~3 significant digits triggers a recompute


@njit(cache=True, nogil=True)
def rolling_sum(a, window, minp, mean):  # noqa: ANN001, ANN201 - numba signatures are declared in engine.backtest.aot
    """Trailing rolling sum (mean=False) or mean (mean=True) of each column over `window` rows (>= 1)."""
    n, k = a.shape
    out = np.empty((n, k))
    for c in range(k):
        nobs = 0
        neg = 0
        total = 0.0
        comp_add = 0.0
        comp_rem = 0.0
        same = 0
        prev = a[0, c] if n > 0 else np.nan
        for i in range(n):
            if i >= window:  # the value leaving the window
                v = a[i - window, c]
                if v == v:
                    nobs -= 1
                    y = -v - comp_rem
                    t = total + y
                    comp_rem = t - total - y
                    total = t
                    if np.signbit(v):
                        neg -= 1
            v = a[i, c]
            if v == v:
                nobs += 1
                y = v - comp_add
                t = total + y
                comp_add = t - total - y
                total = t
                if np.signbit(v):
                    neg += 1
                if v == prev:
                    same += 1
                else:
                    same = 1
                prev = v
            if mean:
                if nobs >= minp and nobs > 0:
                    r = total / nobs
                    if same >= nobs:
                        r = prev
                    elif neg == 0 and r < 0:
                        r = 0.0
                    elif neg == nobs and r > 0:
                        r = 0.0
                    out[i, c] = r
                else:
                    out[i, c] = np.nan
            elif nobs == 0 and minp == 0:
                out[i, c] = 0.0
            elif nobs >= minp:
                out[i, c] = prev * nobs if same >= nobs else total
            else:
                out[i, c] = np.nan
    return out


@njit(cache=True, nogil=True)
def rolling_var(a, window, minp, ddof):  # noqa: ANN001, ANN201
    """Trailing rolling variance (divisor nobs - ddof) of each column over `window` rows (>= 1).

    Welford with Kahan compensation (one term for values entering, one for values leaving); an update whose sum of
    squared deviations falls below INV_COND_TOL of the previous one marks the window for a recompute from its values.
    """
    n, k = a.shape
    out = np.empty((n, k))
    minp = max(minp, 1)
    for c in range(k):
        nobs = 0.0
        mean = 0.0
        ssq = 0.0
        comp_add = 0.0
        comp_rem = 0.0
        unstable = False
        for i in range(n):
            if i > 0:
                if i >= window:  # remove the value leaving the window
                    v = a[i - window, c]
                    if v == v:
                        prev_ssq = ssq
                        nobs -= 1.0
                        if nobs != 0.0:
                            prev_mean = mean - comp_rem
                            y = v - comp_rem
                            t = y - mean
                            comp_rem = t + mean - y
                            mean = mean - t / nobs
                            ssq = ssq - (v - prev_mean) * (v - mean)
                            if prev_ssq * INV_COND_TOL > ssq:
                                unstable = True
                        else:
                            mean = 0.0
                            ssq = 0.0
                            unstable = False
                v = a[i, c]
                if v == v:  # add the value entering it
                    prev_ssq = ssq
                    nobs += 1.0
                    prev_mean = mean - comp_add
                    y = v - comp_add
                    t = y - mean
                    comp_add = t + mean - y
                    mean = mean + t / nobs
                    ssq = ssq + (v - prev_mean) * (v - mean)
                    if prev_ssq * INV_COND_TOL > ssq:
                        unstable = True
            if i == 0 or unstable:  # (re)compute the window from its values
                nobs = 0.0
                mean = 0.0
                ssq = 0.0
                comp_add = 0.0
                comp_rem = 0.0
                for j in range(max(0, i + 1 - window), i + 1):
                    v = a[j, c]
                    if v == v:
                        nobs += 1.0
                        prev_mean = mean - comp_add
                        y = v - comp_add
                        t = y - mean
                        comp_add = t + mean - y
                        mean = mean + t / nobs
                        ssq = ssq + (v - prev_mean) * (v - mean)
                unstable = False
            if nobs >= minp and nobs > ddof:
                out[i, c] = ssq / (nobs - ddof)
            else:
                out[i, c] = np.nan
    return out


@njit(cache=True, nogil=True)
def ewm_mean(a, com, minp):  # noqa: ANN001, ANN201
    """Exponentially weighted mean of each column, adjust=True, NaN ageing the weights (pandas' defaults)."""
    n, k = a.shape
    out = np.empty((n, k))
    if n == 0:
        return out
    alpha = 1.0 / (1.0 + com)
    decay = 1.0 - alpha
    minp = max(minp, 1)
    for c in range(k):
        weighted = a[0, c]
        nobs = 1 if weighted == weighted else 0
        out[0, c] = weighted if nobs >= minp else np.nan
        old_wt = 1.0
        for i in range(1, n):
            cur = a[i, c]
            seen = cur == cur
            if seen:
                nobs += 1
            if weighted == weighted:
                old_wt *= decay
                if seen:
                    if weighted != cur:
                        weighted = old_wt * weighted + cur
                        weighted /= old_wt + 1.0
                    old_wt += 1.0
            elif seen:
                weighted = cur
            out[i, c] = weighted if nobs >= minp else np.nan
    return out


@njit(cache=True, nogil=True)
def crossed(a, b, above):  # noqa: ANN001, ANN201
    """Per cell: a crossed above b on this row (a > b now, a <= b on the row before), or below when above=False.

    Any NaN among the four values reads as no crossing; row 0 never crosses.
    """
    n, k = a.shape
    out = np.zeros((n, k), dtype=np.bool_)
    for c in range(k):
        for i in range(1, n):
            x, y, px, py = a[i, c], b[i, c], a[i - 1, c], b[i - 1, c]
            if above:
                out[i, c] = x > y and px <= py
            else:
                out[i, c] = x < y and px >= py
    return out


@njit(cache=True, nogil=True)
def rank_rows(a):  # noqa: ANN001, ANN201
    """Average rank (1-based, ties share their mean rank) of each value within its row; NaN stays NaN."""
    n, k = a.shape
    out = np.empty((n, k))
    for i in range(n):
        for c in range(k):
            v = a[i, c]
            if v != v:
                out[i, c] = np.nan
                continue
            less = 0
            equal = 0
            for d in range(k):
                w = a[i, d]
                if w < v:
                    less += 1
                elif w == v:
                    equal += 1
            out[i, c] = less + (equal + 1) / 2.0
    return out
