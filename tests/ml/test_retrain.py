"""Training and the scheduled retrain job: audited steps, champion/challenger gate, failures alerted; the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from engine.config import Settings, settings_with
from engine.ml.registry import ModelRegistry
from engine.ml.retrain import models_dir, retrain_job, train_model
from engine.store import list_alerts, open_store
from engine.store.schema import audit_log

REPO = Path(__file__).resolve().parents[2]


def _settings(state: Path) -> Settings:
    return settings_with(Settings(), store={"path": str(state)},
                         ml={"train_window_days": 120, "models_dir": "models", "cv_folds": 3})


def _actions(store) -> list[tuple[str, str, dict]]:  # noqa: ANN001
    with store.connect() as conn:
        rows = conn.execute(select(audit_log.c.source, audit_log.c.action, audit_log.c.details)
                            .order_by(audit_log.c.id)).all()
    return [(s, a, json.loads(d)) for s, a, d in rows]


def test_retrain_job_audits_every_step_and_gates(sim_state: Path) -> None:
    settings = _settings(sim_state)
    store = open_store(sim_state)
    first = retrain_job(settings, "quantum_momentum", store=store)
    assert first["decision"] == "promoted" and first["version"] == 1 and first["flow"] == "sim_klines"
    # the store already held the window's candles: none pulled (the source's funding history and feeds are added)
    assert not any(v for k, v in first["pulled"].items() if k.startswith("candles"))
    assert any(k.startswith("funding") for k in first["pulled"])
    actions = [a for s, a, _ in _actions(store) if s == "scheduler"]
    for step in ("model.retrain.started", "model.train.data", "model.saved", "model.train.done", "model.gate",
                 "model.promoted", "model.retrain.finished"):
        assert step in actions, step
    assert actions.index("model.retrain.started") < actions.index("model.gate") < actions.index("model.retrain.finished")
    reg = ModelRegistry(store, models_dir(settings))
    champ = reg.champion("quantum_momentum")
    assert champ.version == 1 and champ.payoff_ratio == 2.0
    assert Path(champ.record.path).parent.parent == sim_state.parent / "models"
    meta = champ.record
    assert meta.features and meta.data_hash and meta.train_end > meta.train_start and "sklearn" in meta.lib_versions
    assert {"cv_auc", "oos", "estimator"} <= set(meta.cv_scores)
    # a second run on the same window trains the same model: an AUC tie is no evidence of value, the champion stays,
    # and the gate's audit entry carries the numbers it compared
    second = retrain_job(settings, "quantum_momentum", store=store)
    gate = [d for s, a, d in _actions(store) if a == "model.gate"][-1]
    assert gate["challenger"] == 2 and gate["champion_score"] == second["oos"]["roc_auc"]
    assert second["decision"] == "kept champion" == gate["decision"]
    nums = gate["numbers"]
    assert nums["challenger"]["overlay_sharpe"] == nums["champion"]["overlay_sharpe"]
    assert "not better by a margin" in gate["reason"] and "overlay Sharpe" in gate["reason"]
    assert reg.champion("quantum_momentum").version == 1
    store.dispose()


def test_challenger_worse_than_champion_is_not_promoted(sim_state: Path) -> None:
    settings = _settings(sim_state)
    store = open_store(sim_state)
    reg = ModelRegistry(store, models_dir(settings))
    from sklearn.dummy import DummyClassifier

    perfect = DummyClassifier(strategy="prior").fit(np.zeros((4, 1)), [0, 1, 0, 1])
    reg.save("quantum_momentum", perfect, ["only_feature"], 0, 1, "h", {}, 0.99, 2.0, estimator_name="dummy")
    reg.promote("quantum_momentum", 1)
    result = train_model(settings, "quantum_momentum", store, audit_source="cli", user="op")
    assert result["decision"] == "kept champion" and result["champion_score"] == 0.99
    assert "recorded" in result["gate_basis"]
    assert reg.champion("quantum_momentum").version == 1
    assert reg.get("quantum_momentum", 2).role == "challenger"
    store.dispose()


def test_failed_retrain_alerts_and_reraises(sim_state: Path) -> None:
    settings = _settings(sim_state)
    store = open_store(sim_state)
    with pytest.raises(Exception, match="no_such_strategy"):
        retrain_job(settings, "no_such_strategy", store=store)
    alert = list_alerts(store)[0]
    assert alert.rule == "model.retrain" and "no_such_strategy" in alert.message
    failed = [d for s, a, d in _actions(store) if a == "model.retrain.failed"]
    assert failed and failed[0]["strategy"] == "no_such_strategy"
    store.dispose()


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, QUANTDESK__ML__TRAIN_WINDOW_DAYS="120", QUANTDESK__ML__CV_FOLDS="3",
               PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", "from console.cli import main; main()", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_cli_train_list_promote_rollback_end_to_end(tmp_path: Path) -> None:
    # `model train` on an empty state.db pulls the simulated bars itself
    state = tmp_path / "fresh" / "state.db"
    out = _cli(["--state", str(state), "model", "train", "quantum_momentum"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "model quantum_momentum v1" in out.stdout and "promoted" in out.stdout and "roc_auc" in out.stdout
    assert "bars pulled" in out.stdout and "BTC/USDT" in out.stdout
    out = _cli(["--state", str(state), "model", "train", "quantum_momentum", "--no-gate"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "v2" in out.stdout and "bars pulled" not in out.stdout  # the second run finds the bars in state.db
    listed = _cli(["--state", str(state), "model", "list"], tmp_path)
    assert listed.returncode == 0 and "champion" in listed.stdout and "challenger" in listed.stdout
    assert _cli(["--state", str(state), "model", "promote", "quantum_momentum", "2"], tmp_path).returncode == 0
    rb = _cli(["--state", str(state), "model", "rollback", "quantum_momentum"], tmp_path)
    assert rb.returncode == 0 and "v1 is now champion" in rb.stdout
    v2 = state.parent / "models" / "quantum_momentum" / "v0002.joblib"
    v2.write_bytes(v2.read_bytes()[:100])  # truncated
    bad = _cli(["--state", str(state), "model", "promote", "quantum_momentum", "2"], tmp_path)
    assert bad.returncode == 1 and "sha256" in bad.stderr and "champion unchanged: v1" in bad.stderr
