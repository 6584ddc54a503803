"""Escalation on a desk with two engines, on each store backend: an unacknowledged critical alert raised by engine
beta tightens beta only (REDUCING, then HALTED in scope `engine:beta`), main and the desk stay ACTIVE; a desk-wide
alert (raised by a front end) halts the desk; on a desk where only main ever ran, main's alert halts the desk as it
always did. Before, every escalation moved the desk's `global` scope, so one engine's alert halted every engine."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from engine.clock import now_ms
from engine.config import AlertsConfig
from engine.monitoring.alerts.escalation import check_escalations
from engine.risk.trading_state import GLOBAL, TradingState, read_state
from engine.store import open_store
from engine.store.engines import bind_engine, engine_scope, insert_status_row, unbind_engine
from engine.store.ops import raise_alert
from engine.store.schema import alerts

CFG = AlertsConfig(ack_timeout_s=1.0, halt_after_s=1.0)


@pytest.fixture
def desk(backend_url: str):  # noqa: ANN201 - engine.store.Store
    store = open_store(backend_url)
    yield store
    unbind_engine()
    store.dispose()


def _engines(store, *names: str) -> None:  # noqa: ANN001
    now = now_ms()
    with store.begin() as conn:
        for name in names:
            insert_status_row(conn, name, {"pid": os.getpid(), "host": "h", "mode": "paper", "started_at": now,
                                           "heartbeat_at": now, "version": "t", "info": "{}"})


def _raise(store, engine: str | None) -> int:  # noqa: ANN001
    if engine is not None:
        bind_engine(engine)  # raised inside that engine's process
    try:
        return raise_alert(store, "critical", "recon.mismatch", f"{engine or 'desk'}: exchange holds 0.5", {})
    finally:
        unbind_engine()


def _escalate_fully(store, alert_id: int) -> None:  # noqa: ANN001
    with store.connect() as conn:
        ts = conn.execute(select(alerts.c.ts).where(alerts.c.id == alert_id)).scalar_one()
    assert [e.step for e in check_escalations(store, CFG, ts + 1_500)] == [1]
    assert [e.step for e in check_escalations(store, CFG, ts + 3_000)] == [2]


def _states(store) -> dict[str, str]:  # noqa: ANN001
    with store.connect() as conn:
        return {scope: read_state(conn, scope).state.value
                for scope in (GLOBAL, engine_scope("main"), engine_scope("beta"))}


def test_an_engines_alert_halts_that_engine_only(desk) -> None:  # noqa: ANN001
    _engines(desk, "main", "beta")
    alert_id = _raise(desk, "beta")
    _escalate_fully(desk, alert_id)
    assert _states(desk) == {GLOBAL: "ACTIVE", "engine:main": "ACTIVE", "engine:beta": "HALTED"}
    bind_engine("main")  # main's own effective state: the desk's and its scope's stricter one
    with desk.connect() as conn:
        assert read_state(conn).state is TradingState.ACTIVE
    bind_engine("beta")
    with desk.connect() as conn:
        assert read_state(conn).state is TradingState.HALTED


def test_a_desk_wide_alert_halts_the_desk(desk) -> None:  # noqa: ANN001
    _engines(desk, "main", "beta")
    _escalate_fully(desk, _raise(desk, None))
    assert _states(desk)[GLOBAL] == "HALTED"


def test_on_a_one_engine_desk_mains_alert_halts_the_desk_as_before(desk) -> None:  # noqa: ANN001
    _engines(desk, "main")
    _escalate_fully(desk, _raise(desk, "main"))
    assert _states(desk) == {GLOBAL: "HALTED", "engine:main": "ACTIVE", "engine:beta": "ACTIVE"}
