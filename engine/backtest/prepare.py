"""One compiled pass from a strategy's int8 side signals to the kernel's inputs, compiled with numba (cache=True);
callers go through engine.backtest.kernels (the ahead-of-time compiled copy when built).

run_backtest with a fixed-fraction sizer otherwise makes four full passes over (bars x symbols) arrays: the signal
check and its cast to float64 (clean_signals), the sizer's product, the targets' finiteness check (target_array)
and the change flags (changed_bars), each with its own temporaries. `side_targets` does all of it in one pass with
the same arithmetic (float64(side) * fraction, `!=` against the previous bar) into arrays the caller allocates
(engine.backtest.kernels.side_targets), so its outputs equal theirs bit for bit (tests/backtest/test_prepare.py compares them on random inputs). A side outside {-1, 0, 1} stops the pass and is
reported by its flat position, so the caller can raise clean_signals' own error.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _first_bad(sides):  # noqa: ANN001, ANN202 - numba internals
    """Row-major position of the first side outside {-1, 0, 1}, or -1."""
    n, k = sides.shape
    for t in range(n):
        for s in range(k):
            v = sides[t, s]
            if v < -1 or v > 1:
                return t * k + s
    return -1


@njit(cache=True)
def _one_column(col, fraction, signals, targets, changed):  # noqa: ANN001, ANN202 - numba internals
    """side_targets for one symbol on 1-D arrays, branch-free so the compiler vectorises it; (changes, any bad)."""
    prev = 0.0
    changes = 0
    bad = False
    for t in range(col.shape[0]):
        v = col[t]
        bad |= (v < -1) | (v > 1)
        x = float(v)
        y = x * fraction
        signals[t] = x
        targets[t] = y
        c = y != prev
        changed[t] = c
        changes += c
        prev = y
    return changes, bad


@njit(cache=True)
def side_targets(sides, fraction, signals, targets, changed):  # noqa: ANN001, ANN201 - signatures: aot.py
    """Fill signals = float64(side), targets = signals * fraction and changed[t] = any target at t differs from
    t - 1 (bar 0: from 0) from C-contiguous (n x k) int8 sides; returns (changed bars, bad): bad = -1, or the
    row-major position of the first side outside {-1, 0, 1} (then the outputs are meaningless)."""
    n, k = sides.shape
    if k == 1:  # 1-D views of the contiguous columns: the loop vectorises
        changes, bad = _one_column(sides.reshape(n), fraction, signals.reshape(n), targets.reshape(n), changed)
        return changes, _first_bad(sides) if bad else -1
    changes = 0
    bad = False
    for t in range(n):
        diff = False
        for s in range(k):
            v = sides[t, s]
            bad |= (v < -1) | (v > 1)
            x = float(v)
            y = x * fraction
            signals[t, s] = x
            targets[t, s] = y
            diff |= y != (targets[t - 1, s] if t > 0 else 0.0)
        changed[t] = diff
        changes += diff
    return changes, _first_bad(sides) if bad else -1
