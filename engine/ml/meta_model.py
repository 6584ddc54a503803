"""The meta-model: a calibrated classifier that says how likely acting on a primary signal is to pay off.

Model choice on the past only (engine.ml.selection): HistGradientBoosting and RandomForest, each with sigmoid or
isotonic calibration, are scored by walk-forward CV (Brier) on the training period with an embargo of at least the
longest feature lookback plus the label horizon; the winner is fitted on the older training events and calibrated on
the newest ones. Purged k-fold AUC (`cv_auc`) may be reported, never used to choose. The last `test_frac` of events,
after a purge and an embargo, is never seen in training: it gives the out-of-sample report - precision, recall, F1, ROC AUC and Brier of
the meta-model, the primary signal's own precision, and the Sharpe of primary-only against primary-plus-overlay
positions over the same bars (the default overlay scales a primary position by min(1, p / base rate); the Kelly
and gated overlays are reported too, see `overlay_sizes`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.metrics import brier_score_loss, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from engine.ml.cv import PurgedKFold
from engine.ml.dataset import MetaDataset
from engine.ml.transforms import QuantileBinner, finite_or_nan  # re-exported: models pickled before the move


def candidate_estimators(random_state: int = 0) -> dict[str, Any]:
    """The two model families compared by CV, regularised for noisy financial labels."""
    return {
        "hist_gradient_boosting": HistGradientBoostingClassifier(
            max_iter=60, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=30, l2_regularization=1.0,
            early_stopping=False, random_state=random_state),
        "random_forest": RandomForestClassifier(
            n_estimators=40, max_depth=8, min_samples_leaf=20, max_features="sqrt", max_samples=0.3,
            class_weight="balanced_subsample", n_jobs=1, random_state=random_state),
    }


@dataclass
class TrainReport:
    """What training measured: CV per candidate, the choice, and the out-of-sample report."""

    estimator: str
    cv_auc: dict[str, list[float]]
    oos: dict[str, float]
    n_train: int
    n_test: int
    elapsed_s: dict[str, float] = field(default_factory=dict)
    test_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # dataset rows graded OOS
    test_prob: np.ndarray = field(default_factory=lambda: np.zeros(0))
    selection: dict[str, Any] = field(default_factory=dict)  # the past-only walk-forward choice and its scores

    @property
    def oos_score(self) -> float:
        """The champion/challenger score: out-of-sample ROC AUC."""
        return float(self.oos.get("roc_auc", float("nan")))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the registry row and the audit log."""
        return {"estimator": self.estimator, "cv_auc": self.cv_auc, "oos": self.oos, "n_train": self.n_train,
                "n_test": self.n_test, "elapsed_s": self.elapsed_s, "selection": self.selection}


def purged_cv_auc(estimator: Any, X: pd.DataFrame, y: np.ndarray, w: np.ndarray, t1: pd.Series, folds: int,
                  embargo_pct: float) -> list[float]:
    """ROC AUC per purged fold, fitting with uniqueness weights (folds with one class are skipped)."""
    scores = []
    Xc = finite_or_nan(X)
    for train, test in PurgedKFold(folds, t1=t1, embargo_pct=embargo_pct).split(Xc):
        if len(np.unique(y[train])) < 2 or len(np.unique(y[test])) < 2:
            continue
        binner = QuantileBinner().fit(Xc.iloc[train])
        model = clone(estimator).fit(binner.transform(Xc.iloc[train]), y[train], sample_weight=w[train])
        prob = model.predict_proba(binner.transform(Xc.iloc[test]))[:, 1]
        scores.append(float(roc_auc_score(y[test], prob)))
    return scores


def split_train_test(ds: MetaDataset, test_frac: float, embargo_pct: float) -> tuple[np.ndarray, np.ndarray]:
    """Time split: the last `test_frac` of events is the test set; earlier events whose labels reach into it are
    purged, and an embargo of `embargo_pct` of the span precedes it."""
    if not 0.0 < test_frac < 1.0:
        raise ValueError(f"test_frac: must be in (0, 1), got {test_frac}")
    n = len(ds.y)
    start = int(n * (1 - test_frac))
    t0 = ds.X.index.as_unit("ns").asi8
    t1 = pd.DatetimeIndex(ds.t1).as_unit("ns").asi8
    test_start = t0[start]
    embargo = int((t1.max() - t0.min()) * embargo_pct)
    train = np.flatnonzero((t1 < test_start - embargo) & (np.arange(n) < start))
    test = np.arange(start, n)
    return train, test


OVERLAYS = ("scaled", "kelly", "gated")


