"""Validated kernel inputs a strategy's output turns into: exit barriers, and a signal frame checked and aligned to
the panel clock. A leaf of engine.backtest, so the backtest entry point and the exposure builder both import it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Barriers:
    """Exit barriers as fractions of the trade's average entry price, and a time limit in bars (None = off)."""

    stop_loss: float | None = None
    take_profit: float | None = None
    max_bars: int | None = None

    def __post_init__(self) -> None:
        for name in ("stop_loss", "take_profit"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v > 0):
                raise ValueError(f"barriers.{name}: must be a positive fraction, got {v!r}")
        if self.max_bars is not None and (not isinstance(self.max_bars, (int, np.integer)) or self.max_bars < 1):
            raise ValueError(f"barriers.max_bars: must be a positive integer, got {self.max_bars!r}")

    def as_kernel_args(self) -> tuple[float, float, int]:
        """(stop_loss, take_profit, max_bars) with 0 meaning disabled."""
        return (float(self.stop_loss or 0.0), float(self.take_profit or 0.0), int(self.max_bars or 0))


def aligned_frame(raw: Any, index: pd.DatetimeIndex, symbols: tuple[str, ...], who: str, what: str,
                  where: str = "") -> pd.DataFrame:
    """A strategy's per-symbol frame (a Series for one symbol is accepted) aligned to the panel clock and symbols;
    ValueError naming `who`, `what` ('signal' / 'weight') and, when given, the method's file:line for anything else."""
    at = f" ({where})" if where else ""
    if isinstance(raw, pd.Series) and len(symbols) == 1:
        raw = raw.to_frame(symbols[0])
    if not isinstance(raw, pd.DataFrame):
        raise ValueError(f"{who}: {what}s must be a DataFrame, got {type(raw).__name__}{at}")
    unknown = [c for c in raw.columns if c not in symbols]
    if unknown:
        raise ValueError(f"{who}: {what} columns {unknown} are not panel symbols{at}")
    if raw.index.equals(index) and list(raw.columns) == list(symbols):
        return raw
    return raw.reindex(index=index, columns=list(symbols))


def clean_signals(raw: Any, index: pd.DatetimeIndex, symbols: tuple[str, ...], strategy_name: str) -> pd.DataFrame:
    """Validate a strategy's signal frame (values in {-1, 0, 1}) and align it to the panel clock."""
    sig = aligned_frame(raw, index, symbols, f"strategy {strategy_name}", "signal")
    if all(dtype.kind in "iu" for dtype in sig.dtypes):
        ints = sig.to_numpy()  # plain integers: no NaN; range-check by two reductions instead of boolean masks
        if ints.size and (ints.min() < -1 or ints.max() > 1):
            _bad_signal(ints.astype("float64"), index, symbols, strategy_name)
        values = ints.astype("float64")
    else:
        values = sig.to_numpy(dtype="float64", na_value=np.nan)
        nan = np.isnan(values)
        if nan.any():
            values = np.where(nan, 0.0, values)
        del nan
        _bad_signal(values, index, symbols, strategy_name)
    return pd.DataFrame(values, index=index, columns=sig.columns, copy=False)  # aligned: the symbols, in order


def _bad_signal(values: np.ndarray, index: pd.DatetimeIndex, symbols: tuple[str, ...], strategy_name: str) -> None:
    bad = (values != 0.0) & (values != 1.0) & (values != -1.0)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"strategy {strategy_name}: signal {float(values[r, c])!r} at {index[r]} / {symbols[c]} "
                         "is not -1, 0 or 1")
