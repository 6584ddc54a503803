"""Sample weights for overlapping triple-barrier events (AFML ch. 4).

Events whose holding periods overlap share the same returns, so they are not independent observations. The average
uniqueness of an event is the mean over its bars of 1 / (number of events alive on that bar); it down-weights crowded
events so a classifier does not count one market move many times.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _check_spans(t0_pos: np.ndarray, t1_pos: np.ndarray, n_bars: int) -> tuple[np.ndarray, np.ndarray]:
    t0 = np.asarray(t0_pos, dtype=np.int64)
    t1 = np.asarray(t1_pos, dtype=np.int64)
    if t0.shape != t1.shape:
        raise ValueError(f"t1_pos: shape {t1.shape} differs from t0_pos {t0.shape}")
    if len(t0) and (t0.min() < 0 or t1.max() >= n_bars):
        raise ValueError(f"t0_pos/t1_pos: positions must lie in [0, {n_bars})")
    if (t1 < t0).any():
        raise ValueError("t1_pos: an event ends before it starts")
    return t0, t1


def concurrency(t0_pos: np.ndarray, t1_pos: np.ndarray, n_bars: int) -> np.ndarray:
    """Number of events alive on each bar (an event spans bars t0..t1 inclusive)."""
    t0, t1 = _check_spans(t0_pos, t1_pos, n_bars)
    diff = np.zeros(n_bars + 1, dtype=np.int64)
    np.add.at(diff, t0, 1)
    np.add.at(diff, t1 + 1, -1)
    return np.cumsum(diff[:-1])


def average_uniqueness(t0_pos: np.ndarray, t1_pos: np.ndarray, n_bars: int) -> np.ndarray:
    """Average uniqueness of each event: mean of 1/concurrency over the bars it spans, in (0, 1]."""
    t0, t1 = _check_spans(t0_pos, t1_pos, n_bars)
    conc = concurrency(t0, t1, n_bars)
    inv = np.where(conc > 0, 1.0 / np.maximum(conc, 1), 0.0)
    csum = np.concatenate([[0.0], np.cumsum(inv)])
    return (csum[t1 + 1] - csum[t0]) / (t1 - t0 + 1)


def return_attribution(t0_pos: np.ndarray, t1_pos: np.ndarray, log_returns: np.ndarray) -> np.ndarray:
    """|sum of bar returns / concurrency| over each event's span: weights events by the unique return they carry."""
    rets = np.nan_to_num(np.asarray(log_returns, dtype=float))
    t0, t1 = _check_spans(t0_pos, t1_pos, len(rets))
    conc = concurrency(t0, t1, len(rets))
    share = np.where(conc > 0, rets / np.maximum(conc, 1), 0.0)
    csum = np.concatenate([[0.0], np.cumsum(share)])
    # the return of bar t0 happened before the event was opened; attribute bars t0+1 .. t1
    return np.abs(csum[t1 + 1] - csum[t0 + 1])


def time_decay(uniqueness: np.ndarray, oldest_weight: float = 1.0) -> np.ndarray:
    """Linear decay over cumulative uniqueness so recent events weigh more; oldest_weight in [0, 1] (1 = no decay)."""
    if not 0.0 <= oldest_weight <= 1.0:
        raise ValueError(f"oldest_weight: must be in [0, 1], got {oldest_weight}")
    cum = np.cumsum(np.asarray(uniqueness, dtype=float))
    if len(cum) == 0 or cum[-1] == 0:
        return np.ones_like(cum)
    slope = (1.0 - oldest_weight) / cum[-1]
    return oldest_weight + slope * cum


def uniqueness_weights(events: pd.DataFrame, n_bars: int, normalise: bool = True) -> pd.Series:
    """Uniqueness weights of one series' events (columns t0_pos, t1_pos), scaled to mean 1 when `normalise`."""
    for col in ("t0_pos", "t1_pos"):
        if col not in events:
            raise ValueError(f"events: missing column {col!r} (pass the output of triple_barrier_events)")
    w = average_uniqueness(events["t0_pos"].to_numpy(), events["t1_pos"].to_numpy(), n_bars)
    if normalise and len(w):
        w = w / w.mean()
    return pd.Series(w, index=events.index, name="weight")
