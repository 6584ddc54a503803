"""The trial registry in state.db: every configuration ever tried on a dataset, so the DSR deflates by the true N.

A trial is one evaluated configuration: a full backtest (`full`) or one in-sample evaluation in a walk-forward window
(`in_sample`). Out-of-sample evaluations of already-selected parameters (`out_of_sample`) are stored too, but they are
not selection trials and are not counted.

Identity is by content: `trial_key` hashes the strategy, its parameters, the dataset hash, the cost model (costs,
fill model, sizer, barriers), the code version (the strategy's source and the quantdesk version), the phase and the
window. Re-running an identical backtest reuses its trial, so N and the DSR do not move.

Families: by default a trial counts against every distinct configuration ever tried on its dataset (all strategies:
the honest N). `family=NAME` (`--trial-family`) names a research question explicitly; N is then the distinct
configurations recorded under that name, on any dataset. Trials whose lookahead check FAILED are kept, marked
(`lookahead_ok = 0`), and never counted, never used for the Sharpe variance, gates or leaderboards.
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


def code_version(strategy: Any) -> str:
    """sha256 (16 hex) of the strategy's source file and the installed quantdesk version: a code change is a new trial."""
    import inspect
    from importlib import metadata

    cls = strategy if isinstance(strategy, type) else type(strategy)
    h = hashlib.sha256()
    try:
        h.update(metadata.version("quantdesk").encode())
    except metadata.PackageNotFoundError:
        h.update(b"quantdesk-unversioned")
    try:
        h.update(inspect.getsource(inspect.getmodule(cls) or cls).encode())
    except (OSError, TypeError):
        h.update(f"{cls.__module__}.{cls.__qualname__}".encode())
    return h.hexdigest()[:16]


def callable_identity(fn: Any) -> str:
    """A sizer's identity: its qualified name and the plain values it closes over (fraction, target vol, span)."""
    if fn is None:
        return "default"
    cells = []
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            v = cell.cell_contents
        except ValueError:
            continue
        if v is None or isinstance(v, (bool, int, float, str)):
            cells.append(repr(v))
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__name__)}({','.join(cells)})"


def cost_model(config: Any, sizer: Any = None, barriers: Any = None) -> dict:
    """The parts of a backtest configuration that change its result: costs, fill model, capital, sizer, barriers."""
    import dataclasses

    costs = {k: v for k, v in dataclasses.asdict(config).items() if k != "reports_dir"}
    costs["sizer"] = callable_identity(sizer)
    costs["barriers"] = None if barriers is None else dataclasses.asdict(barriers)
    return costs


def trial_key(strategy: str, params: Mapping[str, Any], dataset_hash: str, costs: Mapping[str, Any],
              code: str, phase: str = "full", window: int | None = None) -> str:
    """sha256 of a trial's content: the same configuration on the same data is the same trial."""
    return hashlib.sha256(_json({"strategy": strategy, "params": params, "dataset": dataset_hash, "costs": costs,
                                 "code": code, "phase": phase, "window": window}).encode()).hexdigest()


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


@dataclass(frozen=True)
class TrialIdentity:
    """What makes trials the same configuration, besides parameters, phase and window."""

    costs: dict
    code: str
    family: str | None = None


def _q(store: Store, sql: str) -> str:
    return sql if store.is_sqlite else sql.replace("?", "%s")


def record_trials(store: Store, dataset_hash: str, strategy: str, rows: Iterable[TrialRow], phase: str,
                  window: int | None = None, run_id: int | None = None, identity: TrialIdentity | None = None,
                  lookahead_ok: bool | None = None) -> int:
    """Insert trials in one transaction, reusing any with the same content key; returns how many were new."""
    if phase not in PHASES:
        raise ValueError(f"phase: must be one of {', '.join(PHASES)}, got {phase!r}")
    if not dataset_hash:
        raise ValueError("dataset_hash: must not be empty")
    ts = now_ms()
    la = None if lookahead_ok is None else int(bool(lookahead_ok))
    payload = []
    for r in rows:
        key = None if identity is None else trial_key(strategy, r.params, dataset_hash, identity.costs,
                                                       identity.code, phase, window)
        payload.append((ts, dataset_hash, strategy, _json(r.params), phase, window, float(r.sharpe), r.n_obs,
                        float(r.skew), float(r.kurt), _json(r.metrics), run_id, key,
                        None if identity is None else identity.family, la))
    if not payload:
        return 0
    insert = _q(store, "INSERT INTO trials (created_at, dataset_hash, strategy, params, phase, \"window\", sharpe, "
                       "n_obs, skew, kurtosis, metrics, run_id, trial_key, family, lookahead_ok) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (trial_key) DO NOTHING")
    new = 0
    with store.begin() as conn:
        for values in payload:
            new += max(int(conn.exec_driver_sql(insert, values).rowcount or 0), 0)
            key = values[12]
            if key is None:
                continue
            if identity is not None and identity.family:
                conn.exec_driver_sql(_q(store, "UPDATE trials SET family = ? WHERE trial_key = ? AND family IS NULL"),
                                     (identity.family, key))
            if la is not None:  # a failed check marks the trial for good; a pass fills in an unchecked one
                conn.exec_driver_sql(_q(store, "UPDATE trials SET lookahead_ok = ? WHERE trial_key = ? AND "
                                               "(lookahead_ok IS NULL OR lookahead_ok > ?)"), (la, key, la))
    return new


