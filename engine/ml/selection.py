"""Model selection on the past only: walk-forward CV with an embargo, and past-only calibration.

Purged k-fold trains on events after the test fold, and its 1% embargo is far shorter than the 336-720-bar feature
lookbacks, so a family or calibration chosen by it is chosen partly on the future. Here every candidate (model
family x calibration) is scored by `WalkForwardSplit`: each test block is graded by a model trained only on events
whose labels end at least `embargo` before the block starts, where the embargo is at least the longest feature
lookback plus the label horizon (`required_embargo_bars`; the splitter refuses a shorter one). The candidate with the
lowest mean Brier score wins. Calibration is past-only too: the estimator is fitted on the older 75% of the training
events and the calibration map (sigmoid or isotonic) on the newest 25%, after a purge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from engine.ml.transforms import QuantileBinner, finite_or_nan

FAMILIES = ("hist_gradient_boosting", "random_forest", "logistic")
TREES = ("hist_gradient_boosting", "random_forest")  # families that bin their features (QuantileBinner)
CALIBRATIONS = ("sigmoid", "isotonic")
CALIB_FRAC = 0.25  # newest share of the training events that fits the calibration map


def required_embargo_bars(strategy: Any, spec: Any, micro: Any = None) -> int:
    """Longest feature lookback (strategy warm-up, microstructure windows) plus the label horizon, in bars."""
    from engine.ml.dataset import MicroParams

    p = micro or MicroParams()
    warm = int(strategy.warmup()) if hasattr(strategy, "warmup") else int(getattr(strategy, "warmup_bars", 0))
    return max(warm, p.volume_window, p.amihud_window, 4) + int(spec.max_holding)


def _ns(values: Any) -> np.ndarray:
    """Epoch nanoseconds of timestamps; pass a Series itself (its tz-aware `.to_numpy()` builds Timestamp objects)."""
    return pd.DatetimeIndex(values).as_unit("ns").asi8


class WalkForwardSplit:
    """Past-only splits: `n_splits` consecutive test blocks, each trained on events that ended before it by `embargo`.

    Events are cut into n_splits + 1 contiguous groups; group k (k >= 1) is a test block and its training set is every
    earlier event whose label ended at least `embargo` before the block's first event. Nothing after a test block is
    ever trained on. `min_embargo` (the lookback + horizon rule) makes a too-short embargo an error.
    """

    def __init__(self, n_splits: int, t1: pd.Series, embargo: pd.Timedelta,
                 min_embargo: pd.Timedelta | None = None) -> None:
        if n_splits < 1:
            raise ValueError(f"n_splits: must be >= 1, got {n_splits}")
        embargo = pd.Timedelta(embargo)
        if min_embargo is not None and embargo < pd.Timedelta(min_embargo):
            raise ValueError(f"embargo: {embargo} is shorter than the longest feature lookback plus the label "
                             f"horizon ({pd.Timedelta(min_embargo)}); raise it")
        self.n_splits = n_splits
        self.embargo = embargo
        self._t0 = _ns(t1.index)
        self._t1 = _ns(t1)
        if len(self._t0) and np.any(np.diff(self._t0) < 0):
            raise ValueError("t1: index (event starts) must be sorted ascending")

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of test blocks (sklearn protocol)."""
        return self.n_splits

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (train, test) index arrays; train rows all end `embargo` before the test block starts."""
        n = len(X)
        if n != len(self._t0):
            raise ValueError(f"X: has {n} rows but t1 has {len(self._t0)} events")
        bounds = np.linspace(0, n, self.n_splits + 2).astype(int)
        gap = self.embargo.value
        for k in range(1, self.n_splits + 1):
            i0, i1 = int(bounds[k]), int(bounds[k + 1])
            if i1 <= i0:
                continue
            start = self._t0[i0]
            train = np.flatnonzero((self._t0 < start) & (self._t1 < start - gap))
            yield train, np.arange(i0, i1)


def make_estimator(family: str, random_state: int = 0) -> Pipeline:
    """An unfitted pipeline (clean -> bin or scale -> classifier) for one model family."""
    clean = ("clean", FunctionTransformer(finite_or_nan))
    if family == "hist_gradient_boosting":
        model = HistGradientBoostingClassifier(max_iter=60, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=30,
                                               l2_regularization=1.0, early_stopping=False, random_state=random_state)
        return Pipeline([clean, ("bin", QuantileBinner()), ("model", model)])
    if family == "random_forest":
        model = RandomForestClassifier(n_estimators=40, max_depth=8, min_samples_leaf=20, max_features="sqrt",
                                       max_samples=0.3, n_jobs=1, random_state=random_state)
        return Pipeline([clean, ("bin", QuantileBinner()), ("model", model)])
    if family == "logistic":
        return Pipeline([clean, ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                         ("scale", StandardScaler()), ("model", LogisticRegression(C=0.05, max_iter=300))])
    raise ValueError(f"family: must be one of {FAMILIES}, got {family!r}")


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q)).reshape(-1, 1)


def _split_fit_calib(y: np.ndarray, t1: pd.Series, calibration: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows for the estimator (older, purged) and for the calibration map (newest CALIB_FRAC)."""
    n = len(y)
    c0 = int(n * (1 - CALIB_FRAC))
    if calibration == "none" or c0 >= n:
        return np.arange(n), np.zeros(0, dtype=int)
    start = _ns(t1.index)[c0]
    fit_rows = np.flatnonzero((np.arange(n) < c0) & (_ns(t1) < start))
    cal_rows = np.arange(c0, n)
    if len(np.unique(y[fit_rows])) < 2 or len(np.unique(y[cal_rows])) < 2:
        return np.arange(n), np.zeros(0, dtype=int)
    return fit_rows, cal_rows


