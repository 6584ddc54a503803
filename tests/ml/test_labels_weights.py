"""Triple-barrier labels and uniqueness weights on constructed price paths whose outcome is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.ml.labels import BARRIER_PT, BARRIER_SL, BARRIER_VERTICAL, BarrierSpec, triple_barrier_events
from engine.ml.weights import average_uniqueness, concurrency, return_attribution, time_decay, uniqueness_weights


def _idx(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="ts")


def test_barriers_hit_in_order_and_side_flips_outcome() -> None:
    idx = _idx(10)
    # up 1% per bar for 3 bars, then down 3% per bar
    logp = np.log(100) + np.array([0, .01, .02, .03, 0.0, -.03, -.06, -.09, -.12, -.15])
    close = pd.Series(np.exp(logp), index=idx)
    target = pd.Series(0.015, index=idx)  # barriers: pt 2*1.5% = 3%, sl 1.5%
    spec = BarrierSpec(pt_mult=2.0, sl_mult=1.0, max_holding=4, vol_span=10)
    long = pd.Series([1, 0, 0, 0, 0, 0, 0, 0, 0, 0], index=idx)
    ev = triple_barrier_events(close, long, spec, target=target)
    assert len(ev) == 1
    assert ev["barrier"].iloc[0] == BARRIER_PT and ev["label"].iloc[0] == 1
    assert ev["t1"].iloc[0] == idx[3] and ev["ret"].iloc[0] == pytest.approx(0.03)
    short = -long
    ev = triple_barrier_events(close, short, spec, target=target)
    assert ev["barrier"].iloc[0] == BARRIER_SL and ev["label"].iloc[0] == 0 and ev["t1"].iloc[0] == idx[2]
    # a long opened at bar 4 (top) is stopped at bar 5; an event whose holding period passes the data is dropped
    ev = triple_barrier_events(close, pd.Series([0, 0, 0, 0, 1, 0, 0, 0, 0, 1], index=idx), spec, target=target)
    assert list(ev.index) == [idx[4]] and ev["barrier"].iloc[0] == BARRIER_SL


def test_vertical_barrier_when_nothing_touched() -> None:
    idx = _idx(8)
    close = pd.Series(100 * np.exp(np.array([0, .001, -.001, .002, 0, .001, 0, 0])), index=idx)
    spec = BarrierSpec(pt_mult=2, sl_mult=1, max_holding=3, vol_span=5)
    ev = triple_barrier_events(close, pd.Series(1, index=idx), spec, target=pd.Series(0.05, index=idx))
    assert (ev["barrier"] == BARRIER_VERTICAL).all() and (ev["label"] == 0).all()
    assert (ev["t1_pos"] - ev["t0_pos"] == 3).all()
    assert spec.payoff_ratio == 2.0


def test_bad_input_is_named() -> None:
    idx = _idx(5)
    close = pd.Series([1.0, 2, 3, 4, 5], index=idx)
    with pytest.raises(ValueError, match="side"):
        triple_barrier_events(close, pd.Series([2, 0, 0, 0, 0], index=idx), BarrierSpec(max_holding=2))
    with pytest.raises(ValueError, match="pt_mult"):
        BarrierSpec(pt_mult=0)
    with pytest.raises(ValueError, match="close"):
        triple_barrier_events(close * 0, pd.Series(0, index=idx), BarrierSpec(max_holding=2))


def test_random_walk_label_rate_matches_barrier_geometry() -> None:
    """Driftless walk with a long horizon: P(hit +2u before -1u) is 1/3 (gambler's ruin)."""
    rng = np.random.default_rng(3)
    n = 20_000
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, n))), index=_idx(n))
    ev = triple_barrier_events(close, pd.Series(1, index=close.index), BarrierSpec(2.0, 1.0, 400, 100),
                               target=pd.Series(0.02, index=close.index))
    assert (ev["barrier"] != BARRIER_VERTICAL).mean() > 0.97
    share_pt = (ev["barrier"] == BARRIER_PT).mean()
    assert 0.28 < share_pt < 0.39
    assert len(ev) == n - 400
    # the default horizon-volatility target needs a warm-up, then labels every bar
    ev = triple_barrier_events(close, pd.Series(1, index=close.index), BarrierSpec(2.0, 1.0, 48, 100))
    assert n - 48 - 30 < len(ev) <= n - 48 and 0.15 < ev["label"].mean() < 0.33


def test_uniqueness_matches_hand_computation() -> None:
    # events: [0,2], [1,3], [4,4]; concurrency 1,2,2,1,1
    t0, t1 = np.array([0, 1, 4]), np.array([2, 3, 4])
    assert list(concurrency(t0, t1, 5)) == [1, 2, 2, 1, 1]
    u = average_uniqueness(t0, t1, 5)
    assert u == pytest.approx([(1 + .5 + .5) / 3, (.5 + .5 + 1) / 3, 1.0])
    ra = return_attribution(t0, t1, np.array([0.0, 0.02, -0.04, 0.01, 0.03]))
    assert ra == pytest.approx([abs(0.01 - 0.02), abs(-0.02 + 0.01), 0.0])
    d = time_decay(u, oldest_weight=0.5)
    assert d[-1] == pytest.approx(1.0) and d[0] > 0.5 and np.all(np.diff(d) > 0)
    ev = pd.DataFrame({"t0_pos": t0, "t1_pos": t1}, index=_idx(3))
    assert uniqueness_weights(ev, 5).mean() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="t1_pos"):
        average_uniqueness(np.array([3]), np.array([1]), 5)