def record_trial(store: Store, dataset_hash: str, strategy: str, params: Mapping[str, Any],
                 returns: Sequence[float] | np.ndarray | pd.Series, phase: str = "full", window: int | None = None,
                 run_id: int | None = None, metrics: Mapping[str, Any] | None = None,
                 identity: TrialIdentity | None = None, lookahead_ok: bool | None = None) -> TrialRow:
    """Record one trial (a configuration evaluated on a dataset) from its per-bar returns; returns its summary."""
    row = trial_row(params, returns, metrics)
    record_trials(store, dataset_hash, strategy, [row], phase, window, run_id, identity, lookahead_ok)
    return row


_SELECTED = "phase IN ('full', 'in_sample') AND (lookahead_ok IS NULL OR lookahead_ok = 1)"


def _scope(dataset_hash: str, family: str | None) -> tuple[str, tuple]:
    """WHERE clause of a trial family: the named family, or every trial on the dataset."""
    if family:
        return f"family = ? AND {_SELECTED}", (family,)
    return f"dataset_hash = ? AND {_SELECTED}", (dataset_hash,)


def trial_counts(store: Store, dataset_hash: str, family: str | None = None) -> dict[str, int]:
    """Distinct configurations per strategy in the family (default: all trials on the dataset), failed ones excluded."""
    where, args = _scope(dataset_hash, family)
    with store.connect() as conn:
        rows = conn.exec_driver_sql(_q(store, f"SELECT strategy, COUNT(*) FROM trials WHERE {where} "
                                              "GROUP BY strategy ORDER BY strategy"), args).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def count_trials(store: Store, dataset_hash: str, family: str | None = None) -> int:
    """N: distinct selection configurations in the family (default: ever run on this dataset), failed ones excluded."""
    return sum(trial_counts(store, dataset_hash, family).values())


def trial_sharpe_variance(store: Store, dataset_hash: str, family: str | None = None) -> float:
    """Variance (ddof=1) of per-bar Sharpe ratios across the family's selection trials; 0 with fewer than two."""
    where, args = _scope(dataset_hash, family)
    with store.connect() as conn:
        rows = conn.exec_driver_sql(_q(store, f"SELECT sharpe FROM trials WHERE {where} AND sharpe IS NOT NULL"),
                                    args).fetchall()
    values = np.array([r[0] for r in rows], dtype="float64")
    return float(values.var(ddof=1)) if values.size >= 2 else 0.0


def record_run(store: Store, *, kind: str, strategy: str, params: Mapping[str, Any], symbols: Sequence[str],
               timeframe: str, start_ts: int, end_ts: int, dataset_hash: str, metrics: Mapping[str, Any],
               lookahead: Mapping[str, Any] | None, report_path: str | None = None) -> int:
    """Insert a backtest_runs row (one backtest or walk-forward) and return its id."""
    if kind not in ("backtest", "walkforward"):
        raise ValueError(f"kind: must be backtest or walkforward, got {kind!r}")
    la_ok = None if lookahead is None else int(bool(lookahead.get("ok")))
    dsr = None if la_ok == 0 else _finite(metrics.get("dsr"))  # a FAILED lookahead run has no DSR to rank by
    values = (now_ms(), kind, strategy, _json(params), _json(list(symbols)), timeframe, int(start_ts), int(end_ts),
              dataset_hash, _json(metrics), _finite(metrics.get("sharpe")), dsr,
              metrics.get("n_trials"), la_ok, None if lookahead is None else _json(lookahead), report_path)
    sql = ("INSERT INTO backtest_runs (created_at, kind, strategy, params, symbols, timeframe, start_ts, end_ts, "
           "dataset_hash, metrics, sharpe, dsr, n_trials, lookahead_ok, lookahead, report_path) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    with store.begin() as conn:
        if store.is_sqlite:
            return int(conn.exec_driver_sql(sql, values).lastrowid)
        return int(conn.exec_driver_sql(sql.replace("?", "%s") + " RETURNING id", values).scalar_one())  # no lastrowid


def set_report_path(store: Store, run_id: int, path: str) -> None:
    """Attach the written tearsheet's path to a backtest run."""
    with store.begin() as conn:
        conn.exec_driver_sql("UPDATE backtest_runs SET report_path = ? WHERE id = ?" if store.is_sqlite else
                             "UPDATE backtest_runs SET report_path = %s WHERE id = %s", (path, run_id))


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None
