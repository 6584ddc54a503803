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


def _scores_one_pipeline_per_fit(X: pd.DataFrame, y: np.ndarray, w: np.ndarray, t1: pd.Series,
                                 embargo: pd.Timedelta) -> dict:
    """The selection loop as it was before retrains were sped up: a full pipeline (clean, bin, model) per fold and
    family, fitted one after the other."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    from engine.ml.selection import _split_fit_calib, apply_calibrator, fit_calibrator, make_estimator

    briers: dict[str, list[float]] = {}
    aucs: dict[str, list[float]] = {}
    for train, test in WalkForwardSplit(3, t1, embargo, embargo).split(X):
        Xtr, ytr, wtr = X.iloc[train], y[train], w[train]
        fit_rows, cal_rows = _split_fit_calib(ytr, t1.iloc[train], "sigmoid")
        for fam in ("hist_gradient_boosting", "random_forest"):
            est = make_estimator(fam, 0).fit(Xtr.iloc[fit_rows], ytr[fit_rows], model__sample_weight=wtr[fit_rows])
            raw_test = est.predict_proba(X.iloc[test])[:, 1]
            raw_cal = est.predict_proba(Xtr.iloc[cal_rows])[:, 1]
            for cal in ("sigmoid", "isotonic"):
                p = np.clip(apply_calibrator(fit_calibrator(raw_cal, ytr[cal_rows], wtr[cal_rows], cal), raw_test),
                            0.0, 1.0)
                briers.setdefault(f"{fam}+{cal}", []).append(float(brier_score_loss(y[test], p)))
                aucs.setdefault(f"{fam}+{cal}", []).append(float(roc_auc_score(y[test], p)))
    return {k: {"brier": float(np.mean(v)), "auc": float(np.mean(aucs[k]))} for k, v in briers.items()}


def test_parallel_selection_with_shared_binning_scores_exactly_like_one_pipeline_per_fit() -> None:
    """Fits on two threads, the tree families sharing each fold's binned features (the retrain speed-up), give the
    very same scores, hence the same family, calibration and served model, as fitting one pipeline at a time."""
    X, y, t1 = _events()
    X["c"] = np.where(np.arange(len(X)) % 7 == 0, np.inf, X["b"] * 2)  # +-inf is cleaned before binning
    w = np.random.default_rng(2).uniform(0.5, 1.5, len(y))
    embargo = pd.Timedelta(hours=48)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # the reference fits on one OpenMP thread, like every selection fit
        want = _scores_one_pipeline_per_fit(X, y, w, t1, embargo)
    for n_jobs in (1, 2):
        sel = select_model(X, y, w, t1, embargo, embargo, n_jobs=n_jobs)
        assert sel.scores == want
        assert sel.folds == 3


def test_a_forest_fitted_on_two_threads_is_the_forest_fitted_on_one_and_is_stored_single_threaded() -> None:
    """The retrain's final fit builds the forest's trees on 2 threads: same trees (same probabilities, bit for bit)
    as one thread, and the model it stores predicts on one thread as before."""
    X, y, t1 = _events()
    w = np.random.default_rng(3).uniform(0.5, 1.5, len(y))
    one = PastCalibratedModel("random_forest", "sigmoid").fit(X, y, w, t1)
    two = PastCalibratedModel("random_forest", "sigmoid").fit(X, y, w, t1, n_jobs=2)
    assert np.array_equal(one.predict_proba(X), two.predict_proba(X))
    assert two.estimator_.named_steps["model"].n_jobs == 1


def test_selection_fits_run_gradient_boosting_on_one_openmp_thread_each() -> None:
    """OpenMP's thread count is per thread: without a cap, each selection thread's HistGradientBoosting (and the
    caller's, on the sequential path) would spin up every core. Every fit runs capped at one OpenMP thread."""
    import threading

    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    from engine.ml import selection

    seen: list[tuple[str, int]] = []
    real = selection._fold_scores

    def probe(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - records, then runs the real fit
        seen.append((threading.current_thread().name, _openmp_effective_n_threads()))
        return real(*args, **kwargs)

    X, y, t1 = _events()
    w = np.ones(len(y))
    selection._fold_scores = probe
    try:
        for n_jobs in (2, 1):
            sel = select_model(X, y, w, t1, pd.Timedelta(hours=48), n_jobs=n_jobs)
            assert sel.folds == 3
    finally:
        selection._fold_scores = real
    assert len(seen) == 12 and all(n == 1 for _name, n in seen), seen
    assert all(name.startswith("select") for name, _n in seen[:6]), seen


def test_the_final_fit_with_the_pools_binning_is_the_same_model_pickle_for_pickle() -> None:
    """The retrain bins its whole training set in the model choice's pool (`final=True`) and the final fit reuses
    it: the fitted pipeline (clean, binner, trees) and the calibration map pickle to the same bytes as a fit that
    bins itself, for each tree family and calibration; a fit it does not match (other rows, logistic) bins itself."""
    import pickle

    X, y, t1 = _events(600)
    w = np.random.default_rng(5).uniform(0.5, 1.5, len(y))
    sel = select_model(X, y, w, t1, pd.Timedelta(hours=48), families=("random_forest",), n_jobs=2, final=True)
    assert sel.final_binning is not None
    for fam, cal in (("random_forest", "sigmoid"), ("hist_gradient_boosting", "isotonic")):
        own = PastCalibratedModel(fam, cal).fit(X, y, w, t1, n_jobs=2)
        reused = PastCalibratedModel(fam, cal).fit(X, y, w, t1, n_jobs=2, binned=sel.final_binning)
        assert pickle.dumps(own) == pickle.dumps(reused), (fam, cal)
        assert np.array_equal(own.predict_proba(X), reused.predict_proba(X))
    assert not sel.final_binning.fits("logistic", len(y), sel.final_binning.fit_rows, sel.final_binning.cal_rows)
    half = slice(0, len(y) // 2)
    other = PastCalibratedModel("random_forest", "sigmoid").fit(X.iloc[half], y[half], w[half], t1.iloc[half],
                                                                binned=sel.final_binning)
    alone = PastCalibratedModel("random_forest", "sigmoid").fit(X.iloc[half], y[half], w[half], t1.iloc[half])
    assert pickle.dumps(other) == pickle.dumps(alone)