def overlay_sizes(prob: np.ndarray, mode: str, base_rate: float, payoff_ratio: float, gate: float) -> np.ndarray:
    """Position multipliers in [0, 1] from calibrated probabilities.

    scaled: min(1, p / base_rate) - a risk overlay that never levers up and shrinks a primary position in
    proportion to how much less likely than usual its profit barrier is (the default overlay).
    kelly: max(0, p - (1-p)/b), the Kelly fraction the risk package sizes live trades with (scale-free for Sharpe).
    gated: 1 when p > gate else 0 (classic meta-label filtering).
    """
    if mode == "scaled":
        return np.clip(prob / max(base_rate, 1e-9), 0.0, 1.0)
    if mode == "kelly":
        return np.maximum(prob - (1.0 - prob) / payoff_ratio, 0.0)
    if mode == "gated":
        return (prob > gate).astype(float)
    raise ValueError(f"mode: must be one of {OVERLAYS}, got {mode!r}")


def overlay_positions(ds: MetaDataset, rows: np.ndarray, prob: np.ndarray, index: pd.DatetimeIndex,
                      symbols: list[str], size: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(primary, overlay) target frames over `index` for the events in `rows`: side / n, and side * size / n."""
    ev = ds.events.iloc[rows]
    primary = pd.DataFrame(0.0, index=index, columns=symbols)
    overlay = primary.copy()
    k = max(len(symbols), 1)
    for sym in symbols:
        mask = (ev["symbol"] == sym).to_numpy()
        ts = ev.index[mask]
        side = ev["side"].to_numpy()[mask].astype(float)
        primary.loc[ts, sym] = side / k
        overlay.loc[ts, sym] = side * size[mask] / k
    return primary, overlay


def simple_sharpe(targets: pd.DataFrame, panel: Mapping[str, pd.DataFrame], periods_per_year: float,
                  cost_bps: float = 5.0) -> float:
    """Annualised Sharpe of target fractions filled at the next bar's open, with a per-turnover cost."""
    rets = np.zeros(len(targets))
    for sym in targets.columns:
        opens = panel[sym]["open"].reindex(targets.index).astype(float)
        fwd = (opens.shift(-2) / opens.shift(-1) - 1.0).fillna(0.0).to_numpy()  # decided at t, held t+1 -> t+2
        pos = targets[sym].to_numpy()
        turnover = np.abs(np.diff(np.concatenate([[0.0], pos])))
        rets += pos * fwd - turnover * cost_bps / 1e4
    sd = rets.std()
    return float(rets.mean() / sd * np.sqrt(periods_per_year)) if sd > 0 else 0.0


def backtest_sharpe(targets: pd.DataFrame, panel: Mapping[str, pd.DataFrame]) -> float:
    """Sharpe of target fractions through the project's backtester (next-open fills, fees, spread, impact)."""
    from engine.backtest.engine import simulate_targets
    from engine.config import BacktestConfig

    lo, hi = targets.index[0], targets.index[-1]
    sub = {s: f.loc[lo:hi] for s, f in panel.items() if s in targets.columns}
    return float(simulate_targets(targets, sub, BacktestConfig()).metrics["sharpe"])


def default_embargo(ds: MetaDataset) -> pd.Timedelta:
    """Without the strategy's lookback: the microstructure windows plus the label horizon, in bar time."""
    from engine.ml.dataset import MicroParams

    ts = np.unique(ds.X.index.as_unit("ms").asi8)
    step = int(np.median(np.diff(ts[:2000]))) if len(ts) > 1 else 3_600_000
    return pd.Timedelta(milliseconds=step * (MicroParams().volume_window + ds.spec.max_holding))


def train_meta_model(ds: MetaDataset, panel: Mapping[str, pd.DataFrame] | None = None, cv_folds: int = 5,
                     embargo_pct: float = 0.01, test_frac: float = 0.25, refit_full: bool = False,
                     random_state: int = 0, periods_per_year: float = 8760.0,
                     decision_threshold: float | None = None, threads: int = 1,
                     embargo: pd.Timedelta | None = None, report_kfold: bool = True,
                     fit_jobs: int = 2) -> tuple[Any, TrainReport]:
    """Choose family and calibration by past-only walk-forward CV, fit, report out-of-sample; optionally refit.

    `embargo` is the selection CV's gap (the longest feature lookback plus the label horizon; see
    engine.ml.selection.required_embargo_bars); purged k-fold AUC (`cv_auc`) is computed for the report only.

    Precision/recall/F1 count a prediction of 1 when p > `decision_threshold` (default: the training base rate,
    i.e. "better odds than the primary signal usually has"); precision_at_0.5 is reported as well.
    Without `refit_full` the served model is exactly the one the out-of-sample report graded. Native thread pools
    are capped at `threads`: OpenMP spinning on a shared, busy machine made a 1 s fit take 20 s. The model choice's
    independent, seeded fits run on `fit_jobs` threads (same result as one by one).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):
        return _train(ds, panel, cv_folds, embargo_pct, test_frac, refit_full, random_state, periods_per_year,
                      decision_threshold, embargo, report_kfold, fit_jobs)


def _train(ds: MetaDataset, panel: Mapping[str, pd.DataFrame] | None, cv_folds: int, embargo_pct: float,
           test_frac: float, refit_full: bool, random_state: int, periods_per_year: float,
           decision_threshold: float | None, embargo: pd.Timedelta | None,
           report_kfold: bool, fit_jobs: int = 1) -> tuple[Any, TrainReport]:
    from engine.ml.selection import PastCalibratedModel, select_model

    if len(ds.y) < 200 or len(np.unique(ds.y)) < 2:
        raise ValueError(f"dataset: need at least 200 events with both labels, got {len(ds.y)} events "
                         f"with labels {sorted(set(ds.y.tolist()))}")
    times: dict[str, float] = {}
    t = time.perf_counter()
    train, test = split_train_test(ds, test_frac, embargo_pct)
    Xtr, ytr, wtr, t1tr = ds.X.iloc[train], ds.y[train], ds.weight[train], ds.t1.iloc[train]
    # purged k-fold AUC is reported only: it trains on events after the test fold, so it never chooses
    cv_auc = {name: purged_cv_auc(est, Xtr, ytr, wtr, t1tr, cv_folds, embargo_pct)
              for name, est in candidate_estimators(random_state).items()} if report_kfold else {}
    times["cv"] = time.perf_counter() - t
    t = time.perf_counter()
    gap = embargo if embargo is not None else default_embargo(ds)
    sel = select_model(Xtr, ytr, wtr, t1tr, gap, gap, n_splits=3, random_state=random_state, n_jobs=fit_jobs,
                       final=True)  # the final fit's binning runs in the model choice's pool
    best = sel.family
    model = PastCalibratedModel(sel.family, sel.calibration, random_state).fit(Xtr, ytr, wtr, t1tr,
                                                                              n_jobs=fit_jobs, binned=sel.final_binning)
    times["fit"] = time.perf_counter() - t
    prob = model.predict_proba(ds.X.iloc[test])[:, 1]
    yte = ds.y[test]
    base_rate = float(np.average(ytr, weights=wtr))
    threshold = base_rate if decision_threshold is None else float(decision_threshold)
    pred = (prob > threshold).astype(int)
    oos = {"precision": float(precision_score(yte, pred, zero_division=0)),
           "recall": float(recall_score(yte, pred, zero_division=0)),
           "f1": float(f1_score(yte, pred, zero_division=0)),
           "roc_auc": float(roc_auc_score(yte, prob)) if len(np.unique(yte)) > 1 else float("nan"),
           "brier": float(brier_score_loss(yte, prob)),
           "brier_base_rate": float(brier_score_loss(yte, np.full(len(yte), ytr.mean()))),
           "precision_at_0.5": float(precision_score(yte, prob > 0.5, zero_division=0)),
           "primary_precision": float(yte.mean()), "decision_threshold": threshold, "train_base_rate": base_rate,
           "breakeven_prob": 1.0 / (1.0 + ds.spec.payoff_ratio), "taken_share": float(pred.mean())}
    if panel is not None:
        ev_test = ds.events.iloc[test]
        symbols = sorted(panel)
        index = panel[symbols[0]].index
        index = index[(index >= ev_test.index.min()) & (index <= ev_test.index.max())]
        for mode in OVERLAYS:
            size = overlay_sizes(prob, mode, base_rate, ds.spec.payoff_ratio, threshold)
            primary, overlay = overlay_positions(ds, test, prob, index, symbols, size)
            oos["sharpe_primary"] = simple_sharpe(primary, panel, periods_per_year)
            name = "sharpe_overlay" if mode == "scaled" else f"sharpe_overlay_{mode}"
            oos[name] = simple_sharpe(overlay, panel, periods_per_year)
            if mode == "scaled":
                oos["bt_sharpe_primary"] = backtest_sharpe(primary, panel)
                oos["bt_sharpe_overlay"] = backtest_sharpe(overlay, panel)
    if refit_full:
        t = time.perf_counter()
        model = PastCalibratedModel(sel.family, sel.calibration, random_state).fit(ds.X, ds.y, ds.weight, ds.t1,
                                                                                  n_jobs=fit_jobs)
        times["refit"] = time.perf_counter() - t
    report = TrainReport(best, cv_auc, oos, len(train), len(test), times)
    report.selection = {"family": sel.family, "calibration": sel.calibration, "scores": sel.scores,
                        "folds": sel.folds, "embargo": str(gap)}
    report.test_rows = test
    report.test_prob = prob
    return model, report
