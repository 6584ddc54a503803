"""Triple-barrier events and meta-labels on primary signals (López de Prado, AFML ch. 3).

An *event* is a bar at which the primary strategy holds a side (-1 or +1). From the event's close we watch the next
`max_holding` bars: the profit-take barrier sits `pt_mult * target` above the entry in the direction of the side, the
stop `sl_mult * target` below it, and the vertical barrier is the last bar of the holding period. `target` is the
volatility of returns over `target_horizon` bars (a quarter of the holding period unless set), estimated
point-in-time from an EWM of past bar returns, so with pt_mult=2 the profit barrier is about one holding-period sigma. The
meta-label is 1 when the profit-take barrier is touched first, i.e. when acting on the signal would have paid off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

BARRIER_PT, BARRIER_SL, BARRIER_VERTICAL = 1, -1, 0


@dataclass(frozen=True)
class BarrierSpec:
    """Barrier widths in units of horizon volatility, and the vertical barrier in bars."""

    pt_mult: float = 2.0
    sl_mult: float = 1.0
    max_holding: int = 48
    vol_span: int = 100
    vol_horizon: int = 0  # bars over which the target volatility is measured; 0 means max_holding // 4

    def __post_init__(self) -> None:
        """Reject barriers that cannot define a label."""
        if not self.pt_mult > 0:
            raise ValueError(f"pt_mult: must be > 0, got {self.pt_mult}")
        if not self.sl_mult > 0:
            raise ValueError(f"sl_mult: must be > 0, got {self.sl_mult}")
        if self.max_holding < 1:
            raise ValueError(f"max_holding: must be >= 1 bar, got {self.max_holding}")
        if self.vol_span < 2:
            raise ValueError(f"vol_span: must be >= 2, got {self.vol_span}")
        if self.vol_horizon < 0:
            raise ValueError(f"vol_horizon: must be >= 0 bars, got {self.vol_horizon}")

    @property
    def target_horizon(self) -> int:
        """Bars of volatility one barrier unit stands for (a quarter of the holding period by default)."""
        return self.vol_horizon or max(1, self.max_holding // 4)

    @property
    def payoff_ratio(self) -> float:
        """b in Kelly's f* = p - (1-p)/b: what a win pays per unit lost at the stop."""
        return self.pt_mult / self.sl_mult


def horizon_volatility(close: pd.Series, span: int, horizon: int) -> pd.Series:
    """Point-in-time volatility of log returns over `horizon` bars (EWM std of bar returns times sqrt(horizon))."""
    if not isinstance(close, pd.Series):
        raise TypeError(f"close: expected a pandas Series, got {type(close).__name__}")
    if (close <= 0).any():
        raise ValueError("close: prices must be positive")
    rets = np.log(close).diff()
    vol = rets.ewm(span=span, min_periods=max(2, span // 4)).std()
    return vol * np.sqrt(horizon)


def _first_touch(path: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of signed returns `path` (n, h), the first column touching upper/lower, and which one."""
    n, h = path.shape
    hit_up = path >= upper[:, None]
    hit_dn = path <= -lower[:, None]
    big = h + 1
    first_up = np.where(hit_up.any(axis=1), hit_up.argmax(axis=1), big)
    first_dn = np.where(hit_dn.any(axis=1), hit_dn.argmax(axis=1), big)
    barrier = np.full(n, BARRIER_VERTICAL, dtype=np.int8)
    col = np.full(n, h - 1, dtype=np.int64)
    up_first = first_up < first_dn  # one close cannot touch both barriers, so ties only happen at `big`
    dn_first = (first_dn < big) & ~up_first
    barrier[up_first] = BARRIER_PT
    col[up_first] = first_up[up_first]
    barrier[dn_first] = BARRIER_SL
    col[dn_first] = first_dn[dn_first]
    return barrier, col


def triple_barrier_events(close: pd.Series, side: pd.Series, spec: BarrierSpec,
                          target: pd.Series | None = None) -> pd.DataFrame:
    """Label every bar where `side` is +-1: first-touched barrier, its time, the side-adjusted return and meta-label.

    Returns a frame indexed by event start `ts` with columns t1 (touch time), t1_pos / t0_pos (bar positions),
    side, trgt, ret (log return in the side's direction at the touch), barrier (1 pt, -1 sl, 0 vertical) and
    label (1 when the profit barrier was hit first). Events whose holding period runs past the data are dropped
    (their outcome is unknown), as are events without a volatility estimate yet.
    """
    if not isinstance(side, pd.Series):
        raise TypeError(f"side: expected a pandas Series, got {type(side).__name__}")
    if not close.index.equals(side.index):
        raise ValueError("side: index must equal close's index (one signal per bar)")
    if not close.index.is_monotonic_increasing:
        raise ValueError("close: index must be sorted ascending")
    bad = ~side.isin([-1, 0, 1]) & side.notna()
    if bad.any():
        raise ValueError(f"side: values must be -1, 0 or +1; found {side[bad].iloc[0]!r}")
    trgt = horizon_volatility(close, spec.vol_span, spec.target_horizon) if target is None else target
    logp = np.log(close.to_numpy(dtype=float))
    sides = side.fillna(0).to_numpy(dtype=float)
    tg = trgt.reindex(close.index).to_numpy(dtype=float)
    n, h = len(close), spec.max_holding
    pos = np.flatnonzero((sides != 0) & np.isfinite(tg) & (tg > 0) & (np.arange(n) + h < n))
    cols = ["t1", "t0_pos", "t1_pos", "side", "trgt", "ret", "barrier", "label"]
    if len(pos) == 0:
        return pd.DataFrame(columns=cols, index=pd.DatetimeIndex([], name="ts", tz="UTC"))
    windows = np.lib.stride_tricks.sliding_window_view(logp[1:], h)  # row i = log prices of bars i+1 .. i+h
    path = (windows[pos] - logp[pos][:, None]) * sides[pos][:, None]
    barrier, col = _first_touch(path, spec.pt_mult * tg[pos], spec.sl_mult * tg[pos])
    t1_pos = pos + 1 + col
    ret = path[np.arange(len(pos)), col]
    idx = close.index
    out = pd.DataFrame({
        "t1": idx[t1_pos], "t0_pos": pos, "t1_pos": t1_pos, "side": sides[pos].astype(np.int8),
        "trgt": tg[pos], "ret": ret, "barrier": barrier, "label": (barrier == BARRIER_PT).astype(np.int8),
    }, index=idx[pos])
    out.index.name = "ts"
    return out


def primary_precision(events: pd.DataFrame) -> float:
    """Precision of the primary signal alone: the share of its events whose profit barrier was hit first."""
    if "label" not in events:
        raise ValueError("events: missing column 'label' (pass the output of triple_barrier_events)")
    return float(events["label"].mean()) if len(events) else float("nan")
