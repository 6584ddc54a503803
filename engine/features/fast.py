"""Fast indicator helpers for strategy authors: rolling sum/mean/std/var, EWM mean, z-score, crossings, cross-sectional
rank, compiled ahead of time like the backtest kernel, equal to pandas.

Every helper takes a numpy array (1-D: one series; 2-D: bars x symbols), a Series or a DataFrame, and returns the same
kind (pandas inputs keep their index and columns). Values equal pandas' `rolling(window, min_periods).mean()` etc. to
1e-9 (the tests check it, NaN warm-up included; NaN = no data). The work runs in the extension
`engine/features/_fast_aot` that `make` builds (`python -m engine.backtest.aot`): a process using it never imports
numba. When the extension is missing or was built from other sources, the same functions run through numba's JIT
(`QUANTDESK_FAST=jit` forces that), with the same results.

    from engine.features import fast
    fast_ma, slow_ma = fast.rolling_means(close, (20, 100))   # two windows in one pass
    entries = fast.crossed_above(fast_ma, slow_ma)
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence, TypeVar

import numpy as np
import pandas as pd

AOT_MODULE = "engine.features._fast_aot"
SOURCES = ("fast_kernels.py", "fast.py")  # what the extension is compiled from (fast.py: its signatures)
_HERE = Path(__file__).resolve().parent
_UNSET: Any = object()
_aot: Any = _UNSET

T = TypeVar("T", np.ndarray, pd.Series, pd.DataFrame)


def source_hash() -> int:
    """A signed 64-bit hash of the kernel sources as they are on disk (the extension embeds the one it was built from)."""
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (_HERE / name).read_bytes() + b"\0")
    return int.from_bytes(digest.digest()[:8], "little", signed=True)


def _kernels() -> Any:
    """The AOT extension when it imports and is current, else the numba JIT module (imported only then)."""
    global _aot
    if _aot is _UNSET:
        _aot = None
        if os.environ.get("QUANTDESK_FAST", "").lower() != "jit":
            try:
                mod = importlib.import_module(AOT_MODULE)
                if int(mod.source_hash()) == source_hash():
                    _aot = mod
            except (ImportError, AttributeError, OSError):
                _aot = None
    if _aot is not None:
        return _aot
    from engine.features import fast_kernels

    return fast_kernels


def implementation() -> str:
    """'aot' when the helpers run in the ahead-of-time compiled extension, 'jit' when through numba."""
    _kernels()
    return "aot" if _aot is not None else "jit"


def reset() -> None:
    """Forget the cached choice of implementation (tests; after building the extension in this process)."""
    global _aot
    _aot = _UNSET


def _as_2d(x: Any, name: str, inf_is_nan: bool = True) -> tuple[np.ndarray, Any]:
    """(C-contiguous float64 2-D array, how to wrap the result back); +-inf is missing data for windows (as pandas)."""
    if isinstance(x, pd.DataFrame):
        arr = x.to_numpy(dtype="float64", na_value=np.nan)
        wrap = ("frame", x.index, x.columns)
    elif isinstance(x, pd.Series):
        arr = x.to_numpy(dtype="float64", na_value=np.nan)[:, None]
        wrap = ("series", x.index, x.name)
    else:
        arr = np.asarray(x, dtype="float64")
        if arr.ndim not in (1, 2):
            raise ValueError(f"{name}: expected a 1-D or 2-D array (bars x symbols), got {arr.ndim} dimensions")
        wrap = ("1d", None, None) if arr.ndim == 1 else ("2d", None, None)
        if arr.ndim == 1:
            arr = arr[:, None]
    if inf_is_nan and not np.isfinite(arr).all():
        arr = np.where(np.isinf(arr), np.nan, arr)
    return np.ascontiguousarray(arr), wrap


def _wrap(out: np.ndarray, wrap: Any) -> Any:
    kind, index, label = wrap
    if kind == "frame":
        return pd.DataFrame(out, index=index, columns=label, copy=False)
    if kind == "series":
        return pd.Series(out[:, 0], index=index, name=label, copy=False)
    return out[:, 0] if kind == "1d" else out


def _window(window: int, min_periods: int | None) -> tuple[int, int]:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window: expected a positive integer, got {window!r}")
    minp = int(window) if min_periods is None else min_periods
    if isinstance(minp, bool) or not isinstance(minp, (int, np.integer)) or not 0 <= minp <= window:
        raise ValueError(f"min_periods: expected an integer in [0, window={window}], got {min_periods!r}")
    return int(window), int(minp)


def rolling_sum(x: T, window: int, min_periods: int | None = None) -> T:
    """Trailing sum over `window` rows; NaN until `min_periods` (default: window) values are in it."""
    w, minp = _window(window, min_periods)
    a, wrap, plain = _scanned(x, "rolling_sum")
    return _wrap(_sums(a, [w], [minp], False, plain)[0], wrap)


def rolling_mean(x: T, window: int, min_periods: int | None = None) -> T:
    """Trailing mean over `window` rows (pandas `rolling(window, min_periods).mean()`)."""
    w, minp = _window(window, min_periods)
    a, wrap, plain = _scanned(x, "rolling_mean")
    return _wrap(_sums(a, [w], [minp], True, plain)[0], wrap)


def rolling_means(x: T, windows: Sequence[int], min_periods: int | None = None) -> list[T]:
    """Trailing means for several windows in one pass, each equal to `rolling_mean(x, window, min_periods)`.

    Two windows cost about what one does (their running sums are computed side by side), e.g.
    `fast_ma, slow_ma = fast.rolling_means(close, (20, 100))`. `min_periods` defaults to each window."""
    if isinstance(windows, (int, np.integer)) or not len(windows):
        raise ValueError(f"windows: expected a non-empty sequence of positive integers, got {windows!r}")
    pairs = [_window(w, min_periods) for w in windows]
    a, wrap, plain = _scanned(x, "rolling_means")
    out = _sums(a, [w for w, _ in pairs], [m for _, m in pairs], True, plain)
    return [_wrap(out[j], wrap) for j in range(len(pairs))]


_START = (0, 0, 0, 0.0, 0.0, 0.0, 0.0)  # a lane's running state before its first row (prev is set per column)


def _scanned(x: Any, name: str) -> tuple[np.ndarray, Any, np.ndarray]:
    """_as_2d (+-inf as NaN) with each column's plain flag (scan_columns) from one compiled pass over the values."""
    a, wrap = _as_2d(x, name, inf_is_nan=False)
    plain, any_inf = _kernels().scan_columns(a)
    if any_inf:  # infinite values are missing data, as in pandas' windows (their columns are not plain)
        a = np.ascontiguousarray(np.where(np.isinf(a), np.nan, a))
    return a, wrap, plain


