"""The kernel, both numba's JIT and the ahead-of-time compiled extension, must agree exactly with the plain-Python
reference loop on random strategies and markets: fractional target weights in [-1, 1], fixed and per-trade
(vol-scaled) stop-loss / take-profit fractions, intrabar hits and opens that gap through the levels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pandas as pd

from engine.backtest import layout
from engine.backtest.engine import changed_bars, positions_from_fills
from tests.backtest.kernel_impls import IMPLEMENTATIONS, implementation
from tests.backtest.reference_loop import reference_simulate


@st.composite
def markets(draw):  # noqa: ANN201 - hypothesis strategy
    """A random OHLCV market (some symbols listed late), random targets, costs, barriers and funding."""
    n = draw(st.integers(2, 60))
    k = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, k)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.01, (n, k)))
    gaps = rng.random((n, k)) < draw(st.sampled_from([0.0, 0.1, 0.3]))  # opens that jump through stops / targets
    open_ = np.where(gaps, open_ * np.exp(rng.choice([-1.0, 1.0], (n, k)) * rng.uniform(0.03, 0.08, (n, k))), open_)
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.02, (n, k))))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.02, (n, k))))
    if k > 1 and draw(st.booleans()):
        late = draw(st.integers(1, n - 1))
        for a in (open_, high, low, close):
            a[:late, k - 1] = np.nan
    fill_choice = draw(st.sampled_from(["open", "close", "typical"]))
    fill_px = {"open": open_, "close": close, "typical": (open_ + high + low + close) / 4}[fill_choice].copy()
    levels = np.array(draw(st.lists(st.sampled_from([-1.0, -0.5, 0.0, 0.3, 0.5, 1.0])
                                    | st.floats(-1.0, 1.0, allow_nan=False, allow_subnormal=False),
                                    min_size=1, max_size=6)))
    change = rng.random((n, k)) < draw(st.floats(0.05, 0.9))
    raw = np.where(change, levels[rng.integers(0, len(levels), (n, k))], np.nan)
    raw[0] = np.where(np.isnan(raw[0]), 0.0, raw[0])
    targets = _ffill(raw)
    sigma = np.abs(rng.normal(0.01, 0.005, (n, k)))
    vol_ref = rng.uniform(0.0, 5000.0, (n, k))
    funding = np.where(rng.random((n, k)) < 0.2, rng.normal(0, 0.001, (n, k)), 0.0)
    params = dict(
        init_cash=draw(st.floats(1_000.0, 1e6)), fee_taker=draw(st.sampled_from([0.0, 0.0005, 0.001])),
        fee_maker=draw(st.sampled_from([0.0, 0.0002])), half_spread=draw(st.sampled_from([0.0, 0.0001, 0.001])),
        impact_coef=draw(st.sampled_from([0.0, 0.1, 1.0])), stop_loss=draw(st.sampled_from([0.0, 0.01, 0.03])),
        take_profit=draw(st.sampled_from([0.0, 0.02, 0.05])), max_bars=draw(st.sampled_from([0, 1, 3, 10])),
        fills_at_open=fill_choice == "open" if draw(st.booleans()) else draw(st.booleans()))
    per_trade = draw(st.sampled_from(["none", "stop", "take", "both"]))  # vol-scaled fractions by decision bar
    scale = draw(st.sampled_from([0.5, 1.0, 3.0]))
    def fracs(on: bool) -> np.ndarray:
        if not on:
            return np.zeros((0, k))
        out = scale * np.abs(rng.normal(0.02, 0.01, (n, k)))
        return np.where(rng.random((n, k)) < 0.05, np.nan, out)  # no estimate yet: no barrier for that trade
    arrays = dict(targets=targets, fill_px=np.ascontiguousarray(fill_px), open_=open_, high=high, low=low,
                  close=_ffill(close), sigma=sigma, vol_ref=vol_ref, funding=funding,
                  stop_frac=fracs(per_trade in ("stop", "both")), take_frac=fracs(per_trade in ("take", "both")))
    return arrays, params


def _ffill(a: np.ndarray) -> np.ndarray:
    out = a.copy()
    for t in range(1, len(out)):
        out[t] = np.where(np.isnan(out[t]), out[t - 1], out[t])
    return np.ascontiguousarray(out)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=markets())
def test_kernel_equals_reference_loop(impl: str, case) -> None:  # noqa: ANN001
    """Equity, positions, every fill and every closed trade agree bit for bit."""
    arrays, p = case
    a = arrays
    n, k = a["targets"].shape
    eq, fills, trades, exposed = implementation(impl).simulate_kernel(
        a["targets"], changed_bars(a["targets"]), a["fill_px"], a["open_"], a["high"], a["low"], a["close"], a["sigma"], a["vol_ref"],
        a["funding"], a["stop_frac"], a["take_frac"], p["init_cash"], p["fee_taker"], p["fee_maker"], p["half_spread"], p["impact_coef"],
        p["stop_loss"], p["take_profit"], p["max_bars"], p["fills_at_open"], 4 * n * k + 4)
    r_eq, r_pos, r_fills, r_trades = reference_simulate(
        a["targets"].tolist(), a["fill_px"].tolist(), a["open_"].tolist(), a["high"].tolist(), a["low"].tolist(),
        a["close"].tolist(), a["sigma"].tolist(), a["vol_ref"].tolist(), a["funding"].tolist(), p["init_cash"],
        p["fee_taker"], p["fee_maker"], p["half_spread"], p["impact_coef"], p["stop_loss"], p["take_profit"],
        p["max_bars"], p["fills_at_open"], a["stop_frac"].tolist(), a["take_frac"].tolist())
    assert np.array_equal(eq, r_eq)
    frame = pd.DataFrame({"bar": fills[:, layout.F_BAR].astype(int), "qty": fills[:, layout.F_QTY],
                          "symbol": fills[:, layout.F_SYM].astype(int)})
    positions = positions_from_fills(frame, pd.RangeIndex(n), list(range(k)))
    assert np.array_equal(positions, r_pos)
    assert exposed == int((r_pos != 0).any(axis=1).sum())
    assert len(fills) == len(r_fills)
    for row, ref in zip(fills, r_fills):
        assert (int(row[layout.F_BAR]), int(row[layout.F_SYM])) == (ref["bar"], ref["sym"])
        assert (row[layout.F_QTY], row[layout.F_PRICE], row[layout.F_FEE]) == (ref["qty"], ref["price"], ref["fee"])
    closed = trades[trades[:, layout.T_REASON] != layout.REASON_END]
    assert len(closed) == len(r_trades)
    for row, ref in zip(closed, r_trades):
        assert (int(row[layout.T_SYM]), int(row[layout.T_ENTRY_BAR]), int(row[layout.T_EXIT_BAR])) == \
            (ref["sym"], ref["entry_bar"], ref["exit_bar"])
        assert row[layout.T_PNL] == ref["pnl"]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_reference_catches_a_changed_rule(impl: str) -> None:
    """Sanity check that the comparison can fail: a different fee gives a different equity curve."""
    n = 20
    close = np.linspace(100, 120, n)[:, None].copy()
    targets = np.zeros((n, 1))
    targets[3:12] = 1.0
    zeros = np.zeros((n, 1))
    args = (targets, close, close, close * 1.01, close * 0.99, close, zeros, zeros, zeros, 10_000.0)
    eq, *_ = implementation(impl).simulate_kernel(targets, changed_bars(targets), *args[1:-1], zeros[:0], zeros[:0],
                                                  10_000.0, 0.001, 0.0, 0.0, 0.0, 0.0, 0.0, 0, True, 100)
    r_eq, *_ = reference_simulate(*[x.tolist() if isinstance(x, np.ndarray) else x for x in args],
                                  0.002, 0.0, 0.0, 0.0, 0.0, 0.0, 0, True)
    assert not np.array_equal(eq, r_eq)
    assert eq[4] == 10_000.0 / (close[4, 0] * 1.001) * close[4, 0]
