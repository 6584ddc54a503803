"""Model rollback through the control API: the console's `b` key and any front end restore the previous champion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from engine.ml.registry import ModelRegistry
from engine.control.client import ControlClient
from engine.store import open_store


def _fitted(seed: int) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 2))
    return LogisticRegression().fit(x, (x[:, 0] + 0.1 * rng.normal(size=200) > 0).astype(int))


def test_rollback_restores_the_previous_champion_and_is_audited(tmp_path: Path, state_url: str) -> None:
    store = open_store(state_url)
    registry = ModelRegistry(store, tmp_path / "models")
    for seed in (1, 2):
        rec = registry.save("quantum_momentum", _fitted(seed), ["f1", "f2"], 0, 1, "hash", {"auc": 0.6}, 0.6, 2.0)
        registry.promote("quantum_momentum", rec.version)
    assert registry.champion("quantum_momentum").version == 2

    client = ControlClient(store, source="console", user="alice")  # no engine alive: applied here, audited
    result = client.rollback_model("quantum_momentum")
    assert result.ok, result.message
    assert result.data["version"] == 1
    assert registry.champion("quantum_momentum").version == 1
    with store.connect() as conn:
        roles = dict(conn.exec_driver_sql("SELECT version, role FROM models").fetchall())
        audit = conn.exec_driver_sql("SELECT source, \"user\", details FROM audit_log WHERE action = "
                                     "'command.rollback_model'").fetchall()
    assert roles == {1: "champion", 2: "rejected"}
    assert [(a[0], a[1], json.loads(a[2])["strategy"]) for a in audit] == [("console", "alice", "quantum_momentum")]

    again = client.rollback_model("quantum_momentum")  # v2 was rejected: nothing earlier to go back to
    assert not again.ok and "no previous champion" in again.message
    assert registry.champion("quantum_momentum").version == 1