def fit_calibrator(raw: np.ndarray, y: np.ndarray, w: np.ndarray, calibration: str) -> Any:
    """A sigmoid (Platt, on the logit) or isotonic map from raw scores to probabilities."""
    if calibration == "isotonic":
        return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y, sample_weight=w)
    if calibration == "sigmoid":
        return LogisticRegression(C=1.0).fit(_logit(raw), y, sample_weight=w)
    raise ValueError(f"calibration: must be one of {CALIBRATIONS}, got {calibration!r}")


def apply_calibrator(calibrator: Any, raw: np.ndarray) -> np.ndarray:
    """Probabilities from raw scores through a fitted calibration map (identity without one)."""
    if calibrator is None:
        return raw
    if isinstance(calibrator, IsotonicRegression):
        return calibrator.predict(raw)
    return calibrator.predict_proba(_logit(raw))[:, 1]


@dataclass(frozen=True)
class FinalBinning:
    """The final fit's QuantileBinner fitted on its estimator rows, with those rows and the calibration rows binned
    (a tree family's binning, done in the model choice's pool while the fits run)."""

    n: int
    fit_rows: np.ndarray
    cal_rows: np.ndarray
    binner: QuantileBinner
    fit_X: np.ndarray
    cal_X: np.ndarray

    def fits(self, family: str, n: int, fit_rows: np.ndarray, cal_rows: np.ndarray) -> bool:
        """Whether this binning is the one a `family` fit on these n events and rows would compute itself."""
        return (family in TREES and n == self.n and np.array_equal(fit_rows, self.fit_rows)
                and np.array_equal(cal_rows, self.cal_rows))


def final_binning(X: pd.DataFrame, y: np.ndarray, t1: pd.Series) -> FinalBinning:
    """The binning `PastCalibratedModel.fit` of a tree family would do on (X, y, t1) (its estimator and
    calibration rows are the same for both calibration maps)."""
    fit_rows, cal_rows = _split_fit_calib(np.asarray(y), t1, "sigmoid")
    clean = finite_or_nan(X)
    binner = QuantileBinner().fit(clean.iloc[fit_rows])
    return FinalBinning(len(y), fit_rows, cal_rows, binner, binner.transform(clean.iloc[fit_rows]),
                        binner.transform(clean.iloc[cal_rows]))


