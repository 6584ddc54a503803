"""The lookahead check catches strategies that peek, and passes point-in-time ones."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.backtest.engine import run_backtest
from tests.support.strategies.sma_cross import SmaCross
from tests.support.strategies.peeking_oracle import PeekingOracle
from engine.backtest.lookahead import check_lookahead
from engine.config import BacktestConfig


class FullSampleZScore:
    """Subtle leak: normalises by the mean of the whole history, which later bars change."""

    name = "full_sample_z"
    warmup_bars = 0

    def signals(self, panel):  # noqa: ANN001, ANN201
        close = panel["BTC/USDT"]["close"]
        z = (close - close.mean()) / close.std()
        return (z > 0).astype(int).to_frame("BTC/USDT")


def test_peeking_strategy_is_flagged_in_the_backtest_report(make_panel, report) -> None:  # noqa: ANN001
    """run_backtest's built-in check fails the peeking oracle, which looks wildly profitable."""
    panel = make_panel(1200, ("BTC/USDT", "ETH/USDT"))
    res = run_backtest(PeekingOracle(), panel, BacktestConfig())
    assert res.lookahead is not None and not res.lookahead.ok
    assert res.metrics["lookahead_ok"] is False
    assert res.lookahead.n_changed > 0 and res.lookahead.violations
    assert "FAILED" in res.lookahead.summary()
    report("peeking oracle", {"sharpe": res.metrics["sharpe"], "changed values": res.lookahead.n_changed})
    assert res.metrics["sharpe"] > 3  # the leak makes it look great, which is why the check exists


def test_point_in_time_strategy_passes(make_panel) -> None:  # noqa: ANN001
    """SMA crossover signals are unchanged on every truncated history."""
    panel = make_panel(1200, ("BTC/USDT", "ETH/USDT"))
    res = run_backtest(SmaCross(fast=5, slow=30), panel, BacktestConfig())
    assert res.lookahead.ok and res.lookahead.n_checked > 1000 and len(res.lookahead.cuts) == 5


def test_full_sample_normalisation_is_caught(make_panel) -> None:  # noqa: ANN001
    """A whole-history statistic is a lookahead leak too."""
    panel = make_panel(800)
    result = check_lookahead(FullSampleZScore().signals, panel)
    assert not result.ok
    assert result.first_violation is not None and pd.Timestamp(result.first_violation) < panel["BTC/USDT"].index[-1]


def test_bad_cut_points_are_rejected(make_panel) -> None:  # noqa: ANN001
    """Cuts must be fractions strictly inside (0, 1)."""
    panel = make_panel(100)
    with pytest.raises(ValueError, match="cuts"):
        check_lookahead(SmaCross().signals, panel, cuts=(0.5, 1.2))
