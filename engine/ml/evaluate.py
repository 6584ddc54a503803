"""Walk-forward evaluation of a strategy's meta-model: the only score the overlay is judged by.

The engine retrains every `retrain_every` on the labels it could know then (anchored: all resolved events so far;
rolling: those of the last `train_window`). This module replays that schedule: for each window it chooses the model
family and calibration by past-only walk-forward CV (engine.ml.selection), fits on the past, predicts the window's
events, and grades the predictions (events, class balance, AUC, Brier and Brier skill vs the training base rate,
calibration table, precision/recall at the threshold). The stitched out-of-sample predictions then size three
variants through the project's backtester with its costs - primary-only, overlay-scaled (min(1, p / base rate), with
the live rebalance band) and overlay-gated (p > threshold) - and a moving-block bootstrap gives a confidence interval
for each Sharpe difference; the deflated Sharpe is taken over the variants tried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, precision_score, recall_score, roc_auc_score

from engine.ml.dataset import MetaDataset, usable_features
from engine.ml.selection import PastCalibratedModel, required_embargo_bars, select_model

VARIANTS = ("primary", "overlay_scaled", "overlay_gated")


@dataclass(frozen=True)
class EvalSpec:
    """The retraining schedule and the statistics' settings."""

    retrain_every: pd.Timedelta = pd.Timedelta(days=90)
    anchored: bool = True
    train_window: pd.Timedelta | None = None  # rolling window length (anchored=False); default 4 x retrain_every
    min_train_events: int = 200
    selection_folds: int = 3
    families: tuple[str, ...] = ("hist_gradient_boosting", "random_forest")
    calibrations: tuple[str, ...] = ("sigmoid", "isotonic")
    rebalance_band: float = 0.1  # the live trader's execution.rebalance_band, applied to the scaled overlay
    n_boot: int = 1000
    ci: float = 0.9
    sharpe_floor: float = 0.0
    random_state: int = 0

    def __post_init__(self) -> None:
        """Reject settings that cannot make a schedule."""
        if pd.Timedelta(self.retrain_every) <= pd.Timedelta(0):
            raise ValueError(f"retrain_every: must be a positive duration, got {self.retrain_every}")
        if not 0.0 < self.ci < 1.0:
            raise ValueError(f"ci: must be in (0, 1), got {self.ci}")
        if self.n_boot < 10:
            raise ValueError(f"n_boot: need at least 10 bootstrap samples, got {self.n_boot}")


@dataclass
class Evaluation:
    """Per-window and overall results; `as_json` is the `model evaluate --json` object."""

    windows: list[dict[str, Any]]
    overall: dict[str, Any]
    calibration: list[dict[str, float]]
    variants: dict[str, dict[str, float]]
    sharpe_diff_ci: dict[str, list[float]]
    dsr: dict[str, float]
    verdict: str
    embargo_bars: int
    primary_hit_rate: float = float("nan")
    primary_payoff: float = float("nan")
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def brier_skill(self) -> float:
        """Brier skill over all out-of-sample events: 1 - Brier(model) / Brier(training base rate)."""
        return float(self.overall.get("brier_skill", float("nan")))

    def as_json(self) -> dict[str, Any]:
        """One JSON-ready object: windows, brier_skill, sharpe per variant, sharpe_diff_ci, verdict, and the rest."""
        return {"windows": self.windows, "brier_skill": self.brier_skill,
                "sharpe": {k: v.get("sharpe") for k, v in self.variants.items()},
                "sharpe_diff_ci": self.sharpe_diff_ci, "verdict": self.verdict, "overall": self.overall,
                "calibration": self.calibration, "variants": self.variants, "dsr": self.dsr,
                "embargo_bars": self.embargo_bars, "primary_hit_rate": self.primary_hit_rate,
                "primary_payoff": self.primary_payoff, **self.meta}


def schedule(first_ms: int, last_ms: int, t0: np.ndarray, t1: np.ndarray, spec: EvalSpec) -> list[tuple[int, int]]:
    """[start, end) test windows in ms: every `retrain_every` from the first time `min_train_events` labels are known."""
    every = int(pd.Timedelta(spec.retrain_every).value // 1_000_000)
    order = np.sort(t1)
    if len(order) < spec.min_train_events:
        return []
    start = max(int(order[spec.min_train_events - 1]) + 1, first_ms + every)
    out = []
    while start < last_ms:
        out.append((start, min(start + every, last_ms + 1)))
        start += every
    return out


def _rows(ds: MetaDataset) -> tuple[np.ndarray, np.ndarray]:
    return ds.X.index.as_unit("ms").asi8, pd.DatetimeIndex(ds.t1).as_unit("ms").asi8


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Predicted vs observed frequency in equal-width probability bins (empty bins left out)."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        m = which == b
        if m.any():
            rows.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(m.sum()),
                         "mean_p": float(p[m].mean()), "observed": float(y[m].mean())})
    return rows