@dataclass
class PastCalibratedModel:
    """An estimator fitted on older events and a calibration map fitted on the newest ones (never the reverse)."""

    family: str
    calibration: str
    random_state: int = 0
    estimator_: Any = field(default=None, repr=False)
    calibrator_: Any = field(default=None, repr=False)
    constant_: float | None = None  # a one-class training set predicts its base rate

    def fit(self, X: pd.DataFrame, y: np.ndarray, w: np.ndarray, t1: pd.Series,
            n_jobs: int = 1, binned: FinalBinning | None = None) -> "PastCalibratedModel":
        """Fit on (X, y, w) in time order: estimator on the older part, calibration on the newest part.

        `n_jobs` threads build a random forest's trees (each tree's seed is drawn before they are built, so the
        forest is the same on any number); the stored model keeps n_jobs=1 for its small live predictions.
        `binned` (`Selection.final_binning`, computed beside the model choice) saves a tree family's binning here:
        the same binner and rows, so the same pipeline (tests/ml/test_selection.py compares the pickles)."""
        y = np.asarray(y)
        if len(np.unique(y)) < 2:
            self.constant_ = float(y.mean()) if len(y) else 0.5
            return self
        fit_rows, cal_rows = _split_fit_calib(y, t1, self.calibration)
        self.estimator_ = make_estimator(self.family, self.random_state)
        forest = self.family == "random_forest" and n_jobs > 1
        if forest:
            self.estimator_.set_params(model__n_jobs=n_jobs)
        pre = binned if binned is not None and binned.fits(self.family, len(y), fit_rows, cal_rows) else None
        if pre is None:
            self.estimator_.fit(X.iloc[fit_rows], y[fit_rows], model__sample_weight=w[fit_rows])
        else:  # what Pipeline.fit does, with the binner already fitted on these rows
            self.estimator_.steps = list(self.estimator_.steps)
            self.estimator_.steps[0][1].fit(X.iloc[fit_rows])
            self.estimator_.steps[1] = ("bin", pre.binner)
            self.estimator_.steps[2][1].fit(pre.fit_X, y[fit_rows], sample_weight=w[fit_rows])
        if forest:
            self.estimator_.set_params(model__n_jobs=1)
        self.calibrator_ = None
        if len(cal_rows):
            raw = (self.estimator_.predict_proba(X.iloc[cal_rows]) if pre is None
                   else self.estimator_.steps[2][1].predict_proba(pre.cal_X))[:, 1]
            self.calibrator_ = fit_calibrator(raw, y[cal_rows], w[cal_rows], self.calibration)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """(n, 2) class probabilities, calibrated; the sklearn shape the registry and live sizing expect."""
        if self.constant_ is not None:
            p = np.full(len(X), self.constant_)
        else:
            p = apply_calibrator(self.calibrator_, self.estimator_.predict_proba(X)[:, 1])
        p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
        return np.column_stack([1 - p, p])


@dataclass
class Selection:
    """Which candidate won the past-only CV, and every candidate's mean Brier and AUC."""

    family: str
    calibration: str
    scores: dict[str, dict[str, float]]
    folds: int
    final_binning: FinalBinning | None = field(default=None, repr=False)  # with select_model(final_binning=True)


