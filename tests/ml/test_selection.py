"""Past-only model selection: walk-forward splits never train on or near the future, and the embargo rule holds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.ml.labels import BarrierSpec
from engine.ml.selection import PastCalibratedModel, WalkForwardSplit, required_embargo_bars, select_model


def _events(n: int = 1200, horizon: int = 24) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
    idx = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    t1 = pd.Series(idx + pd.Timedelta(hours=horizon), index=idx)
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)}, index=idx)
    y = (X["a"] + rng.normal(0, 1, n) > 0).astype(int).to_numpy()
    return X, y, t1


def test_embargo_is_at_least_the_longest_lookback_plus_the_label_horizon() -> None:
    from engine.strategy.registry import load_strategy

    qm = load_strategy("quantum_momentum", {})
    assert required_embargo_bars(qm, BarrierSpec(max_holding=48)) == qm.warmup() + 48 == 792 + 48
    X, y, t1 = _events()
    with pytest.raises(ValueError, match="shorter than the longest feature lookback plus the label horizon"):
        WalkForwardSplit(3, t1, pd.Timedelta(hours=100), min_embargo=pd.Timedelta(hours=840))


def test_walk_forward_split_trains_only_on_labels_ended_an_embargo_before_the_test_block() -> None:
    X, y, t1 = _events()
    embargo = pd.Timedelta(hours=72)
    cv = WalkForwardSplit(3, t1, embargo, min_embargo=pd.Timedelta(hours=72))
    splits = list(cv.split(X))
    assert len(splits) == 3
    for train, test in splits:
        start = X.index[test[0]]
        assert len(train) > 0
        assert X.index[train].max() < start  # past only: nothing after the test block, ever
        assert (t1.iloc[train] < start - embargo).all()  # label ended an embargo before the block
        assert not set(train) & set(test)
    # tests follow each other and cover the last 3/4 of the events
    assert splits[0][1][0] == 300 and splits[-1][1][-1] == len(X) - 1


def test_selection_scores_every_candidate_on_past_only_folds_and_calibration_uses_the_newest_rows() -> None:
    X, y, t1 = _events()
    w = np.ones(len(y))
    sel = select_model(X, y, w, t1, pd.Timedelta(hours=48), pd.Timedelta(hours=48),
                       families=("logistic", "random_forest"), calibrations=("sigmoid", "isotonic"), n_splits=2)
    assert sel.folds == 2 and set(sel.scores) == {"logistic+sigmoid", "logistic+isotonic", "random_forest+sigmoid",
                                                  "random_forest+isotonic"}
    best = f"{sel.family}+{sel.calibration}"
    assert sel.scores[best]["brier"] == min(v["brier"] for v in sel.scores.values())
    model = PastCalibratedModel("logistic", "sigmoid").fit(X, y, w, t1)
    p = model.predict_proba(X)[:, 1]
    assert p.shape == (len(X),) and 0 <= p.min() and p.max() <= 1
    assert np.corrcoef(p, X["a"])[0, 1] > 0.9  # it learned the informative column


def test_a_feature_missing_on_every_fit_row_does_not_break_the_tree_families() -> None:
    X, y, t1 = _events(600)
    X["late_feed"] = np.nan
    X.iloc[500:, X.columns.get_loc("late_feed")] = 1.0  # stored only for the newest rows
    for fam in ("hist_gradient_boosting", "random_forest"):
        p = PastCalibratedModel(fam, "sigmoid").fit(X.iloc[:400], y[:400], np.ones(400), t1.iloc[:400]) \
            .predict_proba(X)[:, 1]
        assert np.isfinite(p).all()
