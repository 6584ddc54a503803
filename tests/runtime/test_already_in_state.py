"""Commands on a state the desk already has say so, instead of a confusing transition: reduce on a REDUCING desk,
acknowledging an acknowledged alert (by whom and when), pausing a paused strategy."""

from __future__ import annotations

import dataclasses

from engine.config import Settings, StrategyInstanceConfig
from engine.control.client import ControlClient
from engine.risk.trading_state import TradingState, get_state
from engine.store.ops import raise_alert
from engine.trading import lifecycle


def _client(store, user: str = "op") -> ControlClient:  # noqa: ANN001
    return ControlClient(store, source="cli", user=user)


def test_reduce_on_a_reducing_desk_says_already_and_changes_nothing(store) -> None:  # noqa: ANN001
    first = _client(store).reduce("spreads wide")
    assert first.ok and get_state(store).state is TradingState.REDUCING
    since = get_state(store).changed_at
    again = _client(store, "other").reduce("again")
    assert again.ok and "already REDUCING since" in again.message and "spreads wide" in again.message
    assert "->" not in again.message and again.data["unchanged"] is True
    assert get_state(store).changed_at == since and get_state(store).reason == "spreads wide"


def test_acknowledging_an_acknowledged_alert_says_by_whom_and_when(store) -> None:  # noqa: ANN001
    alert_id = raise_alert(store, "warning", "test.rule", "something", {}, source="engine")
    alert_id = alert_id if isinstance(alert_id, int) else getattr(alert_id, "id", alert_id)
    assert _client(store, "alice").ack_alert(alert_id).ok
    again = _client(store, "bob").ack_alert(alert_id)
    assert again.ok and "already acknowledged by alice at" in again.message and "UTC" in again.message
    missing = _client(store).ack_alert(999_999)
    assert not missing.ok and missing.message == "alert 999999 does not exist"


def test_pausing_a_paused_strategy_says_already(store) -> None:  # noqa: ANN001
    inst = {"qm": StrategyInstanceConfig(strategy="quantum_momentum", capital=1000.0)}
    lifecycle.sync_instances(store, dataclasses.replace(Settings(), strategies=inst))
    assert _client(store).pause_strategy("qm").message == "qm paused"
    again = _client(store).pause_strategy("qm")
    assert again.ok and again.message == "qm is already paused; nothing changed"
    assert _client(store).resume_strategy("qm").ok
    assert "already running" in _client(store).resume_strategy("qm").message