def _fold_scores(X: pd.DataFrame, y: np.ndarray, w: np.ndarray, t1: pd.Series, train: np.ndarray,
                 test: np.ndarray, fam: str, calibrations: tuple[str, ...], random_state: int,
                 binned: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> dict[str, tuple[float, float]]:
    """(Brier, AUC) per calibration of one family fitted on one fold, scored on its test block.

    `binned` holds the fold's fit, calibration and test rows already through the QuantileBinner fitted on the fit
    rows (shared by the tree families: the same edges the family's pipeline would learn), else the pipeline runs."""
    ytr, wtr = y[train], w[train]
    fit_rows, cal_rows = _split_fit_calib(ytr, t1.iloc[train], "sigmoid")
    if binned is not None:
        est = make_estimator(fam, random_state).named_steps["model"]
        est.fit(binned[0], ytr[fit_rows], sample_weight=wtr[fit_rows])
        raw_test = est.predict_proba(binned[2])[:, 1]
        raw_cal = est.predict_proba(binned[1])[:, 1] if len(cal_rows) else None
    else:
        Xtr = X.iloc[train]
        est = make_estimator(fam, random_state).fit(Xtr.iloc[fit_rows], ytr[fit_rows],
                                                    model__sample_weight=wtr[fit_rows])
        raw_test = est.predict_proba(X.iloc[test])[:, 1]
        raw_cal = est.predict_proba(Xtr.iloc[cal_rows])[:, 1] if len(cal_rows) else None
    out = {}
    for cal in calibrations:
        calib = fit_calibrator(raw_cal, ytr[cal_rows], wtr[cal_rows], cal) if raw_cal is not None else None
        p = np.clip(apply_calibrator(calib, raw_test), 0.0, 1.0)
        out[cal] = (float(brier_score_loss(y[test], p)), float(roc_auc_score(y[test], p)))
    return out


def _binned_fold(X: pd.DataFrame, y: np.ndarray, t1: pd.Series, train: np.ndarray,
                 test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fold's fit, calibration and test rows through a QuantileBinner fitted on its fit rows."""
    fit_rows, cal_rows = _split_fit_calib(y[train], t1.iloc[train], "sigmoid")
    Xtr = finite_or_nan(X.iloc[train])
    binner = QuantileBinner().fit(Xtr.iloc[fit_rows])
    return (binner.transform(Xtr.iloc[fit_rows]), binner.transform(Xtr.iloc[cal_rows]),
            binner.transform(finite_or_nan(X.iloc[test])))


def _one_openmp_thread() -> Any:
    """A context capping OpenMP at one thread in the calling thread (OpenMP's count is per thread: a new thread, or
    an uncapped caller, would run HistGradientBoosting on every core, spinning against the other fits)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="openmp").limit(limits=1)


def _run_threaded(X: pd.DataFrame, y: np.ndarray, w: np.ndarray, t1: pd.Series,
                  folds: list[tuple[np.ndarray, np.ndarray]], tasks: list[tuple[int, str]], trees: list[str],
                  calibrations: tuple[str, ...], random_state: int, n_jobs: int,
                  final: bool = False) -> tuple[list[dict], FinalBinning | None]:
    """`_fold_scores` of every (fold, family) task on `n_jobs` threads, returned in `tasks` order, and with `final`
    the final fit's binning (`final_binning`), queued last to fill the threads' tail.

    One pool runs everything: each fold's binning first, then the fits, biggest fold first (a fold's cost grows
    with its training rows, so the small ones fill the gaps at the end), each fit waiting only for its own fold's
    binning. Every task is seeded and independent, so the order changes the wall time, never a score; each runs
    on one OpenMP thread, like the sequential path."""
    from concurrent.futures import ThreadPoolExecutor

    def one_thread(fn: Any, *args: Any) -> Any:
        with _one_openmp_thread():
            return fn(*args)

    shared = len(trees) > 1
    by_size = sorted(range(len(folds)), key=lambda k: -len(folds[k][0]))
    with ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="select") as pool:
        bins = {k: pool.submit(one_thread, _binned_fold, X, y, t1, *folds[k]) for k in by_size} if shared else {}

        def run(k: int, fam: str) -> dict[str, tuple[float, float]]:
            binned = bins[k].result() if shared and fam in trees else None
            return _fold_scores(X, y, w, t1, *folds[k], fam, calibrations, random_state, binned)

        order = sorted(range(len(tasks)), key=lambda i: by_size.index(tasks[i][0]))
        futures = {i: pool.submit(one_thread, run, *tasks[i]) for i in order}
        last = pool.submit(final_binning, X, y, t1) if final else None
        return [futures[i].result() for i in range(len(tasks))], (last.result() if last is not None else None)


def select_model(X: pd.DataFrame, y: np.ndarray, w: np.ndarray, t1: pd.Series, embargo: pd.Timedelta,
                 min_embargo: pd.Timedelta | None = None, families: tuple[str, ...] = FAMILIES[:2],
                 calibrations: tuple[str, ...] = CALIBRATIONS, n_splits: int = 3, random_state: int = 0,
                 min_train: int = 100, n_jobs: int = 1, final: bool = False) -> Selection:
    """Score every family x calibration by walk-forward CV (Brier, lower is better) and pick the best.

    The fold x family fits are independent and seeded, so with `n_jobs` > 1 they run on that many threads (tree
    fitting releases the GIL) with the same result; the tree families share each fold's binned features. Every fit
    runs on one OpenMP thread (the parallelism is `n_jobs`; an uncapped HistGradientBoosting on a busy machine spins
    its threads: 40 s instead of 1.8 s for the same selection at load 16). With `final` and threads, the pool also
    bins the whole training set for the final fit (`Selection.final_binning`, for `PastCalibratedModel.fit`)."""
    cv = WalkForwardSplit(n_splits, t1, embargo, min_embargo)
    y = np.asarray(y)
    folds = [(train, test) for train, test in cv.split(X)
             if len(train) >= min_train and len(np.unique(y[train])) >= 2 and len(np.unique(y[test])) >= 2]
    trees = [f for f in families if f in TREES]
    tasks = [(k, fam) for k in range(len(folds)) for fam in families]

    shared = len(trees) > 1
    pre = None
    if n_jobs > 1 and len(tasks) > 1:
        results, pre = _run_threaded(X, y, w, t1, folds, tasks, trees, calibrations, random_state, n_jobs,
                                     final and bool(trees))
    else:
        with _one_openmp_thread():
            bins = [_binned_fold(X, y, t1, *f) for f in folds] if shared else []
            results = [_fold_scores(X, y, w, t1, *folds[k], fam, calibrations, random_state,
                                    bins[k] if shared and fam in trees else None) for k, fam in tasks]
    briers: dict[str, list[float]] = {}
    aucs: dict[str, list[float]] = {}
    for (_k, fam), res in zip(tasks, results):  # fold order, then family, then calibration: as fitted one by one
        for cal in calibrations:
            briers.setdefault(f"{fam}+{cal}", []).append(res[cal][0])
            aucs.setdefault(f"{fam}+{cal}", []).append(res[cal][1])
    scores = {k: {"brier": float(np.mean(v)), "auc": float(np.mean(aucs[k]))} for k, v in briers.items()}
    if not scores:
        return Selection(families[0], calibrations[0], {}, 0, pre)
    best = min(scores, key=lambda k: scores[k]["brier"])
    fam, cal = best.split("+")
    return Selection(fam, cal, scores, len(folds), pre)
