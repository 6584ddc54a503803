"""Promotion gates, demotion, leaderboard and drift records on a real state.db."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import insert

from tests.support.backends import raw
from engine.clock import now_ms
from engine.config import LifecycleConfig, Settings, StrategyInstanceConfig
from engine.execution.orders import Fill, OrderRequest, insert_order, record_fill
from engine.trading import lifecycle
from engine.control.client import ControlClient
from engine.monitoring.leaderboard import compute_leaderboard
from engine.store.ops import list_alerts
from engine.store.schema import equity_snapshots, twin_trades

DAY = 86_400_000
CFG = LifecycleConfig(min_paper_days=14.0, min_paper_trades=30, min_dsr=0.5, max_drift_bps=25.0)  # DSR: a probability


def _settings() -> Settings:
    inst = {"good": StrategyInstanceConfig(strategy="quantum_momentum", capital=10_000.0),
            "young": StrategyInstanceConfig(strategy="macro_trend", capital=10_000.0)}
    return dataclasses.replace(Settings(), strategies=inst)


def _record(store, inst_id: str, days: float, trades: int, drift_bps: float, daily_ret: float, start: int,
            noise: float = 0.002) -> None:
    """Write an equity curve (4 points a day), `trades` fills and their twin-trade drifts."""
    n = int(days * 4)
    eq, rows = 10_000.0, []
    for i in range(n + 1):
        rows.append({"ts": start + i * DAY // 4, "scope": inst_id, "equity": eq, "cash": eq, "gross_exposure": 0.0,
                     "net_exposure": 0.0, "unrealized_pnl": 0.0, "realized_pnl": eq - 10_000})
        eq *= 1 + daily_ret / 4 + (noise if i % 2 else -noise)
    with store.begin() as conn:
        conn.execute(insert(equity_snapshots), rows)
    for k in range(trades):
        coid = f"{inst_id[:4]}-{k}"
        ts = start + k * int(days * DAY) // max(1, trades)
        insert_order(store, OrderRequest(instance_id=inst_id, symbol="BTC/USDT", side="buy" if k % 2 == 0 else "sell",
                                         qty=0.01, client_order_id=coid), ts)
        record_fill(store, Fill(f"{coid}:1", coid, inst_id, "BTC/USDT", "buy" if k % 2 == 0 else "sell", 0.01,
                                50_000.0 + 10 * k, 0.25, "taker", ts))
        with store.begin() as conn:
            conn.execute(insert(twin_trades).values(ts=ts, instance_id=inst_id, symbol="BTC/USDT",
                                                    client_order_id=coid, live_price=50_000.0, twin_price=50_000.0,
                                                    live_fee=0.25, twin_fee=0.25, slippage_bps=drift_bps,
                                                    drift_bps=drift_bps))


@pytest.fixture
def seeded(store):
    lifecycle.sync_instances(store, _settings())
    start = now_ms() + 1000  # after the instances' stage_changed_at
    _record(store, "good", days=20, trades=40, drift_bps=5.0, daily_ret=0.004, start=start)
    _record(store, "young", days=2, trades=5, drift_bps=5.0, daily_ret=0.004, start=start)
    return store


def test_gate_refuses_a_too_short_paper_record(seeded):
    rep = lifecycle.gate_report(seeded, "young", CFG)
    failed = {c.name for c in rep.checks if not c.ok}
    assert not rep.passed and {"days", "trades"} <= failed
    with pytest.raises(lifecycle.LifecycleError, match="days=.*trades="):
        lifecycle.promote(seeded, "young", CFG, confirm=True, source="cli", user="op")
    assert lifecycle.get_instance(seeded, "young").stage == "paper"


def test_gate_accepts_a_record_that_meets_it_with_operator_confirmation(seeded):
    rep = lifecycle.gate_report(seeded, "good", CFG)
    assert rep.passed, rep.summary()
    assert {c.name for c in rep.checks} == {"days", "trades", "dsr", "drift_bps"}
    with pytest.raises(lifecycle.LifecycleError, match="confirmation"):
        lifecycle.promote(seeded, "good", CFG, confirm=False, source="cli", user="op")
    lifecycle.promote(seeded, "good", CFG, confirm=True, source="cli", user="op")
    inst = lifecycle.get_instance(seeded, "good")
    assert inst.stage == "live-small"
    assert inst.effective_capital(CFG) == pytest.approx(10_000.0 * CFG.live_small_fraction)


def test_gate_refuses_excess_drift_and_a_losing_record(store):
    lifecycle.sync_instances(store, _settings())
    start = now_ms() + 1000
    _record(store, "good", days=20, trades=40, drift_bps=60.0, daily_ret=-0.004, start=start)
    rep = lifecycle.gate_report(store, "good", CFG)
    assert {c.name for c in rep.checks if not c.ok} == {"dsr", "drift_bps"}


def test_promote_through_the_control_api_with_no_engine_is_audited(seeded, report):
    client = ControlClient(seeded, source="cli", user="op", lifecycle=CFG)
    refused = client.promote("young", confirm=True)
    assert not refused.ok and "gate not met" in refused.message
    ok = client.promote("good", confirm=True)
    assert ok.ok and ok.data["to_stage"] == "live-small"
    with raw(seeded) as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_log WHERE \"user\"='op'").fetchall()]
    assert "strategy.promote" in actions and actions.count("command.promote") == 2
    assert client.pause_strategy("good").ok and lifecycle.get_instance(seeded, "good").status == "paused"
    assert client.demote("good", "test").ok and lifecycle.get_instance(seeded, "good").stage == "paper"


def test_auto_demotion_on_a_drawdown_breach(store):
    lifecycle.sync_instances(store, _settings())
    with store.begin() as conn:
        conn.execute(lifecycle.strategy_instances.update().where(lifecycle.strategy_instances.c.id == "good")
                     .values(stage="live"))
    _record(store, "good", days=3, trades=0, drift_bps=0.0, daily_ret=-0.15, start=now_ms() + 1000, noise=0.0)
    assert lifecycle.auto_demote(store, CFG) == ["good"]
    assert lifecycle.get_instance(store, "good").stage == "live-small"
    assert any(a.rule == "lifecycle.demote" for a in list_alerts(store))


def test_leaderboard_ranks_by_deflated_sharpe(seeded):
    board = compute_leaderboard(seeded, CFG)
    assert [r.instance_id for r in board] == ["good", "young"]  # the longer record is the more significant
    good = next(r for r in board if r.instance_id == "good")
    assert good.trades == 40 and good.drift_bps == pytest.approx(5.0) and good.pnl > 0
    assert 0 <= good.hit_rate <= 1 and good.rank == 1


def test_console_and_cli_clients_check_the_configured_gates(seeded, state_url) -> None:  # noqa: ANN001
    """Both front ends build their client from settings, so a relaxed gate is the same gate in the console."""
    from console.app import QuantdeskApp
    from engine.config import settings_with
    from engine.config_rules import state_target

    settings = settings_with(_settings(), store=state_target(state_url),
                             lifecycle={"min_paper_days": 1.0, "min_paper_trades": 5, "min_dsr": 0.0})
    console_client = QuantdeskApp(settings)._default_control()
    assert console_client.lifecycle == ControlClient.from_settings(settings, "cli").lifecycle == settings.lifecycle
    assert console_client.promote("young", confirm=True).ok  # 2 days, 5 trades: passes the configured gates


def test_a_promotion_on_a_market_clock_ahead_of_the_wall_clock_is_not_read_as_a_drawdown(store):
    """The twin / simulator stamps equity snapshots with market time, which can run ahead of the wall clock: the
    paper record before a live-small promotion must not count as the live-small record (it read as a 90 %
    drawdown and demoted the instance right after the promotion, seen in benchmarks/rehearse_live.sh)."""
    lifecycle.sync_instances(store, _settings())
    ahead = now_ms() + 3_600_000  # the market clock an hour ahead
    _record(store, "good", days=20, trades=40, drift_bps=5.0, daily_ret=0.004, start=ahead)
    cfg = dataclasses.replace(CFG, min_paper_days=1.0, min_dsr=0.0, live_small_fraction=0.1)
    assert lifecycle.promote(store, "good", cfg, confirm=True, source="cli", user="op").to_stage == "live-small"
    last = ahead + 20 * DAY
    with store.begin() as conn:  # the first live-small snapshot: a tenth of the capital, no loss
        conn.execute(insert(equity_snapshots).values(ts=last + 60_000, scope="good", equity=1_000.0, cash=1_000.0,
                                                     gross_exposure=0.0, net_exposure=0.0, unrealized_pnl=0.0,
                                                     realized_pnl=0.0))
    assert lifecycle.auto_demote(store, cfg) == []
    assert lifecycle.get_instance(store, "good").stage == "live-small"
