"""Model registry: atomic artefacts with sha256, verified loads, refusals that keep the champion serving, roles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import select

from engine.ml.registry import ModelIntegrityError, ModelRegistry, sha256_file
from engine.store import list_alerts, open_store
from engine.store.schema import audit_log

FEATURES = ["f_mom", "f_vol", "f_vpin"]


def _fit(seed: int) -> tuple[LogisticRegression, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(300, 3)), columns=FEATURES)
    y = (X["f_mom"] + 0.5 * rng.normal(size=300) > 0).astype(int)
    return LogisticRegression().fit(X, y), X


def _save(reg: ModelRegistry, seed: int, features: list[str] = FEATURES, oos: float = 0.6):  # noqa: ANN202
    est, _ = _fit(seed)
    return reg.save("quantum_momentum", est, features, 1_000, 2_000, f"hash{seed}", {"cv_auc": [0.6, 0.62]}, oos,
                    payoff_ratio=2.0, estimator_name="logreg")


def _actions(store) -> list[str]:  # noqa: ANN001
    with store.connect() as conn:
        return [r[0] for r in conn.execute(select(audit_log.c.action).order_by(audit_log.c.id))]


def test_save_is_atomic_hashed_and_described(store, tmp_path: Path) -> None:  # noqa: ANN001
    reg = ModelRegistry(store, tmp_path / "models")
    rec = _save(reg, 1)
    path = Path(rec.path)
    assert path.is_file() and sha256_file(path) == rec.sha256 and rec.role == "challenger" and rec.version == 1
    assert [p.name for p in path.parent.iterdir()] == ["v0001.joblib"]  # no temp files left behind
    assert rec.features == FEATURES and rec.train_start == 1_000 and rec.data_hash == "hash1"
    assert rec.payoff_ratio == 2.0 and set(rec.lib_versions) >= {"sklearn", "numpy", "python"}
    assert reg.champion("quantum_momentum") is None
    loaded = reg.promote("quantum_momentum", 1, source="cli", user="op")
    _, X = _fit(1)
    p = loaded.predict_proba(X)
    assert p.shape == (300,) and ((p >= 0) & (p <= 1)).all() and loaded.payoff_ratio == 2.0
    with pytest.raises(ModelIntegrityError, match="order differs"):
        loaded.predict_proba(X[FEATURES[::-1]])
    with pytest.raises(ModelIntegrityError, match=r"missing \['f_vpin'\]"):
        loaded.predict_proba(X[FEATURES[:2]])
    assert "model.saved" in _actions(store) and "model.promoted" in _actions(store)


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "wrong_features", "missing"])
def test_bad_challenger_is_refused_and_champion_keeps_serving(store, tmp_path: Path, damage: str) -> None:  # noqa: ANN001
    reg = ModelRegistry(store, tmp_path / "models")
    _save(reg, 1)
    champ = reg.promote("quantum_momentum", 1)
    rec = _save(reg, 2)
    path = Path(rec.path)
    expected = None
    if damage == "corrupt":
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
        match = "sha256"
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
        match = "sha256"
    elif damage == "missing":
        path.unlink()
        match = "missing"
    else:
        expected = FEATURES + ["f_new"]  # the strategy now produces a different feature list
        match = "does not match the strategy's current features"
    with pytest.raises(ModelIntegrityError, match=match):
        reg.promote("quantum_momentum", 2, expected_features=expected)
    serving = reg.champion("quantum_momentum")
    assert serving is not None and serving.version == 1 and serving.record.role == "champion"
    _, X = _fit(1)
    assert np.allclose(serving.predict_proba(X), champ.predict_proba(X))
    assert reg.get("quantum_momentum", 2).role == "rejected"
    alert = list_alerts(store)[0]
    assert alert.rule == "model.integrity" and "v2" in alert.message
    # a fresh registry (as after a restart) also serves v1
    fresh = ModelRegistry(open_store(store.path), tmp_path / "models")
    assert fresh.champion("quantum_momentum").version == 1


def test_embedded_feature_mismatch_is_refused(store, tmp_path: Path) -> None:  # noqa: ANN001
    """An artefact whose embedded feature list differs from its row (e.g. a file swapped in) is refused."""
    import joblib

    reg = ModelRegistry(store, tmp_path / "models")
    _save(reg, 1)
    reg.promote("quantum_momentum", 1)
    rec = _save(reg, 2)
    payload = joblib.load(rec.path)
    payload["features"] = ["a", "b", "c"]
    joblib.dump(payload, rec.path)
    from sqlalchemy import update

    from engine.store.schema import models
    with store.begin() as conn:  # make the hash match so the feature check is what refuses it
        conn.execute(update(models).where(models.c.id == rec.id).values(sha256=sha256_file(Path(rec.path))))
    with pytest.raises(ModelIntegrityError, match="artefact features"):
        reg.promote("quantum_momentum", 2)
    assert reg.champion("quantum_momentum").version == 1


def test_corrupt_champion_falls_back_to_previous(store, tmp_path: Path) -> None:  # noqa: ANN001
    models_dir = tmp_path / "models"
    reg = ModelRegistry(store, models_dir)
    _save(reg, 1)
    reg.promote("quantum_momentum", 1)
    rec2 = _save(reg, 2)
    reg.promote("quantum_momentum", 2)
    assert reg.champion("quantum_momentum").version == 2  # verified and cached
    Path(rec2.path).write_bytes(b"not a model")
    assert reg.champion("quantum_momentum").version == 2  # the in-memory champion keeps serving
    restarted = ModelRegistry(store, models_dir)  # a new process must verify the file: it falls back to v1
    served = restarted.champion("quantum_momentum")
    assert served.version == 1 and restarted.get("quantum_momentum", 2).role == "rejected"
    assert any(a.rule == "model.integrity" for a in list_alerts(store))


def test_rollback_and_list(store, tmp_path: Path) -> None:  # noqa: ANN001
    reg = ModelRegistry(store, tmp_path / "models")
    for seed in (1, 2, 3):
        _save(reg, seed)
        reg.promote("quantum_momentum", seed)
    roles = {r.version: r.role for r in reg.list("quantum_momentum")}
    assert roles == {3: "champion", 2: "retired", 1: "retired"}
    assert reg.rollback("quantum_momentum", source="cli", user="op").version == 2
    assert reg.rollback("quantum_momentum", source="cli", user="op").version == 1
    with pytest.raises(ValueError, match="no previous champion"):
        reg.rollback("quantum_momentum")
    assert [r.version for r in reg.list()] == [3, 2, 1]
    assert _actions(store).count("model.rollback") == 2
    with pytest.raises(KeyError, match="v9"):
        reg.promote("quantum_momentum", 9)
    with pytest.raises(ValueError, match="features"):
        reg.save("quantum_momentum", _fit(1)[0], ["a", "a"], 0, 1, "h", {}, None, 2.0)
