"""Model registry: joblib artefacts written atomically with a sha256, metadata in state.db, champion/challenger.

An artefact is a joblib dump of a dict {estimator, features, strategy, version, payoff_ratio, format}. It is written
to a temp file in the same directory, fsynced, renamed into place and the directory fsynced, so a crash leaves
either the old state or the complete new file. The `models` row holds the strategy, the feature list in input
order, the training window, the data hash, CV scores, library versions and the file's sha256.

Loading re-hashes the file and compares it to the row, unpickles it, and checks the embedded feature list and
strategy against the row (and against the features the caller expects). Any failure raises `ModelIntegrityError`
with the reason and leaves the current champion in place. Roles: champion (one per strategy), challenger (saved,
not serving), retired (former champion) and rejected (failed a check or the gate).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from sqlalchemy import func, insert, select, update

from engine.clock import now_ms
from engine.store.db import Store
from engine.store.ops import audit, raise_alert
from engine.store.schema import models

if TYPE_CHECKING:  # numpy and pandas load with a model, not with `quantdesk model list`
    import numpy as np
    import pandas as pd

ARTEFACT_FORMAT = "quantdesk-meta-model/1"
ROLES = ("champion", "challenger", "retired", "rejected")


class ModelIntegrityError(RuntimeError):
    """A model file is missing, corrupt, truncated, or does not match its registry row or expected features."""


@dataclass(frozen=True)
class ModelRecord:
    """One `models` row."""

    id: int
    strategy: str
    version: int
    path: str
    sha256: str
    features: list[str]
    train_start: int
    train_end: int
    data_hash: str
    cv_scores: dict[str, Any]
    oos_score: float | None
    lib_versions: dict[str, str]
    estimator: str
    role: str
    created_at: int
    promoted_at: int | None

    @property
    def payoff_ratio(self) -> float:
        """Barrier payoff ratio the model's labels were built with (pt_mult / sl_mult)."""
        return float(self.cv_scores.get("payoff_ratio", 1.0))


