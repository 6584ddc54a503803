"""The one compiled pass from int8 side signals to the kernel's inputs (engine.backtest.prepare.side_targets, JIT and
AOT) equals the separate steps it replaces, clean_signals -> fixed_fraction sizer -> target_array -> changed_bars, on
random inputs; and run_backtest through it equals run_backtest through those steps."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.backtest import kernels
from engine.backtest.engine import changed_bars, run_backtest, target_array
from engine.backtest.inputs import clean_signals
from engine.backtest.sizing import fixed_fraction, fixed_fraction_of
from engine.config import BacktestConfig
from tests.backtest.kernel_impls import IMPLEMENTATIONS, aot_extension


def _module(impl: str) -> ModuleType:
    if impl == "aot":
        return aot_extension()
    from engine.backtest import prepare

    return prepare


def _separate_steps(sides: np.ndarray, fraction: float | None) -> tuple:
    n, k = sides.shape
    index = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC")
    symbols = tuple(f"S{j}/USDT" for j in range(k))
    sig = clean_signals(pd.DataFrame(sides, index=index, columns=list(symbols)), index, symbols, "x")
    targets = target_array(fixed_fraction(fraction)(sig, {}), index, symbols)
    changed = changed_bars(targets)
    return sig.to_numpy(), targets, changed, int(np.count_nonzero(changed))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 300), k=st.integers(1, 4), seed=st.integers(0, 2**32 - 1),
       change_p=st.sampled_from([0.01, 0.3, 1.0]), fraction=st.sampled_from([None, 1.0, 0.25, 1 / 3, 0.7071]))
def test_side_targets_equal_the_separate_steps(impl: str, n: int, k: int, seed: int, change_p: float,
                                               fraction: float | None) -> None:
    """Signals, targets, change flags and their count are bit-identical to the four separate steps."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(-1, 2, (n, k)).astype(np.int8)
    keep = rng.random((n, k)) >= change_p
    sides = draws.copy()
    for t in range(1, n):
        sides[t] = np.where(keep[t], sides[t - 1], draws[t])
    f = fixed_fraction_of(fixed_fraction(fraction), k)
    signals, targets, changed = np.empty((n, k)), np.empty((n, k)), np.empty(n, dtype=np.bool_)
    changes, bad = _module(impl).side_targets(np.ascontiguousarray(sides), f, signals, targets, changed)
    r_signals, r_targets, r_changed, r_changes = _separate_steps(sides, fraction)
    assert bad == -1
    assert np.array_equal(signals, r_signals) and signals.dtype == r_signals.dtype
    assert np.array_equal(targets, r_targets) and np.array_equal(np.signbit(targets), np.signbit(r_targets))
    assert np.array_equal(changed, r_changed) and changes == r_changes
    assert kernels.side_targets(sides, f)[3] == r_changes  # the dispatcher (AOT when built) agrees


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("k", [1, 3])
def test_a_side_outside_minus_one_to_one_is_reported_at_its_first_position(impl: str, k: int) -> None:
    """The first bad side (row-major) is reported, wherever the later ones are."""
    sides = np.zeros((50, k), dtype=np.int8)
    sides[30, k - 1] = 2
    sides[40, 0] = -7
    out = np.empty((50, k)), np.empty((50, k)), np.empty(50, dtype=np.bool_)
    _, bad = _module(impl).side_targets(sides, 1.0, *out)
    assert bad == 30 * k + k - 1


class _Sides:
    """A strategy whose signals are a fixed frame (int8 sides here)."""

    name = "sides"

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def signals(self, panel):  # noqa: ANN001, ANN202
        return self.frame


@pytest.mark.parametrize("k,fraction", [(1, 1.0), (1, 0.5), (2, None), (3, 0.2)])
def test_run_backtest_through_the_pass_equals_the_separate_steps(make_panel, monkeypatch: pytest.MonkeyPatch, k: int,
                                                                 fraction: float | None) -> None:
    """Equity, fills, trades, metrics, signals and targets are identical to the sizer-called path."""
    calls = []
    real = kernels.side_targets
    monkeypatch.setattr(kernels, "side_targets", lambda *a: calls.append(1) or real(*a))  # counts, then the real pass
    panel = make_panel(3000, symbols=tuple(f"S{j}/USDT" for j in range(k)), freq="1min")
    index = next(iter(panel.values())).index
    rng = np.random.default_rng(k)
    sides = np.repeat(rng.integers(-1, 2, (300, k)), 10, axis=0).astype(np.int8)
    strategy = _Sides(pd.DataFrame(sides, index=index, columns=list(panel)))
    cfg = BacktestConfig(fee_taker=0.001, half_spread_bps=2.0, impact_coef=0.1)
    sizer = fixed_fraction(fraction)
    fused = run_backtest(strategy, panel, cfg, sizer=sizer, lookahead=False)
    separate = run_backtest(strategy, panel, cfg, sizer=lambda s, p: sizer(s, p), lookahead=False)  # not recognised
    assert len(calls) == 1  # the fused run went through the pass, the other did not
    assert fixed_fraction_of(lambda s, p: sizer(s, p), k) is None
    assert np.array_equal(fused.equity.to_numpy(), separate.equity.to_numpy())
    assert np.array_equal(fused.fill_rows, separate.fill_rows) and np.array_equal(fused.trade_rows, separate.trade_rows)
    assert fused.signals.equals(separate.signals) and fused.targets.equals(separate.targets)
    same = {key: v for key, v in fused.metrics.items() if not (isinstance(v, float) and np.isnan(v))}
    assert same == {key: v for key, v in separate.metrics.items() if not (isinstance(v, float) and np.isnan(v))}


def test_a_bad_int8_signal_raises_clean_signals_error_through_the_pass(make_panel) -> None:
    """A side of 2 gets the same one-line error (bar, symbol, the method's file:line) as the separate steps."""
    panel = make_panel(200, freq="1min")
    index = next(iter(panel.values())).index
    sides = np.zeros((200, 1), dtype=np.int8)
    sides[150, 0] = 2
    strategy = _Sides(pd.DataFrame(sides, index=index, columns=list(panel)))
    with pytest.raises(ValueError, match=r"signal 2\.0 at .* is not -1, 0 or 1 \(.*test_prepare\.py:\d+\)") as fused:
        run_backtest(strategy, panel, BacktestConfig(), lookahead=False)
    with pytest.raises(ValueError) as separate:
        run_backtest(strategy, panel, BacktestConfig(), sizer=lambda s, p: fixed_fraction()(s, p), lookahead=False)
    assert str(fused.value) == str(separate.value)
