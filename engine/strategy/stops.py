"""Protective exits a strategy declares (stop-loss / take-profit), and the one intrabar rule every path applies.

A strategy's ``stops()`` returns a ``Stops`` (default None: no protective exits). Distances are fractions of the
trade's average entry price, fixed when the trade opens, from the bar its entry was decided on (point in time):

- ``scale="fixed"``: ``stop_loss`` / ``take_profit`` are the fractions themselves (0.02 = 2 %).
- ``scale="atr"``: they are multiples k of ATR(``window``) / close, ATR the simple mean of true ranges.
- ``scale="vol"``: multiples k of realised volatility, the std of close-to-close returns over ``window`` bars.

The intrabar rule (the backtest kernel's, restated by ``bar_exit`` for the paper and live paths): on each bar after
entry (on the entry bar too when the entry filled at its open), a long is stopped when the bar's low reaches
``entry x (1 - stop)``, at that level, or at the open when the bar opened through it (a gap); the stop is checked
before the take-profit (conservative when one bar touches both); a take-profit at ``entry x (1 + take)`` fills at
that level or the better open. Shorts mirror it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from engine.strategy.base import panel_index

SCALES = ("fixed", "atr", "vol")
STOP, TAKE = "stop_loss", "take_profit"


@dataclass(frozen=True)
class Stops:
    """A strategy's protective exits: fixed fractions of the entry price, or k x ATR / realised vol at entry."""

    stop_loss: float | None = None
    take_profit: float | None = None
    scale: str = "fixed"  # fixed | atr | vol
    window: int = 14  # bars of the ATR / volatility estimate (vol-scaled only)

    def __post_init__(self) -> None:
        for name in ("stop_loss", "take_profit"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                                  or v <= 0):
                raise ValueError(f"stops.{name}: must be a positive number or None, got {v!r}")
        if self.scale not in SCALES:
            raise ValueError(f"stops.scale: must be one of {', '.join(SCALES)}, got {self.scale!r}")
        if self.scale == "fixed":
            for name in ("stop_loss", "take_profit"):
                v = getattr(self, name)
                if v is not None and v >= 1:
                    raise ValueError(f"stops.{name}: a fixed fraction must be below 1 (0.02 = 2 %), got {v!r}")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 2:
            raise ValueError(f"stops.window: must be an integer >= 2 bars, got {self.window!r}")

    @property
    def active(self) -> bool:
        """True when the spec sets a stop-loss or a take-profit."""
        return self.stop_loss is not None or self.take_profit is not None

    def unit(self, panel: Mapping[str, pd.DataFrame], index: pd.DatetimeIndex | None = None) -> pd.DataFrame:
        """The distance unit per bar and symbol as a fraction of the close (1.0 for fixed stops), point in time."""
        index = panel_index(panel) if index is None else index
        if self.scale == "fixed":
            return pd.DataFrame(1.0, index=index, columns=list(panel))
        out = {}
        for symbol, frame in panel.items():
            f = frame.reindex(index)
            close = f["close"].astype("float64")
            if self.scale == "atr":
                prev = close.shift(1)
                tr = pd.concat([f["high"] - f["low"], (f["high"] - prev).abs(), (f["low"] - prev).abs()],
                               axis=1).max(axis=1, skipna=True)
                out[symbol] = tr.rolling(self.window, min_periods=1).mean() / close
            else:
                out[symbol] = close.pct_change(fill_method=None).rolling(self.window, min_periods=2).std()
        frame = pd.DataFrame(out, index=index)
        frame.columns = list(panel)
        return frame

    def fractions(self, panel: Mapping[str, pd.DataFrame],
                  index: pd.DatetimeIndex | None = None) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
        """(stop-loss, take-profit) fractions per decision bar and symbol; None for an exit the spec does not set."""
        unit = self.unit(panel, index)
        return (None if self.stop_loss is None else unit * float(self.stop_loss),
                None if self.take_profit is None else unit * float(self.take_profit))

    def fractions_at(self, panel: Mapping[str, pd.DataFrame], symbol: str,
                     when: pd.Timestamp) -> tuple[float, float]:
        """(stop, take) fractions for an entry decided at bar `when` (0.0 = none); what the paper/live path stores."""
        if self.scale == "fixed":
            return float(self.stop_loss or 0.0), float(self.take_profit or 0.0)
        unit = self.unit({symbol: panel[symbol]}).iloc[:, 0].loc[:when]
        u = float(unit.iloc[-1]) if len(unit) else float("nan")

        def frac(k: float | None) -> float:
            v = u * float(k) if k is not None else 0.0
            return v if v > 0.0 else 0.0  # NaN (no estimate yet) means no protective exit, as in the kernel

        return frac(self.stop_loss), frac(self.take_profit)


def levels(side: float, entry: float, stop_frac: float, take_frac: float) -> tuple[float | None, float | None]:
    """(stop price, take-profit price) of a position of sign `side` entered at `entry`; None where not set."""
    if side > 0:
        return (entry * (1.0 - stop_frac) if stop_frac > 0.0 else None,
                entry * (1.0 + take_frac) if take_frac > 0.0 else None)
    return (entry * (1.0 + stop_frac) if stop_frac > 0.0 else None,
            entry * (1.0 - take_frac) if take_frac > 0.0 else None)


def bar_exit(side: float, entry: float, stop_frac: float, take_frac: float, open_: float, high: float,
             low: float) -> tuple[str, float] | None:
    """(reason, reference price) when bar (open, high, low) hits the position's stop or take-profit, else None.

    The kernel's rule exactly (same float operations): stop before take-profit, gaps fill at the open."""
    if open_ != open_:
        return None
    if side > 0:
        if stop_frac > 0.0:
            stop = entry * (1.0 - stop_frac)
            if low <= stop:
                return STOP, min(open_, stop)
        if take_frac > 0.0:
            tp = entry * (1.0 + take_frac)
            if high >= tp:
                return TAKE, max(open_, tp)
        return None
    if side < 0:
        if stop_frac > 0.0:
            stop = entry * (1.0 + stop_frac)
            if high >= stop:
                return STOP, max(open_, stop)
        if take_frac > 0.0:
            tp = entry * (1.0 - take_frac)
            if low <= tp:
                return TAKE, min(open_, tp)
    return None


def stop_arrays(stops: Stops | None, panel: Mapping[str, pd.DataFrame], index: pd.DatetimeIndex,
                symbols: tuple[str, ...]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The kernel's per-decision-bar (n x k) fraction arrays for a vol-scaled spec (None for fixed or none)."""
    if stops is None or not stops.active or stops.scale == "fixed":
        return None, None
    sl, tp = stops.fractions({s: panel[s] for s in symbols}, index)

    def arr(frame: pd.DataFrame | None) -> np.ndarray | None:
        return None if frame is None else np.ascontiguousarray(frame.to_numpy(dtype="float64"))

    return arr(sl), arr(tp)
