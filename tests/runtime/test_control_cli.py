"""`quantdesk halt|resume|status|strategy|alerts` with no engine and no console (Typer's in-process runner)."""

from __future__ import annotations

import dataclasses
import json

from typer.testing import CliRunner

from console.cli import _register_all, app
from tests.support.backends import raw
from engine.config import Settings
from engine.trading.lifecycle import sync_instances
from engine.store.db import open_store
from engine.store.ops import raise_alert


_registered = []


def _run(state, *args):
    if not _registered:  # register the command modules once per process
        _register_all()
        _registered.append(True)
    return CliRunner().invoke(app, ["--state", str(state), *args])


def test_cli_controls_work_without_an_engine(state_url):
    state = state_url
    store = open_store(state)
    sync_instances(store, dataclasses.replace(Settings()))
    alert_id = raise_alert(store, "warning", "test.rule", "something happened", {"x": 1})

    res = _run(state, "halt", "--reason", "cli test")
    assert res.exit_code == 0 and "HALTED" in res.output
    status = json.loads(_run(state, "status", "--json").output)
    assert status["trading_state"] == "HALTED" and status["engine_alive"] is False
    assert {(i["id"], i["stage"], i["broker"]) for i in status["instances"]} == {
        ("quantum_momentum", "paper", "paper"), ("macro_trend", "paper", "paper")}
    assert "stage paper      broker paper" in _run(state, "status").output
    assert _run(state, "resume").exit_code == 1  # leaving HALTED needs --confirm
    assert _run(state, "resume", "--confirm").exit_code == 0
    listing = _run(state, "strategy", "list").output
    assert "quantum_momentum" in listing and "macro_trend" in listing and "paper" in listing
    refused = _run(state, "strategy", "promote", "macro_trend", "--confirm")
    assert refused.exit_code == 1 and "gate not met" in refused.output
    assert _run(state, "strategy", "pause", "macro_trend").exit_code == 0
    assert f"#{alert_id}" in _run(state, "alerts").output
    assert _run(state, "alerts", "ack", str(alert_id)).exit_code == 0
    assert _run(state, "alerts", "ack", str(alert_id)).exit_code == 1  # already acknowledged
    with raw(store) as conn:
        actions = {r[0] for r in conn.execute("SELECT action FROM audit_log WHERE source = 'cli'").fetchall()}
    assert {"command.halt", "command.resume", "trading_state.changed", "strategy.pause", "alert.ack"} <= actions
