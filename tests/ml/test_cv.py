"""Purged/embargoed CV splitters: sklearn compatibility, no overlap, and a constructed leak they neutralise."""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

from engine.ml.cv import CombinatorialPurgedKFold, PurgedKFold


def _leaky_world(n: int = 1500, horizon: int = 40, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
    """Labels look `horizon` bars ahead (overlapping); features only encode *when* a row is (a smooth random walk).

    The features carry no information about the future, so an honest split scores AUC ~ 0.5. Neighbouring rows
    share almost all of their label window, so a split that trains on neighbours can read the answer.
    """
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n + horizon + 1)
    csum = np.concatenate([[0.0], np.cumsum(z)])
    y = (csum[np.arange(n) + 1 + horizon] - csum[np.arange(n) + 1] > 0).astype(int)
    idx = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="ts")
    X = pd.DataFrame(np.cumsum(rng.normal(size=(n, 3)), axis=0), index=idx, columns=["a", "b", "c"])
    t1 = pd.Series(idx[np.minimum(np.arange(n) + horizon, n - 1)], index=idx)
    return X, y, t1


def test_leaky_split_inflates_and_purged_split_does_not(report) -> None:  # noqa: ANN001
    X, y, t1 = _leaky_world()
    rf = RandomForestClassifier(n_estimators=30, min_samples_leaf=3, random_state=0, n_jobs=1)
    leaky = cross_val_score(rf, X, y, cv=KFold(5, shuffle=True, random_state=0), scoring="roc_auc").mean()
    plain = cross_val_score(rf, X, y, cv=KFold(5), scoring="roc_auc").mean()
    purged = cross_val_score(rf, X, y, cv=PurgedKFold(5, t1=t1, embargo_pct=0.01), scoring="roc_auc").mean()
    cpcv = cross_val_score(rf, X, y, cv=CombinatorialPurgedKFold(5, 2, t1=t1, embargo_pct=0.01),
                           scoring="roc_auc").mean()
    report("CV on a constructed leak (true AUC 0.5)", {"shuffled_kfold_auc": leaky, "plain_kfold_auc": plain,
                                                        "purged_kfold_auc": purged, "cpcv_auc": cpcv})
    assert leaky > 0.85
    assert abs(purged - 0.5) < 0.12 and abs(cpcv - 0.5) < 0.12
    assert leaky - purged > 0.25


def test_purged_folds_never_overlap_test_spans() -> None:
    X, y, t1 = _leaky_world(n=600, horizon=25)
    cv = PurgedKFold(4, t1=t1, embargo_pct=0.05)
    t0n, t1n = X.index.asi8, pd.DatetimeIndex(t1).asi8
    embargo = int((t1n.max() - t0n.min()) * 0.05)
    seen = []
    for train, test in cv.split(X):
        start, end = t0n[test].min(), t1n[test].max()
        assert not np.any((t0n[train] <= end) & (t1n[train] >= start))
        assert not np.any((t0n[train] > end) & (t0n[train] <= end + embargo))
        assert len(np.intersect1d(train, test)) == 0 and len(train) > 0
        seen.append(test)
    assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(len(X)))


def test_combinatorial_splits_count_and_purge() -> None:
    X, y, t1 = _leaky_world(n=600, horizon=10)
    cv = CombinatorialPurgedKFold(6, 2, t1=t1, embargo_pct=0.0)
    splits = list(cv.split(X))
    assert len(splits) == cv.get_n_splits() == comb(6, 2) and cv.n_paths == 5
    t0n, t1n = X.index.asi8, pd.DatetimeIndex(t1).asi8
    for train, test in splits:
        assert len(test) == 200
        # every test row's span is disjoint from every training span
        for tr0, tr1 in ((t0n[train], t1n[train]),):
            for j in test[::17]:
                assert not np.any((tr0 <= t1n[j]) & (tr1 >= t0n[j]))
    counts = np.bincount(np.concatenate([te for _, te in splits]), minlength=len(X))
    assert (counts == comb(5, 1)).all()  # each row is tested in C(N-1, k-1) splits


def test_works_inside_gridsearchcv() -> None:
    X, y, t1 = _leaky_world(n=400, horizon=10)
    gs = GridSearchCV(RandomForestClassifier(n_estimators=10, random_state=0), {"max_depth": [2, 4]},
                      cv=PurgedKFold(3, t1=t1, embargo_pct=0.01), scoring="roc_auc").fit(X, y)
    assert gs.best_params_["max_depth"] in (2, 4) and len(gs.cv_results_["split2_test_score"]) == 2


def test_bad_input_is_named() -> None:
    X, y, t1 = _leaky_world(n=100, horizon=5)
    with pytest.raises(ValueError, match="X"):
        list(PurgedKFold(3, t1=t1).split(X.iloc[:50]))
    with pytest.raises(TypeError, match="t1"):
        PurgedKFold(3, t1=list(t1))
    with pytest.raises(ValueError, match="n_test_groups"):
        CombinatorialPurgedKFold(4, 4, t1=t1)
    with pytest.raises(ValueError, match="sorted"):
        PurgedKFold(3, t1=t1.iloc[::-1])
