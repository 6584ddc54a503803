"""The command catalogue: one definition per command, typed arguments, unknown verbs and bad rows end failed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import insert
from typer.testing import CliRunner

from tests.support.backends import raw
from engine.config import LifecycleConfig
from engine.control.catalogue import CATALOGUE, CommandError, command
from engine.control.client import ControlClient, submit_command
from engine.control.commands import CommandProcessor, EngineHooks, execute_state_command
from engine.store.schema import commands

HOOKS = EngineHooks(cancel_all=lambda _i: 2, flatten=lambda: {"canceled": 1, "closed": 1}, retrain=lambda s: s,
                    stop=lambda: None)


def _raw_row(store, name: str, args: str, status: str = "pending") -> int:  # noqa: ANN001
    with store.begin() as conn:
        return int(conn.execute(insert(commands).values(created_at=1, source="cli", user="t", command=name,
                                                        args=args, status=status)).inserted_primary_key[0])


def _row(store, cmd_id: int) -> tuple[str, dict]:  # noqa: ANN001
    with raw(store) as conn:
        status, result = conn.execute("SELECT status, result FROM commands WHERE id=?", (cmd_id,)).fetchone()
    return status, json.loads(result or "{}")


def test_every_command_is_defined_once_with_its_rules() -> None:
    assert {c for c, spec in CATALOGUE.items() if spec.tightening} == {"halt", "emergency_stop", "reduce"}
    assert not CATALOGUE["flatten"].offline and not CATALOGUE["retrain_now"].offline  # need a broker / the engine
    assert not CATALOGUE["promote"].idempotent and not CATALOGUE["rollback_model"].idempotent  # twice = two steps
    assert CATALOGUE["emergency_stop"].confirm and CATALOGUE["resume"].confirm
    for spec in CATALOGUE.values():
        assert spec.state is not None or spec.engine is not None, spec.name
        assert not (spec.offline and spec.state is None), f"{spec.name}: offline needs a state part"
    client_methods = {m for m in dir(ControlClient) if not m.startswith("_")}
    assert {"halt", "flatten", "emergency_stop", "reduce", "resume", "pause_strategy", "resume_strategy", "promote",
            "demote", "promote_model", "rollback_model", "retrain_now", "ack_alert", "stop_engine"} <= client_methods


def test_arguments_are_typed_and_checked() -> None:
    assert command("ack_alert").parse('{"alert_id": "7"}') == {"alert_id": 7}
    assert command("resume").parse({}) == {"confirm": False}
    with pytest.raises(CommandError, match="instance_id.*missing"):
        command("pause_strategy").parse({})
    with pytest.raises(CommandError, match="confirm.*true or false"):
        command("resume").parse({"confirm": "yes"})
    with pytest.raises(CommandError, match="unexpected argument"):
        command("halt").parse({"reason": "x", "force": True})
    with pytest.raises(CommandError, match="not JSON"):
        command("halt").parse("{broken")


def test_unknown_verbs_say_unknown_command(store) -> None:  # noqa: ANN001
    with pytest.raises(CommandError, match="unknown command 'frobnicate'"):
        submit_command(store, "frobnicate", {}, "cli", "t")
    offline = execute_state_command(store, None, "frobnicate", {}, "cli", "t", engine=False)
    assert not offline.ok and "unknown command" in offline.message and "running engine" not in offline.message
    assert "needs a running engine" in execute_state_command(store, None, "flatten", {}, "cli", "t", False).message
    cmd_id = _raw_row(store, "frobnicate", "{}")  # e.g. written by a newer front end
    CommandProcessor(store, HOOKS, 10, LifecycleConfig()).poll_once()
    status, result = _row(store, cmd_id)
    assert status == "failed" and "unknown command 'frobnicate'" in result["message"]


def test_a_row_whose_arguments_do_not_parse_ends_failed_with_the_reason(store) -> None:  # noqa: ANN001
    broken = _raw_row(store, "halt", "{broken")
    missing = _raw_row(store, "pause_strategy", "{}")
    typed = _raw_row(store, "ack_alert", '{"alert_id": "x"}')
    after = submit_command(store, "reduce", {"reason": "still runs"}, "cli", "t")
    proc = CommandProcessor(store, HOOKS, 10, LifecycleConfig())
    assert proc.poll_once() == 4
    assert _row(store, broken)[0] == "failed" and "not JSON" in _row(store, broken)[1]["message"]
    assert _row(store, missing)[0] == "failed" and "instance_id" in _row(store, missing)[1]["message"]
    assert _row(store, typed)[0] == "failed" and "integer" in _row(store, typed)[1]["message"]
    assert _row(store, after)[0] == "done"  # the poller carried on past the bad rows


def test_a_bad_row_left_running_by_a_crash_ends_failed_after_restart(store) -> None:  # noqa: ANN001
    crashed = _raw_row(store, "halt", "{broken", status="running")  # idempotent: re-queued, then fails on parse
    stranger = _raw_row(store, "frobnicate", "{}", status="running")
    proc = CommandProcessor(store, HOOKS, 10, LifecycleConfig())
    assert proc.recover_interrupted() == {"requeued": 1, "failed": 1}
    proc.poll_once()
    assert _row(store, crashed)[0] == "failed" and "not JSON" in _row(store, crashed)[1]["message"]
    assert _row(store, stranger)[0] == "failed" and "unknown command" in _row(store, stranger)[1]["message"]
    assert proc.poll_once() == 0  # nothing loops back to pending


def _fitted(seed: int) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 2))
    return LogisticRegression().fit(x, (x[:, 0] + 0.1 * rng.normal(size=200) > 0).astype(int))


def test_cli_model_promote_and_rollback_go_through_the_control_api(tmp_path: Path, state_url: str) -> None:
    from console.cli import _register_all, app
    from engine.ml.registry import ModelRegistry
    from engine.store import open_store

    state = state_url
    store = open_store(state)
    registry = ModelRegistry(store, tmp_path / "models")
    for seed in (1, 2):
        registry.save("quantum_momentum", _fitted(seed), ["f1", "f2"], 0, 1, "hash", {"auc": 0.6}, 0.6, 2.0)
    registry.promote("quantum_momentum", 1)
    _register_all()
    run = lambda *a: CliRunner().invoke(app, ["--state", str(state), "model", *a])  # noqa: E731
    res = run("promote", "quantum_momentum", "2")
    assert res.exit_code == 0 and "v2 is now champion" in res.output
    bad = run("promote", "quantum_momentum", "9")
    assert bad.exit_code == 1 and "champion unchanged: v2" in bad.output
    assert run("rollback", "quantum_momentum").exit_code == 0
    assert registry.champion("quantum_momentum").version == 1
    with raw(store) as conn:
        rows = conn.execute("SELECT command, source, status FROM commands ORDER BY id").fetchall()
    assert rows == [("promote_model", "cli", "done"), ("promote_model", "cli", "failed"),
                    ("rollback_model", "cli", "done")]
    store.dispose()
