"""A backtest without a store records no trial, so it does not hash its dataset (sha256 over every bar: ~80 ms per
million bars, more than the kernel); the hash stays available on demand and a recorded run still names its family."""

from __future__ import annotations

from engine.backtest.engine import run_backtest
from engine.config import BacktestConfig
from tests.support.strategies.sma_cross import SmaCross


def test_no_store_no_dataset_hash(make_panel) -> None:  # noqa: ANN001
    """metrics name the family 'unrecorded'; result.dataset_hash is computed only when asked for."""
    panel = make_panel(3000)
    result = run_backtest(SmaCross(fast=5, slow=40), panel, BacktestConfig(), lookahead=False)
    assert result.metrics["trial_family"] == "unrecorded" and result.metrics["n_trials"] == 1
    assert "dataset_hash" not in result.__dict__, "the dataset was hashed although nothing was recorded"
    assert len(result.dataset_hash) == 64 and "dataset_hash" in result.__dict__
