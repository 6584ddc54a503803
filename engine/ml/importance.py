"""Feature importance (AFML ch. 8): MDI, MDA with purged cross-validation, and single-feature importance (SFI).

MDI is in-sample and fast but biased towards high-cardinality features and blind to substitution across folds; MDA
and SFI are out-of-sample. MDA and SFI use `engine.ml.cv.PurgedKFold` (events whose label span overlaps a test
block are purged from training, plus an embargo), so overlapping triple-barrier labels do not leak. Without `t1`
each row is an event of zero length (purging then only applies the embargo).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _check_xy(X: pd.DataFrame, y: pd.Series, sample_weight: Any = None) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    if not isinstance(X, pd.DataFrame) or X.shape[1] < 1:
        raise ValueError("X: expected a DataFrame with at least one feature column")
    if len(X) != len(y):
        raise ValueError(f"y: has {len(y)} rows, X has {len(X)}")
    if X.isna().any().any():
        bad = list(X.columns[X.isna().any()])
        raise ValueError(f"X: contains NaN in columns {bad}; drop or fill warm-up rows first")
    if pd.Series(np.asarray(y)).nunique() < 2:
        raise ValueError("y: needs at least two classes")
    w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    if len(w) != len(X):
        raise ValueError(f"sample_weight: has {len(w)} rows, X has {len(X)}")
    return X, pd.Series(np.asarray(y), index=X.index), w


def default_estimator(random_state: int = 0, n_estimators: int = 100) -> Any:
    """A random forest configured as in AFML (one random feature per split, shallow leaves, balanced classes)."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=n_estimators, max_features=1, min_samples_leaf=20,
                                  class_weight="balanced_subsample", random_state=random_state, n_jobs=1)


def _splits(X: pd.DataFrame, t1: pd.Series | None, n_splits: int, embargo_pct: float) -> list[tuple[np.ndarray,
                                                                                                       np.ndarray]]:
    from engine.ml.cv import PurgedKFold

    if t1 is None:
        if not isinstance(X.index, pd.DatetimeIndex):
            raise ValueError("t1: required when X is not indexed by event start times")
        t1 = pd.Series(X.index, index=X.index)
    return list(PurgedKFold(n_splits=n_splits, t1=t1, embargo_pct=embargo_pct).split(X))


def _score(model: Any, X: np.ndarray, y: np.ndarray, w: np.ndarray, scoring: str) -> float:
    from sklearn.metrics import accuracy_score, log_loss

    if scoring == "neg_log_loss":
        proba = model.predict_proba(X)
        return -float(log_loss(y, proba, sample_weight=w, labels=model.classes_))
    if scoring == "accuracy":
        return float(accuracy_score(y, model.predict(X), sample_weight=w))
    raise ValueError(f"scoring: expected neg_log_loss or accuracy, got {scoring!r}")


def _summary(values: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"mean": values.mean(), "std": values.std(ddof=1) * len(values) ** -0.5})
    return out.sort_values("mean", ascending=False)


def mdi_importance(X: pd.DataFrame, y: pd.Series, sample_weight: Any = None, n_estimators: int = 200,
                   random_state: int = 0) -> pd.DataFrame:
    """Mean decrease impurity over the trees of a max_features=1 forest; mean sums to 1; sorted, best first."""
    X, y, w = _check_xy(X, y, sample_weight)
    model = default_estimator(random_state, n_estimators).fit(X.to_numpy(), y.to_numpy(), sample_weight=w)
    per_tree = pd.DataFrame([t.feature_importances_ for t in model.estimators_], columns=X.columns)
    per_tree = per_tree.replace(0.0, np.nan)  # max_features=1: a tree that never drew a feature says nothing of it
    out = _summary(per_tree)
    out["std"] = out["std"] / out["mean"].sum()
    out["mean"] = out["mean"] / out["mean"].sum()
    return out


def mda_importance(X: pd.DataFrame, y: pd.Series, t1: pd.Series | None = None, sample_weight: Any = None,
                   n_splits: int = 5, embargo_pct: float = 0.01, estimator: Any = None,
                   scoring: str = "neg_log_loss", random_state: int = 0) -> pd.DataFrame:
    """Mean decrease in out-of-sample score when one feature is permuted, over purged k-fold; sorted, best first.

    Importance per fold is the score loss relative to the permuted score's distance from perfect, as in AFML:
    (s0 - s1) / -s1 for log-loss, (s0 - s1) / (1 - s1) for accuracy. Also returns the baseline `oos_score`.
    """
    from sklearn.base import clone

    X, y, w = _check_xy(X, y, sample_weight)
    rng = np.random.default_rng(random_state)
    base_model = estimator if estimator is not None else default_estimator(random_state)
    rows: list[dict[str, float]] = []
    baselines: list[float] = []
    xv, yv = X.to_numpy(dtype="float64"), y.to_numpy()
    for train, test in _splits(X, t1, n_splits, embargo_pct):
        model = clone(base_model).fit(xv[train], yv[train], sample_weight=w[train])
        s0 = _score(model, xv[test], yv[test], w[test], scoring)
        baselines.append(s0)
        fold: dict[str, float] = {}
        for j, col in enumerate(X.columns):
            shuffled = xv[test].copy()
            shuffled[:, j] = rng.permutation(shuffled[:, j])
            s1 = _score(model, shuffled, yv[test], w[test], scoring)
            denom = -s1 if scoring == "neg_log_loss" else 1.0 - s1
            fold[col] = (s0 - s1) / denom if denom != 0 else 0.0
        rows.append(fold)
    out = _summary(pd.DataFrame(rows))
    out["oos_score"] = float(np.mean(baselines))
    return out


def sfi_importance(X: pd.DataFrame, y: pd.Series, t1: pd.Series | None = None, sample_weight: Any = None,
                   n_splits: int = 5, embargo_pct: float = 0.01, estimator: Any = None,
                   scoring: str = "accuracy", random_state: int = 0) -> pd.DataFrame:
    """Single-feature importance: purged-CV out-of-sample score of a model trained on each feature alone."""
    from sklearn.base import clone

    X, y, w = _check_xy(X, y, sample_weight)
    base_model = estimator if estimator is not None else default_estimator(random_state)
    splits = _splits(X, t1, n_splits, embargo_pct)
    yv = y.to_numpy()
    scores: dict[str, list[float]] = {}
    for col in X.columns:
        xv = X[[col]].to_numpy(dtype="float64")
        fold_scores = []
        for train, test in splits:
            model = clone(base_model).fit(xv[train], yv[train], sample_weight=w[train])
            fold_scores.append(_score(model, xv[test], yv[test], w[test], scoring))
        scores[col] = fold_scores
    return _summary(pd.DataFrame(scores))


def feature_importance(X: pd.DataFrame, y: pd.Series, method: str = "mda", **kwargs: Any) -> pd.DataFrame:
    """Dispatch to mdi / mda / sfi by name (for the CLI and reports)."""
    methods = {"mdi": mdi_importance, "mda": mda_importance, "sfi": sfi_importance}
    if method not in methods:
        raise ValueError(f"method: expected one of {sorted(methods)}, got {method!r}")
    return methods[method](X, y, **kwargs)