def grade(y: np.ndarray, p: np.ndarray, base_rate: float, threshold: float) -> dict[str, float]:
    """Events, class balance, AUC, Brier, Brier skill vs the base rate, precision/recall at the threshold."""
    brier = float(brier_score_loss(y, p)) if len(y) else float("nan")
    ref = float(brier_score_loss(y, np.full(len(y), base_rate))) if len(y) else float("nan")
    pred = (p > threshold).astype(int)
    return {"events": int(len(y)), "positive_share": float(y.mean()) if len(y) else float("nan"),
            "auc": float(roc_auc_score(y, p)) if len(np.unique(y)) > 1 else float("nan"),
            "brier": brier, "brier_base_rate": ref,
            "brier_skill": float(1.0 - brier / ref) if ref and ref > 0 else float("nan"),
            "precision": float(precision_score(y, pred, zero_division=0)),
            "recall": float(recall_score(y, pred, zero_division=0)), "threshold": float(threshold),
            "taken_share": float(pred.mean()) if len(pred) else float("nan"), "base_rate": float(base_rate),
            "mean_p": float(p.mean()) if len(p) else float("nan"), "max_p": float(p.max()) if len(p) else float("nan")}


def hysteresis(targets: np.ndarray, band: float) -> np.ndarray:
    """Targets after the live trader's rebalance rule: a held position is resized only when its target moved by
    more than `band` of the target; entries, exits and flips always go through."""
    out = np.zeros_like(targets)
    held = np.zeros(targets.shape[1])
    for t in range(targets.shape[0]):
        tgt = targets[t]
        flip_or_exit = (tgt == 0) | (tgt * held <= 0)
        move = flip_or_exit | (np.abs(tgt - held) > band * np.abs(tgt))
        held = np.where(move, tgt, held)
        out[t] = held
    return out