def _sums(a: np.ndarray, windows: list[int], minps: list[int], mean: bool, plain: np.ndarray) -> np.ndarray:
    """Rolling sums / means of every column for each window: a (windows x rows x columns) array.

    Each (window, column) is a lane. Lanes over plain columns (no NaN, no negative value: prices) are run two at a
    time once their windows are full (`rolling_pair`), the others one at a time (`rolling_lane`); values are the
    same either way, the pair only overlaps two chains of dependent additions."""
    kern = _kernels()
    n, k = a.shape
    out = np.empty((len(windows), n, k))
    if n == 0:
        return out
    if len(windows) * k == 1:  # one lane: no pair
        plain = np.zeros(k, dtype=np.bool_)
    lanes: list[tuple[int, int]] = []
    for w, (window, minp) in enumerate(zip(windows, minps)):
        for c in range(k):
            if plain[c] and window < n:
                lanes.append((w, c))
            else:
                kern.rolling_lane(a[:, c], window, minp, mean, out[w, :, c], 0, n, _START[:6] + (float(a[0, c]),))
    if len(lanes) % 2:  # the odd lane out runs alone
        w, c = lanes.pop()
        kern.rolling_lane(a[:, c], windows[w], minps[w], mean, out[w, :, c], 0, n, _START[:6] + (float(a[0, c]),))
    # one column: every lane is contiguous, and the extension's copy compiled for contiguous arrays is faster
    pair = getattr(kern, "rolling_pair_c", kern.rolling_pair) if k == 1 else kern.rolling_pair
    for (w1, c1), (w2, c2) in zip(lanes[::2], lanes[1::2]):
        x1, x2, o1, o2 = a[:, c1], a[:, c2], out[w1, :, c1], out[w2, :, c2]
        head = max(windows[w1], windows[w2])  # rows before both windows are full: one lane at a time
        s1 = kern.rolling_lane(x1, windows[w1], minps[w1], mean, o1, 0, head, _START[:6] + (float(x1[0]),))
        s2 = kern.rolling_lane(x2, windows[w2], minps[w2], mean, o2, 0, head, _START[:6] + (float(x2[0]),))
        pair(x1, windows[w1], x2, windows[w2], mean, o1, o2, head, s1, s2)
    return out


def rolling_var(x: T, window: int, min_periods: int | None = None, ddof: int = 1) -> T:
    """Trailing variance over `window` rows (pandas `rolling(window, min_periods).var(ddof)`)."""
    w, minp = _window(window, min_periods)
    if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)) or ddof < 0:
        raise ValueError(f"ddof: expected a non-negative integer, got {ddof!r}")
    a, wrap = _as_2d(x, "rolling_var")
    return _wrap(_kernels().rolling_var(a, w, minp, int(ddof)), wrap)


def rolling_std(x: T, window: int, min_periods: int | None = None, ddof: int = 1) -> T:
    """Trailing standard deviation (pandas `rolling(window, min_periods).std(ddof)`; a negative rounding is 0)."""
    w, minp = _window(window, min_periods)
    if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)) or ddof < 0:
        raise ValueError(f"ddof: expected a non-negative integer, got {ddof!r}")
    a, wrap = _as_2d(x, "rolling_std")
    var = _kernels().rolling_var(a, w, minp, int(ddof))
    np.maximum(var, 0.0, where=~np.isnan(var), out=var)
    return _wrap(np.sqrt(var, out=var), wrap)


