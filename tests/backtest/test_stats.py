"""Metrics, PSR, DSR and PBO (CSCV) against hand computations and known behaviour."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kurtosis, norm, skew

from engine.backtest.metrics import compute_metrics, monthly_returns, periods_per_year
from engine.backtest.stats import deflated_sharpe, expected_max_sharpe, pbo_cscv, probabilistic_sharpe, sample_moments


def test_metrics_of_a_known_curve() -> None:
    """A curve with known returns gives the textbook values, annualised with 365 x 24 hourly bars."""
    rng = np.random.default_rng(3)
    rets = rng.normal(0.0002, 0.01, 5000)
    idx = pd.date_range("2024-01-01", periods=5001, freq="1h", tz="UTC")
    eq = pd.Series(1000.0 * np.concatenate(([1.0], np.cumprod(1 + rets))), index=idx)
    ppy = periods_per_year(3_600_000)
    assert ppy == 8760.0
    m = compute_metrics(eq, None, ppy)
    assert m["total_return"] == pytest.approx(eq.iloc[-1] / 1000.0 - 1, rel=1e-12)
    assert m["sharpe"] == pytest.approx(rets.mean() / rets.std(ddof=1) * math.sqrt(8760), rel=1e-9)
    assert m["volatility"] == pytest.approx(rets.std(ddof=1) * math.sqrt(8760), rel=1e-9)
    peak = np.maximum.accumulate(eq.to_numpy())
    assert m["max_drawdown"] == pytest.approx((eq.to_numpy() / peak - 1).min(), rel=1e-12)
    assert m["cagr"] == pytest.approx((eq.iloc[-1] / 1000.0) ** (8760 / 5000) - 1, rel=1e-9)
    assert m["calmar"] == pytest.approx(m["cagr"] / -m["max_drawdown"], rel=1e-12)
    assert m["skew"] == pytest.approx(skew(rets), rel=1e-9)
    assert m["kurtosis"] == pytest.approx(kurtosis(rets, fisher=False), rel=1e-9)
    assert 0 < m["max_drawdown_bars"] < 5000
    trades = pd.DataFrame({"pnl": [10.0, -5.0, 20.0, -5.0], "bars": [1, 2, 3, 4]})
    m2 = compute_metrics(eq, trades, ppy)
    assert (m2["hit_rate"], m2["profit_factor"], m2["trades"]) == (0.5, 3.0, 4)
    table = monthly_returns(eq)
    assert table.shape[0] == 1 and np.isfinite(table.loc[2024, 1])
    with pytest.raises(ValueError, match="equity"):
        compute_metrics(pd.Series([1.0]), None, ppy)


def test_psr_matches_the_formula_and_dsr_deflates_with_trials() -> None:
    """PSR equals the Bailey-Lopez de Prado formula; DSR falls as the trial count grows."""
    sr, n, sk, ku = 0.05, 1000, -0.5, 5.0
    expected = norm.cdf(sr * math.sqrt(n - 1) / math.sqrt(1 - sk * sr + (ku - 1) / 4 * sr * sr))
    assert probabilistic_sharpe(sr, 0.0, n, sk, ku) == pytest.approx(expected, rel=1e-12)
    assert deflated_sharpe(sr, 1, 0.001, n, sk, ku) == pytest.approx(expected, rel=1e-12)
    e10 = expected_max_sharpe(10, 0.0004)
    z = (1 - 0.5772156649015329) * norm.ppf(0.9) + 0.5772156649015329 * norm.ppf(1 - 1 / (10 * math.e))
    assert e10 == pytest.approx(0.02 * z, rel=1e-9)
    dsr = [deflated_sharpe(sr, k, 0.0004, n, sk, ku) for k in (1, 10, 100, 1000)]
    assert all(a > b for a, b in zip(dsr, dsr[1:]))
    with pytest.raises(ValueError, match="n_trials"):
        deflated_sharpe(sr, 0, 0.1, n, sk, ku)
    mean, std, s, k = sample_moments(np.array([1.0, 2.0, 3.0, 4.0]))
    assert (mean, s) == (2.5, 0.0) and std == pytest.approx(np.std([1, 2, 3, 4], ddof=1))


def test_pbo_is_high_for_noise_and_low_for_a_real_edge(report) -> None:  # noqa: ANN001
    """Pure-noise configurations overfit about half the time; one genuinely better configuration does not."""
    rng = np.random.default_rng(11)
    noise = rng.normal(0, 0.01, (2000, 30))
    p_noise = pbo_cscv(noise, 10)["pbo"]
    edge = noise.copy()
    edge[:, 7] += 0.004
    p_edge = pbo_cscv(edge, 10)["pbo"]
    report("PBO (CSCV, 10 splits, 30 configs)", {"noise": p_noise, "one real edge": p_edge})
    assert 0.25 < p_noise < 0.75
    assert p_edge < 0.05
    with pytest.raises(ValueError, match="n_splits"):
        pbo_cscv(noise, 7)
    with pytest.raises(ValueError, match="configurations"):
        pbo_cscv(noise[:, :1], 10)


def test_psr_keeps_the_lower_tail() -> None:
    """Phi(-10) is 7.6e-24, not 0: a clearly losing record still has an exact (tiny) PSR, as scipy's norm says."""
    sr, n = -0.1, 10_001  # z = -0.1 * 100 / sqrt(1 + 0.99 * 0.01 / 4) ~ -10
    expected = norm.cdf(sr * math.sqrt(n - 1) / math.sqrt(1 + (3 - 1) / 4 * sr * sr))
    got = probabilistic_sharpe(sr, 0.0, n, 0.0, 3.0)
    assert 0.0 < got == pytest.approx(expected, rel=1e-9)
    assert deflated_sharpe(-0.2, 5, 0.0004, n, 0.0, 3.0) > 0.0


