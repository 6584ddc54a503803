"""The kernel's one-symbol path (engine.backtest.kernel_single: one symbol, no barriers, no funding) agrees bit for bit
with the plain-Python reference loop, on the JIT and the AOT kernel, including runs of consecutive target changes,
fractional and short targets, costs with impact, and NaN fill prices (where it hands over to the general loop)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.backtest import layout
from engine.backtest.engine import changed_bars
from engine.backtest.kernel_single import single_symbol
from tests.backtest.kernel_impls import IMPLEMENTATIONS, implementation
from tests.backtest.reference_loop import reference_simulate


def _case(n: int, seed: int, change_p: float, nan_p: float, costs: tuple[float, float, float]) -> tuple:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, 1)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.005, (n, 1)))
    fill_px = open_.copy()
    fill_px[rng.random((n, 1)) < nan_p] = np.nan  # bars that cannot trade: the general loop retries them
    levels = np.array([-1.0, -0.5, 0.0, 0.25, 1.0, rng.uniform(-1, 1)])
    raw = np.where(rng.random((n, 1)) < change_p, levels[rng.integers(0, len(levels), (n, 1))], np.nan)
    raw[0] = 0.0 if np.isnan(raw[0, 0]) else raw[0]
    targets = raw.copy()
    for t in range(1, n):
        if np.isnan(targets[t, 0]):
            targets[t] = targets[t - 1]
    sigma = np.abs(rng.normal(0.01, 0.005, (n, 1)))
    vol_ref = rng.uniform(0.0, 5000.0, (n, 1))
    fee, half_spread, impact = costs
    return targets, fill_px, open_, close, sigma, vol_ref, fee, half_spread, impact


def _check(impl: str, case: tuple) -> None:
    targets, fill_px, open_, close, sigma, vol_ref, fee, half_spread, impact = case
    n = len(targets)
    none = np.zeros((0, 1))
    eq, fills, trades, exposed = implementation(impl).simulate_kernel(
        targets, changed_bars(targets), fill_px, open_, open_ * 1.01, open_ * 0.99, close, sigma, vol_ref, none, none,
        none, 10_000.0, fee, 0.0002, half_spread, impact, 0.0, 0.0, 0, True, 2 * n + 4)
    r_eq, r_pos, r_fills, r_trades = reference_simulate(
        targets.tolist(), fill_px.tolist(), open_.tolist(), (open_ * 1.01).tolist(), (open_ * 0.99).tolist(),
        close.tolist(), sigma.tolist(), vol_ref.tolist(), np.zeros((n, 1)).tolist(), 10_000.0, fee, 0.0002,
        half_spread, impact, 0.0, 0.0, 0, True)
    assert np.array_equal(eq, np.array(r_eq))
    assert exposed == int((np.array(r_pos) != 0).any(axis=1).sum())
    assert [(int(f[layout.F_BAR]), f[layout.F_QTY], f[layout.F_PRICE], f[layout.F_FEE]) for f in fills] == \
        [(f["bar"], f["qty"], f["price"], f["fee"]) for f in r_fills]
    closed = trades[trades[:, layout.T_REASON] != layout.REASON_END]
    assert [(int(r[layout.T_ENTRY_BAR]), int(r[layout.T_EXIT_BAR]), r[layout.T_PNL]) for r in closed] == \
        [(r["entry_bar"], r["exit_bar"], r["pnl"]) for r in r_trades]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(2, 80), seed=st.integers(0, 2**32 - 1), change_p=st.sampled_from([0.02, 0.2, 0.9]),
       nan_p=st.sampled_from([0.0, 0.0, 0.1]),
       costs=st.sampled_from([(0.0, 0.0, 0.0), (0.001, 0.0, 0.0), (0.0005, 0.0001, 1.0)]))
def test_one_symbol_path_equals_reference_loop(impl: str, n: int, seed: int, change_p: float, nan_p: float,
                                               costs: tuple[float, float, float]) -> None:
    """Equity, exposed bars, every fill and every closed trade agree bit for bit with the reference loop."""
    _check(impl, _case(n, seed, change_p, nan_p, costs))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_long_series_with_vectorised_stretches_equal_reference(impl: str) -> None:
    """A 20k-bar series (long stretches between fills: the vectorised loops) agrees with the reference loop."""
    _check(impl, _case(20_000, 7, 0.01, 0.0, (0.001, 0.0001, 0.5)))


def test_the_path_runs_without_nan_and_hands_over_with_nan() -> None:
    """single_symbol does the work when every fill bar can trade, and writes nothing when one cannot."""
    targets, fill_px, _open, close, sigma, vol_ref, *_ = _case(500, 3, 0.1, 0.0, (0.0, 0.0, 0.0))
    changed = changed_bars(targets)

    def run(px: np.ndarray) -> tuple:
        equity = np.full(len(targets), -1.0)
        counts = np.zeros(2, dtype=np.int64)
        fills = np.empty((2000, layout.N_FILL_COLS))
        trades = np.empty((2000, layout.N_TRADE_COLS))
        ran, _ = single_symbol(targets, changed, px, close, sigma, vol_ref, 10_000.0, 0.0, 0.0, 0.0, 0.0,
                               equity, np.zeros(1), np.zeros((1, layout.N_STATE_COLS)), fills, counts, trades)
        return ran, equity, counts

    ran, equity, counts = run(fill_px)
    assert ran and counts[0] > 0 and (equity > 0).all()
    first_fill = int(np.argmax(changed)) + 1
    fill_px[first_fill, 0] = np.nan
    ran, equity, counts = run(fill_px)
    assert not ran and counts[0] == 0 and (equity == -1.0).all()
