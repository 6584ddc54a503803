"""What the off-box messages say: a trading-state change with the rule's values, positions and exposure, and the
daily summary (equity, P&L, drawdown, positions, per-strategy P&L) once per day at the configured time."""

from __future__ import annotations

import datetime as dt
from typing import Iterator

import pytest
from sqlalchemy import insert, select

from engine.config import AlertChannelConfig, AlertsConfig
from engine.monitoring.alerts.channels import build_channels
from engine.monitoring.alerts.sender import AlertSender
from engine.monitoring.alerts.summary import send_daily_summary, summary_due
from engine.risk.trading_state import TradingState, set_state
from engine.store.schema import equity_snapshots, notify_events, positions
from tests.support.receivers import WebhookReceiver
from tests.support.waiting import wait_for

DAY = 86_400_000


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    rx = WebhookReceiver().start()
    yield rx
    rx.stop()


def _desk(store, now: int) -> None:
    with store.begin() as conn:
        conn.execute(insert(positions), [
            dict(instance_id="quantum_momentum", symbol="BTC/USDT", qty=0.25, avg_price=60_000.0, updated_at=now),
            dict(instance_id="macro_trend", symbol="ETH/USDT", qty=-2.0, avg_price=3_000.0, updated_at=now)])
        rows = [("portfolio", now - DAY - 1000, 100_000.0, 0.0, 0.0), ("portfolio", now - 3_600_000, 104_000.0, 0.0,
                                                                       0.0),
                ("portfolio", now, 101_400.0, 0.0, 0.0), ("quantum_momentum", now, 50_900.0, 700.0, 200.0),
                ("macro_trend", now, 50_500.0, 600.0, -100.0)]
        conn.execute(insert(equity_snapshots), [dict(scope=s, ts=ts, equity=eq, cash=eq, gross_exposure=21_000.0,
                                                     net_exposure=9_000.0, unrealized_pnl=u, realized_pnl=r)
                                                for s, ts, eq, r, u in rows])


def test_state_change_notice_carries_rule_values_positions_and_exposure(store, webhook) -> None:
    now = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    _desk(store, now)
    cfg = AlertsConfig(channels=(AlertChannelConfig(webhook.url, "warning"),), poll_s=0.05)
    sender = AlertSender(store, build_channels(cfg, {}), cfg).start()
    try:
        with store.begin() as conn:  # as the trigger engine does: the rule's values travel with the change
            set_state(conn, TradingState.REDUCING, "trigger.daily_drawdown: 0.031 crossed 0.03 -> REDUCING",
                      source="trigger", user="trigger",
                      values={"rule": "daily_drawdown", "value": 0.031, "threshold": 0.03})
        wait_for(lambda: webhook.texts(), 5, "the state-change notice")
    finally:
        sender.stop()
    text = webhook.texts()[0]
    assert "[CRITICAL] trading state REDUCING" in text
    assert "ACTIVE -> REDUCING by trigger (trigger): trigger.daily_drawdown: 0.031 crossed 0.03" in text
    assert "values: rule=daily_drawdown, value=0.031, threshold=0.03" in text
    assert "gross exposure 21,000.00, net 9,000.00" in text and "open positions: 2" in text
    assert "quantum_momentum BTC/USDT +0.25 @ 60,000.00" in text and "macro_trend ETH/USDT -2 @ 3,000.00" in text


def test_no_notice_when_the_state_does_not_change(store) -> None:
    set_state(store, TradingState.HALTED, "halt", "cli")
    set_state(store, TradingState.HALTED, "halt again", "cli")  # re-asserted: audited, not re-announced
    with store.connect() as conn:
        assert len(conn.execute(select(notify_events.c.id).where(notify_events.c.kind == "state")).all()) == 1


def test_daily_summary_once_per_day_at_the_configured_time(store, webhook) -> None:
    now = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    _desk(store, now)
    day_start = now - now % DAY
    cfg = AlertsConfig(channels=(AlertChannelConfig(webhook.url, "critical"),), poll_s=0.05, daily_summary_at="00:00")
    assert summary_due(cfg, day_start - 1) is not None and summary_due(cfg, day_start) is not None
    late = AlertsConfig(daily_summary_at="23:59")
    assert summary_due(late, day_start + 60_000) is None  # not before the configured time
    assert send_daily_summary(store, cfg, now) and not send_daily_summary(store, cfg, now + 60_000)
    sender = AlertSender(store, build_channels(cfg, {}), cfg).start()
    try:  # a summary is info, yet goes to a critical-only channel: it is always sent
        wait_for(lambda: webhook.texts(), 5, "the daily summary")
    finally:
        sender.stop()
    text = webhook.texts()[0]
    date = dt.datetime.fromtimestamp(day_start / 1000, tz=dt.timezone.utc).date().isoformat()
    assert f"daily summary {date}" in text
    assert "equity 101,400.00" in text and "P&L 24h 1,400.00" in text and "drawdown 2.50%" in text
    assert "open positions 2" in text and "P&L per strategy: macro_trend 500.00, quantum_momentum 900.00" in text
