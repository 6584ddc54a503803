"""One DSR everywhere: the promotion gate and the leaderboard deflate a record with engine.backtest.stats, by the
trial family its parameters were selected from, with a threshold that is a probability."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert, select

from engine.backtest.registry import TrialIdentity, record_trial
from engine.backtest.stats import deflated_sharpe_of_returns
from engine.clock import now_ms
from engine.config import ConfigError, LifecycleConfig, Settings, StrategyInstanceConfig
from engine.monitoring.leaderboard import compute_leaderboard
from engine.store.schema import backtest_runs, equity_snapshots
from engine.trading import lifecycle

DAY = 86_400_000
CFG = LifecycleConfig(min_paper_days=0.0, min_paper_trades=0, min_dsr=0.95, max_drift_bps=1e9)


def _seed(store, returns: np.ndarray, params: dict) -> None:  # noqa: ANN001
    inst = {"qm": StrategyInstanceConfig(strategy="quantum_momentum", capital=10_000.0, stage="paper", params=params)}
    lifecycle.sync_instances(store, dataclasses.replace(Settings(), strategies=inst))
    start = now_ms() + 1000
    eq = 10_000.0 * np.concatenate(([1.0], np.cumprod(1 + returns)))
    with store.begin() as conn:
        conn.execute(insert(equity_snapshots), [
            {"ts": start + i * DAY // 4, "scope": "qm", "equity": float(e), "cash": float(e), "gross_exposure": 0.0,
             "net_exposure": 0.0, "unrealized_pnl": 0.0, "realized_pnl": 0.0} for i, e in enumerate(eq)])


def _trials(store, params: dict, n: int, sharpe_sd: float, failed_extra: bool = False) -> None:  # noqa: ANN001
    """n research trials on one 1h dataset, one of them with the instance's parameters."""
    rng = np.random.default_rng(1)
    ident = TrialIdentity({"fee": 1}, "code")
    for i in range(n):
        p = dict(params) if i == 0 else {**params, "lookback": 100 + i}
        r = rng.normal(rng.normal(0, sharpe_sd) * 0.01, 0.01, 3000)
        record_trial(store, "ds-1", "quantum_momentum", p, r, identity=ident)
    if failed_extra:  # a peeking configuration with a huge Sharpe: must not count or widen V[SR]
        record_trial(store, "ds-1", "quantum_momentum", {**params, "lookback": 9999}, rng.normal(0.02, 0.01, 3000),
                     identity=ident, lookahead_ok=False)
    with store.begin() as conn:
        conn.execute(insert(backtest_runs).values(
            created_at=now_ms(), kind="backtest", strategy="quantum_momentum", params="{}", symbols="[]",
            timeframe="1h", start_ts=0, end_ts=1, dataset_hash="ds-1", metrics="{}"))


def test_gate_and_leaderboard_use_the_one_dsr_with_the_trial_family(store) -> None:  # noqa: ANN001
    """Same number in the gate, the leaderboard and stats: N from the registry, V[SR] rescaled from 1h bars to the
    6 h snapshot interval, a failed-lookahead trial left out."""
    params = {"lookback": 24}
    rng = np.random.default_rng(7)
    rets = rng.normal(0.002, 0.01, 200)
    _seed(store, rets, params)
    _trials(store, params, 10, 0.05, failed_extra=True)
    with store.connect() as conn:
        sharpes = [r[0] for r in conn.exec_driver_sql(
            "SELECT sharpe FROM trials WHERE lookahead_ok IS NULL OR lookahead_ok = 1").fetchall()]
        snaps = [r[0] for r in conn.execute(select(equity_snapshots.c.equity).where(
            equity_snapshots.c.scope == "qm").order_by(equity_snapshots.c.ts))]
    record = [b / a - 1 for a, b in zip(snaps, snaps[1:])]
    expected = deflated_sharpe_of_returns(record, 10, float(np.var(sharpes, ddof=1)) * 6.0)
    gate = lifecycle.gate_report(store, "qm", CFG)
    check = next(c for c in gate.checks if c.name == "dsr")
    assert check.value == pytest.approx(expected.dsr, rel=1e-9)
    assert "N=10" in str(check.threshold) and ">= 0.95 probability" in str(check.threshold)
    assert check.ok == (expected.dsr >= 0.95)
    row = compute_leaderboard(store, CFG)[0]
    assert row.dsr == pytest.approx(expected.dsr, rel=1e-9) and row.n_trials == 10
    assert row.sharpe_margin == pytest.approx(expected.sharpe - expected.sr0, rel=1e-9)


def test_a_record_with_no_research_trial_says_n_is_one(store) -> None:  # noqa: ANN001
    rets = np.random.default_rng(3).normal(0.001, 0.01, 100)
    _seed(store, rets, {"lookback": 24})
    gate = lifecycle.gate_report(store, "qm", dataclasses.replace(CFG, min_dsr=0.0))
    check = next(c for c in gate.checks if c.name == "dsr")
    assert "N=1" in str(check.threshold) and "no research trial" in str(check.threshold)


def test_the_gate_threshold_is_a_probability() -> None:
    from engine.config import load_settings

    with pytest.raises(ConfigError, match="min_dsr"):
        load_settings(environ={"QUANTDESK__LIFECYCLE__MIN_DSR": "1.5"})
    assert LifecycleConfig().min_dsr == 0.95


def test_there_is_one_dsr_implementation() -> None:
    """No second PSR/DSR formula and no statistics.NormalDist anywhere in engine/."""
    root = Path(__file__).resolve().parents[2] / "engine"
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "NormalDist" not in text, path
        if path.name != "stats.py":
            assert "def deflated_sharpe(" not in text and "(kurt - 1) / 4" not in text, path
