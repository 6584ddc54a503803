"""A strategy's output as the kernel's inputs: its weights in [-1, 1] (validated) and its protective exits as barriers.

One function for run_backtest, the walk-forward optimiser and the optuna search, so research trades exactly what
paper and live trade: ``weights(panel)`` when the strategy defines it (fractional sizes), its ``signals(panel)``
otherwise (the default weights are the signals), and the stops its ``stops()`` declares.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from engine.strategy.base import Strategy, method_location
from engine.strategy.stops import Stops, stop_arrays

from engine.backtest import kernels
from engine.backtest.inputs import Barriers, aligned_frame, clean_signals


def uses_weights(strategy: Any) -> bool:
    """True when the strategy's class defines its own `weights` (else its signals are its weights)."""
    own = getattr(type(strategy), "weights", None)
    return own is not None and own is not Strategy.weights


def exposure_fn(strategy: Any) -> Callable[[Mapping[str, pd.DataFrame]], pd.DataFrame]:
    """The strategy method whose output becomes targets (what the lookahead check must test)."""
    return strategy.weights if uses_weights(strategy) else strategy.signals


def clean_weights(raw: Any, index: pd.DatetimeIndex, symbols: tuple[str, ...], strategy: Any) -> pd.DataFrame:
    """Validate a weights frame (finite, in [-1, 1]; NaN = flat) and align it to the panel clock.

    Raises ValueError naming the strategy, the first bad bar and symbol, and the file:line of its `weights`."""
    name = str(getattr(strategy, "name", type(strategy).__name__))
    where = method_location(strategy, "weights")
    frame = aligned_frame(raw, index, symbols, f"strategy {name}", "weight", where)
    values = frame.to_numpy(dtype="float64", na_value=np.nan)
    nan = np.isnan(values)
    if nan.any():
        values = np.where(nan, 0.0, values)
    bad = ~(np.abs(values) <= 1.0)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"strategy {name}: weight {float(values[r, c])!r} at {index[r]} / {symbols[c]} is outside "
                         f"[-1, 1] ({where})")
    return pd.DataFrame(np.ascontiguousarray(values), index=index, columns=frame.columns, copy=False)


def strategy_exposure(strategy: Any, panel: Mapping[str, pd.DataFrame], index: pd.DatetimeIndex,
                      symbols: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(weights, sides): the validated weights a sizer turns into targets, and their signs (the primary sides)."""

    if not uses_weights(strategy):
        raw = strategy.signals(panel)
        try:
            sig = clean_signals(raw, index, symbols, str(getattr(strategy, "name", "")))
        except ValueError as exc:  # bad output: point the author at the method
            raise ValueError(f"{exc} ({method_location(strategy, 'signals')})") from None
        return sig, sig
    w = clean_weights(strategy.weights(panel), index, symbols, strategy)
    return w, pd.DataFrame(np.sign(w.to_numpy()), index=index, columns=w.columns, copy=False)


def side_exposure(strategy: Any, panel: Mapping[str, pd.DataFrame], index: pd.DatetimeIndex,
                  symbols: tuple[str, ...], fraction: float | None
                  ) -> tuple[pd.DataFrame, pd.DataFrame, tuple[np.ndarray, np.ndarray, int] | None]:
    """strategy_exposure plus, for int8 signals on the panel clock and a fixed `fraction` per signal, the kernel's
    (targets, change flags, changed bars) from one compiled pass (engine.backtest.prepare); else None for them.

    The signals frame and the targets equal what clean_signals, the fixed_fraction sizer and target_array give, bit
    for bit; a bad signal raises clean_signals' own error."""
    if fraction is None or uses_weights(strategy):
        return (*strategy_exposure(strategy, panel, index, symbols), None)
    raw = strategy.signals(panel)
    name = str(getattr(strategy, "name", ""))
    sides = _aligned_int8(raw, index, symbols)
    if sides is not None:
        signals, targets, changed, changes, bad = kernels.side_targets(sides, fraction)
        if bad < 0:
            sig = pd.DataFrame(signals, index=index, columns=raw.columns, copy=False)
            return sig, sig, (targets, changed, changes)
    try:
        sig = clean_signals(raw, index, symbols, name)
    except ValueError as exc:  # bad output: point the author at the method
        raise ValueError(f"{exc} ({method_location(strategy, 'signals')})") from None
    return sig, sig, None


def _aligned_int8(raw: Any, index: pd.DatetimeIndex, symbols: tuple[str, ...]) -> np.ndarray | None:
    """The (n x k) int8 values of a signal frame already on the panel clock and symbols, else None."""
    if not isinstance(raw, pd.DataFrame) or not raw.index.equals(index) or list(raw.columns) != list(symbols):
        return None
    if not all(dtype == np.int8 for dtype in raw.dtypes):
        return None
    return raw.to_numpy()


def strategy_stops(strategy: Any) -> Stops | None:
    """The strategy's declared protective exits (None when it declares none); a wrong type is a ValueError."""
    fn = getattr(strategy, "stops", None)
    spec = fn() if callable(fn) else None
    if spec is not None and not isinstance(spec, Stops):
        raise ValueError(f"strategy {getattr(strategy, 'name', '')}: stops() must return an "
                         f"engine.strategy.stops.Stops or None, got {type(spec).__name__} "
                         f"({method_location(strategy, 'stops')})")
    return spec if spec is not None and spec.active else None


def kernel_barriers(stops: Stops | None, barriers: "Barriers | None", panel: Mapping[str, pd.DataFrame],
                    index: pd.DatetimeIndex, symbols: tuple[str, ...]
                    ) -> tuple["Barriers | None", tuple[np.ndarray | None, np.ndarray | None]]:
    """Merge a strategy's stops into the run's barriers: explicit barrier values win, then the strategy's.

    Fixed fractions become the barriers' scalars; vol-scaled ones become per-decision-bar arrays for the kernel."""

    if stops is None:
        return barriers, (None, None)
    base = barriers or Barriers()
    sl_arr, tp_arr = stop_arrays(stops, panel, index, symbols)
    changes: dict[str, float] = {}
    if stops.scale == "fixed":
        if base.stop_loss is None and stops.stop_loss is not None:
            changes["stop_loss"] = float(stops.stop_loss)
        if base.take_profit is None and stops.take_profit is not None:
            changes["take_profit"] = float(stops.take_profit)
    if base.stop_loss is not None:
        sl_arr = None
    if base.take_profit is not None:
        tp_arr = None
    return (dataclasses.replace(base, **changes) if changes else base), (sl_arr, tp_arr)
