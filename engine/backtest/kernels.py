"""The one entry point to the backtest's compiled functions: the ahead-of-time compiled module when it is built and
current, else numba's JIT.

`python -m engine.backtest.aot` (run by `make run/test/bench`) compiles kernel.py and curve.py into the extension
`engine/backtest/_kernel_aot`. A process that runs backtests through it never imports numba: `import numba` (LLVM)
and its CPU-target start-up cost ~160 MB of resident memory, more than the bars of a 1M-bar backtest. The extension
embeds a hash of the sources it was compiled from; when kernel.py, curve.py, layout.py or aot.py changed since the
build, or the extension is missing, or an argument is outside the compiled signatures (dtype, dimensions, a non-integer
count), the call goes to the numba JIT functions instead (numba is imported only then). Arrays that are not
C-contiguous and aligned are copied into ones that are before an AOT call (callers pass contiguous arrays).
`QUANTDESK_KERNEL=jit` forces the JIT path.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

AOT_MODULE = "engine.backtest._kernel_aot"
SOURCES = ("layout.py", "kernel_fill.py", "kernel_single.py", "kernel.py", "curve.py", "prepare.py", "aot.py")
_HERE = Path(__file__).resolve().parent
_UNSET: Any = object()
_aot: Any = _UNSET  # the loaded, current extension module, or None; resolved on first use


def source_hash() -> int:
    """A signed 64-bit hash of the sources the AOT extension is compiled from (as they are on disk now)."""
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (_HERE / name).read_bytes() + b"\0")
    return int.from_bytes(digest.digest()[:8], "little", signed=True)


def aot_module() -> ModuleType | None:
    """The AOT extension when it imports and was built from the current sources; None otherwise (cached)."""
    global _aot
    if _aot is _UNSET:
        _aot = _load_aot()
    return _aot


def _load_aot() -> ModuleType | None:
    if os.environ.get("QUANTDESK_KERNEL", "").lower() == "jit":
        return None
    return fresh_aot()


def fresh_aot() -> ModuleType | None:
    """The AOT extension if it imports and its embedded hash matches the sources on disk (no env, no cache)."""
    try:
        mod = importlib.import_module(AOT_MODULE)
    except ImportError:
        return None
    try:
        built = int(mod.source_hash())
        current = source_hash()
    except Exception:  # noqa: BLE001 - an extension from another build layout, or unreadable sources: not current
        return None
    return mod if built == current else None


def reset() -> None:
    """Forget the cached choice (tests; after building the extension in this process)."""
    global _aot
    _aot = _UNSET


def implementation() -> str:
    """'aot' when calls go to the ahead-of-time compiled extension, 'jit' when they go to numba's JIT."""
    return "aot" if aot_module() is not None else "jit"


def _jit() -> tuple[ModuleType, ModuleType, ModuleType]:
    from engine.backtest import curve, kernel, prepare  # imports numba

    return kernel, curve, prepare


def _c_float(a: Any, ndim: int) -> np.ndarray | None:
    """`a` as an aligned C-contiguous float64 array of `ndim` dimensions (copied only if needed), or None."""
    if not isinstance(a, np.ndarray) or a.ndim != ndim or a.dtype != np.float64:
        return None
    if a.flags.c_contiguous and a.flags.aligned:
        return a
    return np.require(a, np.float64, ["C", "A"])


def _real(x: Any) -> float | None:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        return None
    return float(x)


def _int(x: Any) -> int | None:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)) or not -2**63 <= int(x) < 2**63:
        return None
    return int(x)


def simulate_kernel(targets: np.ndarray, changed: np.ndarray, fill_px: np.ndarray, open_: np.ndarray,
                    high: np.ndarray, low: np.ndarray, close: np.ndarray, sigma: np.ndarray, vol_ref: np.ndarray,
                    funding: np.ndarray, stop_frac: np.ndarray, take_frac: np.ndarray, init_cash: float,
                    fee_taker: float, fee_maker: float, half_spread: float, impact_coef: float, stop_loss: float,
                    take_profit: float, max_bars: int, fills_at_open: bool,
                    capacity: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """engine.backtest.kernel.simulate_kernel (equity, fill rows, trade rows, exposed bars), AOT when possible."""
    mod = aot_module()
    if mod is not None:
        arrays = [_c_float(a, 2) for a in (targets, fill_px, open_, high, low, close, sigma, vol_ref, funding,
                                           stop_frac, take_frac)]
        reals = [_real(x) for x in (init_cash, fee_taker, fee_maker, half_spread, impact_coef, stop_loss, take_profit)]
        ints = [_int(max_bars), _int(capacity)]
        flags = changed if isinstance(changed, np.ndarray) and changed.ndim == 1 and changed.dtype == np.bool_ \
            else None
        at_open = bool(fills_at_open) if isinstance(fills_at_open, (bool, np.bool_)) else None
        if flags is not None and at_open is not None and all(v is not None for v in (*arrays, *reals, *ints)):
            if not (flags.flags.c_contiguous and flags.flags.aligned):
                flags = np.ascontiguousarray(flags)
            t, f, o, h, lo, c, sg, vr, fu, sf, tf = arrays
            return mod.simulate_kernel(t, flags, f, o, h, lo, c, sg, vr, fu, sf, tf, *reals, ints[0], at_open,
                                       ints[1])
    return _jit()[0].simulate_kernel(targets, changed, fill_px, open_, high, low, close, sigma, vol_ref, funding,
                                     stop_frac, take_frac, init_cash, fee_taker, fee_maker, half_spread, impact_coef,
                                     stop_loss, take_profit, max_bars, fills_at_open, capacity)


def curve_stats(values: np.ndarray) -> tuple[float, float, float, float, float, float, int]:
    """engine.backtest.curve.curve_stats (mean, m2, m3, m4, downside m2, max drawdown, longest drawdown bars)."""
    mod = aot_module()
    if mod is not None:
        arr = _c_float(values, 1)
        if arr is not None:
            return mod.curve_stats(arr)
    return _jit()[1].curve_stats(values)


def bare_loop(targets: np.ndarray, open_: np.ndarray, close: np.ndarray, init_cash: float,
              fee: float) -> np.ndarray:
    """engine.backtest.kernel.bare_loop (the single-symbol floor the kernel is benchmarked against)."""
    mod = aot_module()
    if mod is not None:
        arrays = [_c_float(a, 1) for a in (targets, open_, close)]
        reals = [_real(init_cash), _real(fee)]
        if all(v is not None for v in (*arrays, *reals)):
            return mod.bare_loop(*arrays, *reals)
    return _jit()[0].bare_loop(targets, open_, close, init_cash, fee)


def side_targets(sides: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """engine.backtest.prepare.side_targets on (n x k) int8 sides: (signals, targets, changed, changed bars, bad)."""
    sides = np.ascontiguousarray(sides, dtype=np.int8)
    n, k = sides.shape
    signals, targets, changed = np.empty((n, k)), np.empty((n, k)), np.empty(n, dtype=np.bool_)
    mod = aot_module()
    fn = mod.side_targets if mod is not None and sides.flags.aligned else _jit()[2].side_targets
    changes, bad = fn(sides, float(fraction), signals, targets, changed)
    return signals, targets, changed, int(changes), int(bad)