def test_psr_is_undefined_not_clamped_when_the_variance_factor_is_not_positive() -> None:
    """1 - skew*SR + (kurt-1)/4*SR^2 <= 0 makes PSR and DSR NaN with a reason, never 0 or 1."""
    from engine.backtest.stats import undefined_reason

    sr, sk, ku = 0.5, 4.0, 1.0  # 1 - 2 + 0 = -1
    assert math.isnan(probabilistic_sharpe(sr, 0.0, 500, sk, ku))
    assert math.isnan(deflated_sharpe(sr, 10, 0.001, 500, sk, ku))
    reason = undefined_reason(sr, sk, ku)
    assert reason is not None and "<= 0" in reason and "-1" in reason
    assert undefined_reason(0.05, 0.0, 3.0) is None


def test_dsr_of_returns_reports_its_inputs_and_conventions() -> None:
    """One entry point for a return series: the DSR with SR, SR0, N, V[SR] and the conventions in the docstring."""
    import engine.backtest.stats as stats

    rng = np.random.default_rng(5)
    r = rng.normal(0.001, 0.01, 2000)
    res = stats.deflated_sharpe_of_returns(r, 20, 0.0004)
    mean, std, sk, ku = sample_moments(r)
    assert res.dsr == pytest.approx(deflated_sharpe(mean / std, 20, 0.0004, 2000, sk, ku), rel=1e-12)
    assert res.sr0 == pytest.approx(expected_max_sharpe(20, 0.0004)) and res.n_trials == 20
    assert "N=20" in res.describe()
    flat = stats.deflated_sharpe_of_returns(np.zeros(50), 3, 0.0)
    assert math.isnan(flat.dsr) and "zero variance" in flat.reason
    for phrase in ("per bar", "non-excess", "across trials", "probabilit", "NaN"):
        assert phrase in stats.__doc__


def test_psr_of_a_two_bar_curve_is_undefined_not_one_half() -> None:
    eq = pd.Series([100.0, 101.0, 102.0], index=pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC"))
    assert math.isnan(compute_metrics(eq, None, 8760.0)["psr"])
