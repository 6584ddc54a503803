"""The trial registry in state.db: every backtest ever run on a dataset, so the DSR deflates by the true trial count.

A trial is one evaluated parameter set: a full backtest (`full`) or one in-sample evaluation in a walk-forward window
(`in_sample`). Out-of-sample evaluations of already-selected parameters (`out_of_sample`) are stored too, but they are
not selection trials and are not counted.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from engine.backtest.stats import sample_moments
from engine.clock import now_ms
from engine.store.db import Store

PHASES = ("full", "in_sample", "out_of_sample")
SELECTION_PHASES = ("full", "in_sample")


def dataset_hash(panel: Mapping[str, pd.DataFrame], timeframe: str = "", extra: str = "") -> str:
    """sha256 over symbols, timeframe, bar timestamps and OHLCV values: the identity trials are counted against."""
    h = hashlib.sha256()
    h.update(f"{timeframe}|{extra}".encode())
    for sym in sorted(panel):
        frame = panel[sym]
        h.update(sym.encode())
        h.update(np.ascontiguousarray(frame.index.asi8).tobytes())
        for col in ("open", "high", "low", "close", "volume"):
            h.update(np.ascontiguousarray(frame[col].to_numpy(dtype="float64", na_value=np.nan)).tobytes())
    return h.hexdigest()


def _json(obj: Any) -> str:
    """JSON with NaN/inf turned into null and numpy scalars into Python numbers."""
    def clean(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v
    return json.dumps(clean(obj), sort_keys=True, default=str)


@dataclass(frozen=True)
class TrialRow:
    """What one trial contributes: its parameter set and per-bar return statistics."""

    params: dict
    sharpe: float
    n_obs: int
    skew: float
    kurt: float
    metrics: dict


def trial_row(params: Mapping[str, Any], returns: Sequence[float] | np.ndarray | pd.Series,
              metrics: Mapping[str, Any] | None = None) -> TrialRow:
    """Summarise a trial's per-bar returns (Sharpe per bar, skew, kurtosis) for the registry."""
    r = np.asarray(returns, dtype="float64")
    r = r[np.isfinite(r)]
    mean, std, skew, kurt = sample_moments(r)
    return TrialRow(dict(params), mean / std if std > 0 else 0.0, int(r.size), skew, kurt, dict(metrics or {}))


def record_trials(store: Store, dataset_hash: str, strategy: str, rows: Iterable[TrialRow], phase: str,
                  window: int | None = None, run_id: int | None = None) -> int:
    """Insert many trials in one transaction; returns how many were written."""
    if phase not in PHASES:
        raise ValueError(f"phase: must be one of {', '.join(PHASES)}, got {phase!r}")
    if not dataset_hash:
        raise ValueError("dataset_hash: must not be empty")
    ts = now_ms()
    payload = [(ts, dataset_hash, strategy, _json(r.params), phase, window, float(r.sharpe), r.n_obs,
                float(r.skew), float(r.kurt), _json(r.metrics), run_id) for r in rows]
    if not payload:
        return 0
    sql = ("INSERT INTO trials (created_at, dataset_hash, strategy, params, phase, window, sharpe, n_obs, skew, "
           "kurtosis, metrics, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    if not store.is_sqlite:
        sql = sql.replace("?", "%s")
    store.executemany(sql, payload)
    return len(payload)


def record_trial(store: Store, dataset_hash: str, strategy: str, params: Mapping[str, Any],
                 returns: Sequence[float] | np.ndarray | pd.Series, phase: str = "full", window: int | None = None,
                 run_id: int | None = None, metrics: Mapping[str, Any] | None = None) -> TrialRow:
    """Record one trial (a parameter set evaluated on a dataset) from its per-bar returns; returns its summary."""
    row = trial_row(params, returns, metrics)
    record_trials(store, dataset_hash, strategy, [row], phase, window, run_id)
    return row


def count_trials(store: Store, dataset_hash: str) -> int:
    """Number of selection trials (full backtests and in-sample evaluations) ever run on this dataset."""
    with store.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT COUNT(*) FROM trials WHERE dataset_hash = ? AND phase IN ('full', 'in_sample')"
            if store.is_sqlite else
            "SELECT COUNT(*) FROM trials WHERE dataset_hash = %s AND phase IN ('full', 'in_sample')",
            (dataset_hash,)).fetchone()
    return int(row[0])


def trial_sharpe_variance(store: Store, dataset_hash: str) -> float:
    """Variance (ddof=1) of per-bar Sharpe ratios across this dataset's selection trials; 0 with fewer than two."""
    q = "SELECT sharpe FROM trials WHERE dataset_hash = ? AND phase IN ('full', 'in_sample') AND sharpe IS NOT NULL"
    with store.connect() as conn:
        rows = conn.exec_driver_sql(q if store.is_sqlite else q.replace("?", "%s"), (dataset_hash,)).fetchall()
    values = np.array([r[0] for r in rows], dtype="float64")
    return float(values.var(ddof=1)) if values.size >= 2 else 0.0


def record_run(store: Store, *, kind: str, strategy: str, params: Mapping[str, Any], symbols: Sequence[str],
               timeframe: str, start_ts: int, end_ts: int, dataset_hash: str, metrics: Mapping[str, Any],
               lookahead: Mapping[str, Any] | None, report_path: str | None = None) -> int:
    """Insert a backtest_runs row (one backtest or walk-forward) and return its id."""
    if kind not in ("backtest", "walkforward"):
        raise ValueError(f"kind: must be backtest or walkforward, got {kind!r}")
    la_ok = None if lookahead is None else int(bool(lookahead.get("ok")))
    values = (now_ms(), kind, strategy, _json(params), _json(list(symbols)), timeframe, int(start_ts), int(end_ts),
              dataset_hash, _json(metrics), _finite(metrics.get("sharpe")), _finite(metrics.get("dsr")),
              metrics.get("n_trials"), la_ok, None if lookahead is None else _json(lookahead), report_path)
    sql = ("INSERT INTO backtest_runs (created_at, kind, strategy, params, symbols, timeframe, start_ts, end_ts, "
           "dataset_hash, metrics, sharpe, dsr, n_trials, lookahead_ok, lookahead, report_path) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    with store.begin() as conn:
        cur = conn.exec_driver_sql(sql if store.is_sqlite else sql.replace("?", "%s"), values)
        return int(cur.lastrowid)


def set_report_path(store: Store, run_id: int, path: str) -> None:
    """Attach the written tearsheet's path to a backtest run."""
    with store.begin() as conn:
        conn.exec_driver_sql("UPDATE backtest_runs SET report_path = ? WHERE id = ?" if store.is_sqlite else
                             "UPDATE backtest_runs SET report_path = %s WHERE id = %s", (path, run_id))


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None