def block_bootstrap_diff(a: np.ndarray, b: np.ndarray, periods: float, n_boot: int, block: int, ci: float,
                         seed: int = 0) -> list[float]:
    """[lo, hi] of annualised Sharpe(a) - Sharpe(b) under a circular moving-block bootstrap (same blocks for both)."""
    n = len(a)
    if n < 4:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    block = int(max(1, min(block, n // 2)))
    k = int(np.ceil(n / block))
    diffs = np.empty(n_boot)
    for lo in range(0, n_boot, 50):
        m = min(50, n_boot - lo)
        starts = rng.integers(0, n, size=(m, k))
        idx = ((starts[:, :, None] + np.arange(block)) % n).reshape(m, -1)[:, :n]
        ra, rb = a[idx], b[idx]
        sa, sb = ra.std(axis=1), rb.std(axis=1)
        sh_a = np.where(sa > 0, ra.mean(axis=1) / np.where(sa > 0, sa, 1), 0.0)
        sh_b = np.where(sb > 0, rb.mean(axis=1) / np.where(sb > 0, sb, 1), 0.0)
        diffs[lo:lo + m] = (sh_a - sh_b) * np.sqrt(periods)
    q = (1 - ci) / 2
    return [float(np.quantile(diffs, q)), float(np.quantile(diffs, 1 - q))]


def _variant_targets(ds: MetaDataset, rows: np.ndarray, prob: np.ndarray, base: np.ndarray, thr: np.ndarray,
                     index: pd.DatetimeIndex, symbols: list[str], band: float) -> dict[str, pd.DataFrame]:
    """Target fractions per variant over `index` for the graded events (one target per event bar)."""
    ev = ds.events.iloc[rows]
    k = max(len(symbols), 1)
    sizes = {"primary": np.ones(len(rows)),
             "overlay_scaled": np.clip(prob / np.maximum(base, 1e-9), 0.0, 1.0),
             "overlay_gated": (prob > thr).astype(float)}
    out = {}
    for name, size in sizes.items():
        frame = pd.DataFrame(0.0, index=index, columns=symbols)
        for sym in symbols:
            m = (ev["symbol"] == sym).to_numpy()
            frame.loc[ev.index[m], sym] = ev["side"].to_numpy()[m].astype(float) * size[m] / k
        out[name] = frame
    out["overlay_scaled_no_band"] = out["overlay_scaled"]
    out["overlay_scaled"] = pd.DataFrame(hysteresis(out["overlay_scaled"].to_numpy(), band), index=index,
                                         columns=symbols)
    return out


def _backtests(targets: dict[str, pd.DataFrame], panel: Mapping[str, pd.DataFrame], config: Any,
               spec: EvalSpec, block: int) -> tuple[dict, dict, dict]:
    """Backtest every variant; (metrics per variant, Sharpe-difference CIs, DSR per variant)."""
    from engine.backtest.engine import simulate_targets
    from engine.backtest.stats import deflated_sharpe

    idx = next(iter(targets.values())).index
    sub = {s: f.loc[idx[0]:idx[-1]] for s, f in panel.items() if s in targets["primary"].columns}
    results = {name: simulate_targets(t, sub, config) for name, t in targets.items()}
    keys = ("sharpe", "total_return", "max_drawdown", "turnover", "trades", "fees", "slippage", "hit_rate")
    variants = {}
    for name, res in results.items():
        m = {k: float(res.metrics.get(k, float("nan"))) for k in keys}
        m["cost"] = m["fees"] + m["slippage"]
        variants[name] = m
    nb = variants.pop("overlay_scaled_no_band")
    variants["overlay_scaled"].update(turnover_no_band=nb["turnover"], cost_no_band=nb["cost"],
                                      sharpe_no_band=nb["sharpe"])
    rets = {n: results[n].returns.to_numpy() for n in VARIANTS}
    periods = float(results["primary"].metrics["periods_per_year"])
    ci = {n: block_bootstrap_diff(rets[n], rets["primary"], periods, spec.n_boot, block, spec.ci,
                                  spec.random_state) for n in VARIANTS[1:]}
    per_bar = np.array([float(results[n].metrics["sharpe_per_bar"]) for n in VARIANTS])
    var = float(per_bar.var(ddof=1)) if len(per_bar) > 1 else 0.0
    dsr = {}
    for n in VARIANTS:
        mt = results[n].metrics
        dsr[n] = float(deflated_sharpe(mt["sharpe_per_bar"], len(VARIANTS), var, max(int(mt["n_obs"]), 2),
                                       mt["skew"], mt["kurtosis"])) if mt["n_obs"] > 2 else float("nan")
    return variants, ci, dsr


def primary_record(ret: np.ndarray) -> tuple[float, float]:
    """The primary signal's out-of-sample hit rate and payoff (mean win / mean loss) over its events' barrier exits."""
    ret = ret[np.isfinite(ret)]
    if not len(ret):
        return float("nan"), float("nan")
    wins, losses = ret[ret > 0], ret[ret < 0]
    payoff = float(wins.mean() / -losses.mean()) if len(wins) and len(losses) else float("nan")
    return float(np.mean(ret > 0)), payoff


def verdict_of(brier_skill: float, ci: Mapping[str, list[float]], n_windows: int, floor: float) -> str:
    """One sentence: does the overlay show value out of sample (Brier skill > 0 and a CI lower bound above floor)?"""
    if n_windows == 0:
        return "no evidence: too few labelled events for one walk-forward window"
    good = [n for n, (lo, _hi) in ci.items() if np.isfinite(lo) and lo > floor]
    if np.isfinite(brier_skill) and brier_skill > 0 and good:
        return f"overlay adds value: Brier skill {brier_skill:+.3f}, {good[0]} Sharpe-difference CI above {floor:g}"
    hurts = [n for n, (_lo, hi) in ci.items() if np.isfinite(hi) and hi < 0]
    tail = f"; Sharpe lower with {', '.join(hurts)} (CI below 0)" if hurts else ""
    return f"no evidence the overlay adds value: Brier skill {brier_skill:+.3f} over {n_windows} windows{tail}"


def evaluate_walk_forward(ds: MetaDataset, panel: Mapping[str, pd.DataFrame], strategy: Any,
                          spec: EvalSpec | None = None, backtest_config: Any = None, micro: Any = None,
                          progress: Callable[[str], None] | None = None) -> Evaluation:
    """Replay the retraining schedule over `ds` (built with every candidate feature) and grade it out of sample."""
    from engine.config import BacktestConfig

    spec = spec or EvalSpec()
    say = progress or (lambda msg: None)
    config = backtest_config or BacktestConfig()
    symbols = sorted(panel)
    index = panel[symbols[0]].index
    step = int(np.median(np.diff(index.as_unit("ms").asi8[:1000]))) if len(index) > 1 else 3_600_000
    embargo_bars = required_embargo_bars(strategy, ds.spec, micro)
    embargo = pd.Timedelta(milliseconds=embargo_bars * step)
    t0, t1 = _rows(ds)
    windows_ms = schedule(int(index.as_unit("ms").asi8[0]), int(index.as_unit("ms").asi8[-1]), t0, t1, spec)
    rolling = None if spec.anchored else int(pd.Timedelta(spec.train_window or 4 * spec.retrain_every).value
                                             // 1_000_000)
    windows, rows_all, prob_all, base_all, thr_all = [], [], [], [], []
    for i, (w0, w1) in enumerate(windows_ms):
        train = np.flatnonzero((t1 < w0) & ((t0 >= w0 - rolling) if rolling else True))
        test = np.flatnonzero((t0 >= w0) & (t0 < w1))
        if len(test) == 0 or len(train) < spec.min_train_events:
            continue
        y, w = ds.y[train], ds.weight[train]
        feats, dropped = usable_features(ds.X.iloc[train])
        X = ds.X.iloc[train][feats]
        sel = select_model(X, y, w, ds.t1.iloc[train], embargo, embargo, spec.families, spec.calibrations,
                           spec.selection_folds, spec.random_state, n_jobs=2)  # 2 threads, same scores as 1
        model = PastCalibratedModel(sel.family, sel.calibration, spec.random_state).fit(X, y, w, ds.t1.iloc[train],
                                                                                        n_jobs=2)
        p = model.predict_proba(ds.X.iloc[test][feats])[:, 1]
        base = float(np.average(y, weights=w))
        g = grade(ds.y[test], p, base, base)
        g.update(window=i, start=str(pd.Timestamp(w0, unit="ms", tz="UTC")),
                 end=str(pd.Timestamp(w1, unit="ms", tz="UTC")), train_events=int(len(train)),
                 model=f"{sel.family}+{sel.calibration}", selection_folds=sel.folds, features=len(feats),
                 dropped_features=dropped)
        windows.append(g)
        say(f"window {len(windows)}/{len(windows_ms)} {g['start'][:10]}: {g['events']} events, "
            f"AUC {g['auc']:.3f}, Brier skill {g['brier_skill']:+.3f} ({g['model']})")
        rows_all.append(test)
        prob_all.append(p)
        base_all.append(np.full(len(test), base))
        thr_all.append(np.full(len(test), base))
    if not windows:
        return Evaluation([], {"events": 0}, [], {}, {}, {}, verdict_of(float("nan"), {}, 0, spec.sharpe_floor),
                          embargo_bars)
    rows, prob = np.concatenate(rows_all), np.concatenate(prob_all)
    base, thr = np.concatenate(base_all), np.concatenate(thr_all)
    y = ds.y[rows]
    overall = grade(y, prob, float(np.average(ds.y[np.flatnonzero(t1 < windows_ms[0][0])])), float(thr.mean()))
    ref = float(np.mean((y - base) ** 2))
    overall["brier_base_rate"] = ref  # each window's own training base rate, as the live model would have had
    overall["brier_skill"] = float(1.0 - overall["brier"] / ref) if ref > 0 else float("nan")
    overall["windows"] = len(windows)
    lo_ts, hi_ts = ds.events.index[rows].min(), ds.events.index[rows].max()
    oos_index = index[(index >= lo_ts) & (index <= hi_ts)]
    targets = _variant_targets(ds, rows, prob, base, thr, oos_index, symbols, spec.rebalance_band)
    variants, ci, dsr = _backtests(targets, panel, config, spec, max(ds.spec.max_holding, 1))
    hit, payoff = primary_record(ds.events["ret"].to_numpy()[rows])
    verdict = verdict_of(overall["brier_skill"], ci, len(windows), spec.sharpe_floor)
    return Evaluation(windows, overall, calibration_table(y, prob), variants, ci, dsr, verdict, embargo_bars,
                      hit, payoff, {"retrain_every_days": pd.Timedelta(spec.retrain_every).total_seconds() / 86400,
                                    "anchored": spec.anchored, "symbols": symbols, "ci_level": spec.ci})
