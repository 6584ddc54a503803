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


@njit(cache=True, nogil=True, inline="always")
def _kahan(v, total, comp):  # noqa: ANN001, ANN202 - numba internals
    """Add v to a compensated sum: (new total, new compensation), pandas' order of operations."""
    y = v - comp
    t = total + y
    return t, t - total - y


@njit(cache=True, nogil=True, inline="always")
def _window_value(total, nobs, minp, same, prev, neg, mean):  # noqa: ANN001, ANN202 - numba internals
    """A window's sum or mean from its running state, with pandas' exact-repeat and sign corrections."""
    if mean:
        if nobs >= minp and nobs > 0:
            r = total / nobs
            if same >= nobs:
                return prev
            if neg == 0 and r < 0:
                return 0.0
            if neg == nobs and r > 0:
                return 0.0
            return r
        return np.nan
    if nobs == 0 and minp == 0:
        return 0.0
    if nobs >= minp:
        return prev * nobs if same >= nobs else total
    return np.nan


@njit(cache=True, nogil=True)
def scan_columns(a):  # noqa: ANN001, ANN201 - numba signatures are declared in engine.features.fast
    """(plain, any_inf): per column, no NaN, no infinity and no value with its sign bit set (prices: rolling_pair may
    take it); and whether any value is infinite. One branch-free pass per column (the compiler vectorises it)."""
    n, k = a.shape
    plain = np.ones(k, dtype=np.bool_)
    any_inf = False
    for c in range(k):
        bad = False
        inf = False
        for i in range(n):
            v = a[i, c]
            bad |= (v != v) | np.signbit(v)
            inf |= abs(v) == np.inf
        plain[c] = not (bad or inf)
        any_inf |= inf
    return plain, any_inf


@njit(cache=True, nogil=True)
def rolling_lane(x, window, minp, mean, out, start, stop, st):  # noqa: ANN001, ANN201
    """Rows [start, stop) of the rolling sum / mean of series x (NaN is no data) into out; returns the running state
    (nobs, neg, same, total, comp_add, comp_rem, prev) to continue from."""
    nobs, neg, same, total, comp_add, comp_rem, prev = st
    for i in range(start, stop):
        if i >= window:  # the value leaving the window
            v = x[i - window]
            if v == v:
                nobs -= 1
                total, comp_rem = _kahan(-v, total, comp_rem)
                neg -= np.signbit(v)
        v = x[i]
        if v == v:
            nobs += 1
            total, comp_add = _kahan(v, total, comp_add)
            neg += np.signbit(v)
            same = same + 1 if v == prev else 1
            prev = v
        out[i] = _window_value(total, nobs, minp, same, prev, neg, mean)
    return nobs, neg, same, total, comp_add, comp_rem, prev


@njit(cache=True, nogil=True)
def rolling_pair(x1, w1, x2, w2, mean, o1, o2, start, s1, s2):  # noqa: ANN001, ANN201
    """Rows start.. of two lanes (series x1, window w1 into o1; x2, w2 into o2) side by side, for plain series (scan_columns) once both windows are full (start >= both windows), continuing from
    their rolling_lane states. The Kahan updates make each lane a chain of dependent additions; run together the CPU
    overlaps their latencies, so two lanes cost little more than one. These are rolling_lane's operations with its
    NaN tests true, nobs = window and no negative value in a window (only the `r < 0` correction can apply): each
    lane's values are bit-identical to a lone lane's."""
    _, _, same1, t1, add1, rem1, prev1 = s1
    _, _, same2, t2, add2, rem2, prev2 = s2
    f1, f2 = float(w1), float(w2)
    for i in range(start, x1.shape[0]):
        t1, rem1 = _kahan(-x1[i - w1], t1, rem1)
        v = x1[i]
        t1, add1 = _kahan(v, t1, add1)
        same1 = same1 + 1 if v == prev1 else 1
        prev1 = v
        t2, rem2 = _kahan(-x2[i - w2], t2, rem2)
        v = x2[i]
        t2, add2 = _kahan(v, t2, add2)
        same2 = same2 + 1 if v == prev2 else 1
        prev2 = v
        if mean:
            r1 = t1 / f1
            r2 = t2 / f2
            o1[i] = prev1 if same1 >= w1 else (0.0 if r1 < 0 else r1)
            o2[i] = prev2 if same2 >= w2 else (0.0 if r2 < 0 else r2)
        else:
            o1[i] = prev1 * w1 if same1 >= w1 else t1
            o2[i] = prev2 * w2 if same2 >= w2 else t2


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