def ewm_mean(x: T, span: float | None = None, alpha: float | None = None, com: float | None = None,
             min_periods: int = 0) -> T:
    """Exponentially weighted mean, adjust=True (pandas `ewm(span=/alpha=/com=, min_periods).mean()`); one of three."""
    given = [v is not None for v in (span, alpha, com)]
    if sum(given) != 1:
        raise ValueError("ewm_mean: pass exactly one of span, alpha or com")
    if span is not None:
        if not span >= 1:
            raise ValueError(f"ewm_mean: span must be >= 1, got {span!r}")
        c = (float(span) - 1.0) / 2.0
    elif alpha is not None:
        if not 0 < alpha <= 1:
            raise ValueError(f"ewm_mean: alpha must be in (0, 1], got {alpha!r}")
        c = (1.0 - float(alpha)) / float(alpha)
    else:
        if not com >= 0:  # type: ignore[operator]
            raise ValueError(f"ewm_mean: com must be >= 0, got {com!r}")
        c = float(com)  # type: ignore[arg-type]
    if isinstance(min_periods, bool) or not isinstance(min_periods, (int, np.integer)) or min_periods < 0:
        raise ValueError(f"min_periods: expected a non-negative integer, got {min_periods!r}")
    a, wrap = _as_2d(x, "ewm_mean")
    return _wrap(_kernels().ewm_mean(a, c, int(min_periods)), wrap)


def zscore(x: T, window: int, min_periods: int | None = None) -> T:
    """(x - rolling mean) / rolling std (ddof=1) over `window` rows, as pandas computes it (x / 0 is +-inf or NaN)."""
    mean = rolling_mean(x, window, min_periods)
    std = rolling_std(x, window, min_periods)
    a, wrap = _as_2d(x, "zscore", inf_is_nan=False)
    m, s = (np.asarray(v, dtype="float64").reshape(a.shape) for v in (mean, std))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (a - m) / s
    return _wrap(out, wrap)


def crossed_above(a: T, b: Any) -> T:
    """True on the row where `a` moves above `b` (a > b, and a <= b on the row before); NaN reads as no crossing."""
    return _crossed(a, b, True)


def crossed_below(a: T, b: Any) -> T:
    """True on the row where `a` moves below `b` (a < b, and a >= b on the row before); NaN reads as no crossing."""
    return _crossed(a, b, False)


def _crossed(a: Any, b: Any, above: bool) -> Any:
    x, wrap = _as_2d(a, "crossed", inf_is_nan=False)
    if np.ndim(b) == 0:
        y = np.full_like(x, float(b))
    else:
        y, _ = _as_2d(b, "crossed", inf_is_nan=False)
        if y.shape != x.shape:
            raise ValueError(f"crossed: shapes {x.shape} and {y.shape} differ")
    return _wrap(_kernels().crossed(x, y, above), wrap)


def rank_across(x: T, pct: bool = False) -> T:
    """Average rank of each value among the symbols of its row (pandas `rank(axis=1)`, or `pct=True`); NaN stays NaN."""
    a, wrap = _as_2d(x, "rank_across", inf_is_nan=False)
    ranks = _kernels().rank_rows(a)
    if pct:
        counts = (~np.isnan(a)).sum(axis=1, keepdims=True).astype("float64")
        with np.errstate(invalid="ignore", divide="ignore"):
            ranks = ranks / counts
    return _wrap(ranks, wrap)


def aot_exports() -> dict[str, Any]:
    """The functions the AOT extension exports with their numba signatures (used by engine.backtest.aot)."""
    from numba import types

    from engine.features import fast_kernels as k

    f8, i8, b1 = types.float64, types.int64, types.boolean
    c1, c2, a1 = types.float64[::1], types.float64[:, ::1], types.float64[:]  # a1: a strided column view
    state = types.Tuple((i8, i8, i8, f8, f8, f8, f8))  # a rolling lane's running state
    return {
        "scan_columns": (k.scan_columns, types.Tuple((types.boolean[::1], b1))(c2)),
        "rolling_lane": (k.rolling_lane, state(a1, i8, i8, b1, a1, i8, i8, state)),
        "rolling_pair": (k.rolling_pair, types.void(a1, i8, a1, i8, b1, a1, a1, i8, state, state)),
        "rolling_pair_c": (k.rolling_pair, types.void(c1, i8, c1, i8, b1, c1, c1, i8, state, state)),
        "rolling_var": (k.rolling_var, c2(c2, i8, i8, i8)),
        "ewm_mean": (k.ewm_mean, c2(c2, f8, i8)),
        "crossed": (k.crossed, types.boolean[:, ::1](c2, c2, b1)),
        "rank_rows": (k.rank_rows, c2(c2)),
    }