class LoadedModel:
    """A verified model ready to serve: predicts P(profit barrier first) for rows in the registered feature order."""

    def __init__(self, record: ModelRecord, estimator: Any, payoff_ratio: float) -> None:
        self.record = record
        self.estimator = estimator
        self.features = list(record.features)
        self.payoff_ratio = float(payoff_ratio)

    @property
    def version(self) -> int:
        """Registry version number."""
        return self.record.version

    @property
    def timeframe(self) -> str | None:
        """Bar size the model was trained on (features must be computed on bars of this size), if recorded."""
        tf = self.record.cv_scores.get("timeframe")
        return str(tf) if tf else None

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the positive meta-label per row; refuses missing or reordered columns."""
        import numpy as np
        import pandas as pd

        if not isinstance(features, pd.DataFrame):
            raise TypeError(f"features: expected a DataFrame with columns {self.features}, got {type(features).__name__}")
        cols = list(features.columns)
        if cols != self.features:
            missing = [c for c in self.features if c not in cols]
            extra = [c for c in cols if c not in self.features]
            raise ModelIntegrityError(
                f"features: model {self.record.strategy} v{self.version} expects columns {self.features} in that "
                f"order; missing {missing}, unexpected {extra}" + ("" if missing or extra else ", order differs"))
        return np.asarray(self.estimator.predict_proba(features)[:, 1], dtype=float)


def library_versions() -> dict[str, str]:
    """Versions of the libraries an artefact depends on, stored with it."""
    import joblib
    import numpy as np
    import pandas as pd
    import sklearn

    return {"python": platform.python_version(), "sklearn": sklearn.__version__, "numpy": np.__version__,
            "pandas": pd.__version__, "joblib": joblib.__version__}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_dump(payload: dict[str, Any], dest: Path) -> str:
    """joblib-dump to a temp file beside `dest`, fsync, rename, fsync the directory; returns the sha256."""
    import joblib

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            joblib.dump(payload, fh, compress=3)
            fh.flush()
            os.fsync(fh.fileno())
        digest = sha256_file(Path(tmp))
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return digest


def _record(row: Any) -> ModelRecord:
    return ModelRecord(id=row["id"], strategy=row["strategy"], version=row["version"], path=row["path"],
                       sha256=row["sha256"], features=json.loads(row["features"]), train_start=row["train_start"],
                       train_end=row["train_end"], data_hash=row["data_hash"], cv_scores=json.loads(row["cv_scores"]),
                       oos_score=row["oos_score"], lib_versions=json.loads(row["lib_versions"]),
                       estimator=row["estimator"], role=row["role"], created_at=row["created_at"],
                       promoted_at=row["promoted_at"])


class ModelRegistry:
    """Artefacts under `models_dir/<strategy>/`, metadata in the `models` table of `store`."""

    def __init__(self, store: Store, models_dir: str | os.PathLike[str]) -> None:
        self.store = store
        self.models_dir = Path(models_dir)
        self._serving: dict[str, LoadedModel] = {}  # verified champions already in memory

    # --- writing --------------------------------------------------------------------------------------------
    def save(self, strategy: str, estimator: Any, features: Sequence[str], train_start: int, train_end: int,
             data_hash: str, cv_scores: dict[str, Any], oos_score: float | None, payoff_ratio: float,
             estimator_name: str = "", source: str = "engine") -> ModelRecord:
        """Write a new version as a challenger (atomic file + row) and audit it; returns its record."""
        features = [str(f) for f in features]
        if not strategy:
            raise ValueError("strategy: required")
        if not features or len(set(features)) != len(features):
            raise ValueError(f"features: need a non-empty list of unique names, got {features}")
        if not hasattr(estimator, "predict_proba"):
            raise TypeError(f"estimator: {type(estimator).__name__} has no predict_proba")
        with self.store.connect() as conn:
            version = int(conn.execute(select(func.coalesce(func.max(models.c.version), 0))
                                       .where(models.c.strategy == strategy)).scalar()) + 1
        dest = self.models_dir / strategy / f"v{version:04d}.joblib"
        payload = {"format": ARTEFACT_FORMAT, "strategy": strategy, "version": version, "features": features,
                   "payoff_ratio": float(payoff_ratio), "estimator": estimator}
        digest = _atomic_dump(payload, dest)
        scores = dict(cv_scores, payoff_ratio=float(payoff_ratio))
        row = {"created_at": now_ms(), "strategy": strategy, "version": version, "path": str(dest.resolve()),
               "sha256": digest, "features": json.dumps(features), "train_start": int(train_start),
               "train_end": int(train_end), "data_hash": data_hash, "cv_scores": json.dumps(scores, default=float),
               "oos_score": None if oos_score is None else float(oos_score),
               "lib_versions": json.dumps(library_versions()), "estimator": estimator_name, "role": "challenger"}
        with self.store.begin() as conn:
            new_id = conn.execute(insert(models).values(**row)).inserted_primary_key[0]
            audit(conn, source, "model.saved", {"strategy": strategy, "version": version, "sha256": digest,
                                                "oos_score": oos_score, "path": row["path"]})
        if not new_id:
            raise RuntimeError(f"model {strategy} v{version}: registry row was not written")
        return self.get(strategy, version)

    # --- reading --------------------------------------------------------------------------------------------
    def get(self, strategy: str, version: int) -> ModelRecord:
        """The row of one version; KeyError naming it when absent."""
        with self.store.connect() as conn:
            row = conn.execute(select(models).where(models.c.strategy == strategy, models.c.version == version)
                               ).mappings().first()
        if row is None:
            raise KeyError(f"model {strategy} v{version}: no such version")
        return _record(row)

    def list(self, strategy: str | None = None) -> list[ModelRecord]:
        """Every version (of one strategy, or all), newest first."""
        stmt = select(models).order_by(models.c.strategy, models.c.version.desc())
        if strategy is not None:
            stmt = stmt.where(models.c.strategy == strategy)
        with self.store.connect() as conn:
            return [_record(r) for r in conn.execute(stmt).mappings()]

    def champion_record(self, strategy: str) -> ModelRecord | None:
        """The champion's row (unverified), or None."""
        with self.store.connect() as conn:
            row = conn.execute(select(models).where(models.c.strategy == strategy, models.c.role == "champion")
                               ).mappings().first()
        return _record(row) if row else None

    def load(self, record: ModelRecord, expected_features: Sequence[str] | None = None) -> LoadedModel:
        """Verify hash, format, strategy and features, then return the model; ModelIntegrityError otherwise."""
        import joblib

        path = Path(record.path)
        what = f"model {record.strategy} v{record.version} ({path})"
        if not path.is_file():
            raise ModelIntegrityError(f"{what}: file is missing")
        digest = sha256_file(path)
        if digest != record.sha256:
            raise ModelIntegrityError(f"{what}: sha256 {digest[:12]}... does not match the registry's "
                                      f"{record.sha256[:12]}... (corrupt, truncated or replaced)")
        try:
            payload = joblib.load(path)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means the artefact is unusable
            raise ModelIntegrityError(f"{what}: cannot be loaded: {type(exc).__name__}: {exc}") from exc
        if not isinstance(payload, dict) or payload.get("format") != ARTEFACT_FORMAT:
            raise ModelIntegrityError(f"{what}: not a {ARTEFACT_FORMAT} artefact")
        if payload.get("strategy") != record.strategy:
            raise ModelIntegrityError(f"{what}: artefact is for strategy {payload.get('strategy')!r}")
        if list(payload.get("features", [])) != record.features:
            raise ModelIntegrityError(f"{what}: artefact features {payload.get('features')} differ from the "
                                      f"registry's {record.features}")
        if expected_features is not None and list(expected_features) != record.features:
            raise ModelIntegrityError(f"{what}: feature list {record.features} does not match the strategy's "
                                      f"current features {list(expected_features)}")
        return LoadedModel(record, payload["estimator"], float(payload.get("payoff_ratio", record.payoff_ratio)))

    def champion(self, strategy: str, expected_features: Sequence[str] | None = None) -> LoadedModel | None:
        """The verified champion, or None when the strategy has none.

        A champion already verified in memory keeps serving. If the stored champion fails verification it is
        marked rejected with an alert, and the most recent earlier champion that verifies takes over (audited).
        """
        rec = self.champion_record(strategy)
        if rec is None:
            self._serving.pop(strategy, None)
            return None
        cached = self._serving.get(strategy)
        if cached is not None and cached.record.id == rec.id and \
                (expected_features is None or list(expected_features) == cached.features):
            return cached
        try:
            loaded = self.load(rec, expected_features)
        except ModelIntegrityError as exc:
            raise_alert(self.store, "critical", "model.integrity", str(exc),
                        {"strategy": strategy, "version": rec.version}, source="engine")
            self._set_role(rec, "rejected", "engine", f"champion failed verification: {exc}")
            fallback = self._fallback(strategy, expected_features)
            if fallback is None:
                self._serving.pop(strategy, None)
                raise
            return fallback
        self._serving[strategy] = loaded
        return loaded

    # --- roles ----------------------------------------------------------------------------------------------
    def _set_role(self, rec: ModelRecord, role: str, source: str, reason: str, user: str | None = None) -> None:
        with self.store.begin() as conn:
            conn.execute(update(models).where(models.c.id == rec.id).values(role=role))
            audit(conn, source, f"model.{role}", {"strategy": rec.strategy, "version": rec.version,
                                                  "reason": reason}, user=user)

    def _make_champion(self, rec: ModelRecord, loaded: LoadedModel, source: str, action: str, reason: str,
                       user: str | None) -> LoadedModel:
        with self.store.begin() as conn:
            old = conn.execute(select(models.c.version).where(models.c.strategy == rec.strategy,
                                                              models.c.role == "champion")).scalar()
            conn.execute(update(models).where(models.c.strategy == rec.strategy, models.c.role == "champion")
                         .values(role="retired"))
            conn.execute(update(models).where(models.c.id == rec.id).values(role="champion", promoted_at=now_ms()))
            audit(conn, source, action, {"strategy": rec.strategy, "version": rec.version, "previous": old,
                                         "sha256": rec.sha256, "reason": reason}, user=user)
        loaded = LoadedModel(self.get(rec.strategy, rec.version), loaded.estimator, loaded.payoff_ratio)
        self._serving[rec.strategy] = loaded
        return loaded

    def promote(self, strategy: str, version: int, source: str = "engine", user: str | None = None,
                expected_features: Sequence[str] | None = None, reason: str = "") -> LoadedModel:
        """Make a verified version the champion (the old one retires); a failed check leaves the champion serving."""
        rec = self.get(strategy, version)
        if rec.role == "champion":
            return self.champion(strategy, expected_features) or self.load(rec, expected_features)
        try:
            loaded = self.load(rec, expected_features)
        except ModelIntegrityError as exc:
            raise_alert(self.store, "warning", "model.integrity", f"promotion refused: {exc}",
                        {"strategy": strategy, "version": version}, source=source)
            self._set_role(rec, "rejected", source, f"promotion refused: {exc}", user)
            raise
        return self._make_champion(rec, loaded, source, "model.promoted", reason or "promoted", user)

    def _fallback(self, strategy: str, expected_features: Sequence[str] | None,
                  source: str = "engine", user: str | None = None) -> LoadedModel | None:
        """Reinstate the most recent former champion that verifies; None when there is none."""
        with self.store.connect() as conn:
            rows = conn.execute(select(models).where(models.c.strategy == strategy, models.c.role == "retired",
                                                     models.c.promoted_at.is_not(None))
                                .order_by(models.c.promoted_at.desc(), models.c.version.desc())).mappings().all()
        for row in rows:
            rec = _record(row)
            try:
                loaded = self.load(rec, expected_features)
            except ModelIntegrityError as exc:
                raise_alert(self.store, "warning", "model.integrity", str(exc),
                            {"strategy": strategy, "version": rec.version}, source=source)
                self._set_role(rec, "rejected", source, f"rollback candidate failed verification: {exc}", user)
                continue
            return self._make_champion(rec, loaded, source, "model.rollback", "rolled back", user)
        return None

    def rollback(self, strategy: str, source: str = "engine", user: str | None = None,
                 expected_features: Sequence[str] | None = None) -> LoadedModel:
        """Pull the champion (marked rejected) and reinstate the previous one that verifies; ValueError if none."""
        current = self.champion_record(strategy)
        if current is None:
            raise ValueError(f"strategy {strategy!r}: has no champion to roll back from")
        with self.store.connect() as conn:
            has_prev = conn.execute(select(func.count()).select_from(models).where(
                models.c.strategy == strategy, models.c.role == "retired", models.c.promoted_at.is_not(None))).scalar()
        if not has_prev:
            raise ValueError(f"strategy {strategy!r}: no previous champion to roll back to")
        restored = self._fallback(strategy, expected_features, source, user)
        if restored is None:
            raise ModelIntegrityError(f"strategy {strategy!r}: no previous champion passes verification; "
                                      f"v{current.version} stays champion")
        # the operator pulled this version from service: rejected, so a second rollback does not bring it back
        self._set_role(current, "rejected", source, f"rolled back to v{restored.version}", user)
        return restored
