"""The shipped strategies compute their windows, EWMs and ranks with engine.features.fast: their signals on the
simulator's bars are identical to those of the previous pandas implementation (kept here as the reference)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.strategy import numeric
from strategies.macro_trend import MacroTrend
from strategies.quantum_momentum import QuantumMomentum

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def pandas_rolling(a: np.ndarray, window: int, min_periods: int, how: str) -> np.ndarray:
    """The former engine.strategy.numeric.rolling: pandas' C window kernels."""
    return getattr(pd.DataFrame(a).rolling(window, min_periods=min_periods), how)().to_numpy()


def pandas_ewm_mean(a: np.ndarray, span: float | None = None, alpha: float | None = None,
                    min_periods: int = 0) -> np.ndarray:
    """The former engine.strategy.numeric.ewm_mean."""
    return pd.DataFrame(a).ewm(span=span, alpha=alpha, min_periods=min_periods).mean().to_numpy()


def broadcast_row_rank(a: np.ndarray) -> np.ndarray:
    """The former engine.strategy.numeric.row_rank (pairwise comparisons by broadcasting)."""
    with np.errstate(invalid="ignore"):
        less = (a[:, None, :] < a[:, :, None]).sum(axis=2)
        equal = (a[:, None, :] == a[:, :, None]).sum(axis=2)
    n = np.isfinite(a).sum(axis=1, keepdims=True)
    rank = less + (equal - 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(n > 1, rank / (n - 1) * 2.0 - 1.0, np.nan)
    return np.where(np.isfinite(a), scaled, np.nan)


@pytest.fixture(scope="module")
def sim_panel() -> dict[str, pd.DataFrame]:
    """240 days of the simulator's 1h bars for three symbols (deterministic seed and clock)."""
    from engine.data.simulator import SimulatedExchange

    sim = SimulatedExchange(seed=11, clock=lambda: 1_790_000_000.0)
    now = sim.milliseconds() // 3_600_000 * 3_600_000
    since = now - 240 * 86_400_000
    return {s: sim.ohlcv_frame(s, "1h", since, now) for s in SYMBOLS}


def _with_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(numeric, "rolling", pandas_rolling)
    monkeypatch.setattr(numeric, "ewm_mean", pandas_ewm_mean)
    monkeypatch.setattr(numeric, "row_rank", broadcast_row_rank)


@pytest.mark.parametrize("strategy", [QuantumMomentum(), QuantumMomentum(fast=12, mid=60, slow=200, entry=0.3),
                                      MacroTrend(), MacroTrend(fast=6, slow=30, entry=0.2, exit=0.05)],
                         ids=["qm-default", "qm-fast", "mt-default", "mt-fast"])
def test_signals_identical_to_the_pandas_implementation(strategy: object, sim_panel: dict,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Same sides on every bar, and the intermediate scores equal to 1e-9."""
    new = strategy.signals(sim_panel)
    new_scores = strategy.scores(sim_panel) if isinstance(strategy, QuantumMomentum) else \
        {"trend": strategy.trend_score(sim_panel)}
    with monkeypatch.context() as m:
        _with_reference(m)
        old = strategy.signals(sim_panel)
        old_scores = strategy.scores(sim_panel) if isinstance(strategy, QuantumMomentum) else \
            {"trend": strategy.trend_score(sim_panel)}
    assert (new != 0).to_numpy().sum() > 50, "the case should trade"
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    for key, frame in old_scores.items():
        pd.testing.assert_frame_equal(new_scores[key].astype("float64"), frame.astype("float64"), rtol=1e-9,
                                      atol=1e-12, obj=key)


def test_row_rank_equals_the_broadcast_version_with_ties_nan_and_inf() -> None:
    """row_rank through the compiled rank is bit-identical to the pairwise version."""
    rng = np.random.default_rng(5)
    a = rng.integers(0, 4, (500, 5)).astype("float64")
    a[rng.random(a.shape) < 0.1] = np.nan
    a[7, 2] = np.inf
    assert np.array_equal(numeric.row_rank(a), broadcast_row_rank(a), equal_nan=True)
