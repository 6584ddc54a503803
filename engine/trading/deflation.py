"""The deflated Sharpe ratio of a paper or live record, for the promotion gates and the leaderboard.

It is `engine.backtest.stats.deflated_sharpe_of_returns` (the one DSR implementation) applied to the record's
per-snapshot returns. The trial family is the one its configuration was selected from: the research dataset(s) on
which this strategy was tried with the instance's parameters (the largest such family, the most conservative N);
trials whose lookahead check FAILED are never counted. The across-trial Sharpe variance is per research bar and is
rescaled to the record's observation interval (a per-bar Sharpe scales with the square root of the interval). With
no matching research trial, N = 1 (no selection is known) and the description says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine.backtest.stats import DsrResult, deflated_sharpe_of_returns
from engine.clock import timeframe_ms
from engine.store.schema import backtest_runs, equity_snapshots, trials

_SELECTION = ("full", "in_sample")


@dataclass(frozen=True)
class RecordDsr:
    """A record's DSR and where its N and V[SR] came from."""

    result: DsrResult
    family: str  # e.g. "dataset 1a2b3c4d5e6f (N=12, 1h bars)" or "no research trial of these parameters"

    def describe(self) -> str:
        """The DSR line with the family it was deflated against."""
        return f"{self.result.describe()}; family: {self.family}"


def _matches(trial_params: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return all(k in trial_params and trial_params[k] == v for k, v in wanted.items())


def selection_family(conn: Connection, strategy: str, params: Mapping[str, Any]) -> tuple[int, float, int | None, str]:
    """(N, per-bar V[SR], bar ms, description) of the largest family holding this strategy with these parameters."""
    ok = (trials.c.lookahead_ok.is_(None)) | (trials.c.lookahead_ok == 1)
    rows = conn.execute(select(trials.c.dataset_hash, trials.c.params).where(
        trials.c.strategy == strategy, trials.c.phase.in_(_SELECTION), ok)).all()
    hashes = sorted({h for h, p in rows if _matches(json.loads(p or "{}"), params)})
    best: tuple[int, float, str] | None = None
    for h in hashes:
        sharpes = [r[0] for r in conn.execute(select(trials.c.sharpe).where(
            trials.c.dataset_hash == h, trials.c.phase.in_(_SELECTION), ok, trials.c.sharpe.is_not(None))).all()]
        var = float(np.var(sharpes, ddof=1)) if len(sharpes) >= 2 else 0.0
        if best is None or len(sharpes) > best[0]:
            best = (len(sharpes), var, h)
    if best is None:
        return 1, 0.0, None, "no research trial of these parameters in the registry (N=1)"
    n, var, h = best
    tf = conn.execute(select(backtest_runs.c.timeframe).where(backtest_runs.c.dataset_hash == h)).scalar()
    bar_ms = timeframe_ms(tf) if tf else None
    return max(n, 1), var, bar_ms, f"dataset {h[:12]} (N={n:,}{', ' + tf + ' bars' if tf else ''})"


def observation_ms(ts: Sequence[int]) -> int | None:
    """The median spacing of a record's snapshots, in ms (None with fewer than two)."""
    if len(ts) < 2:
        return None
    return int(np.median(np.diff(np.asarray(ts, dtype="int64"))))


def record_dsr(conn: Connection, instance_id: str, strategy: str, params: Mapping[str, Any], since: int,
               returns: Sequence[float]) -> RecordDsr:
    """The DSR of an instance's record since `since`, deflated by the trial family its parameters came from."""
    n, var_bar, bar_ms, family = selection_family(conn, strategy, params)
    ts = [int(r[0]) for r in conn.execute(select(equity_snapshots.c.ts).where(
        equity_snapshots.c.scope == instance_id, equity_snapshots.c.ts >= since).order_by(equity_snapshots.c.ts))]
    obs_ms = observation_ms(ts)
    var = var_bar * (obs_ms / bar_ms) if (bar_ms and obs_ms) else var_bar
    if var_bar and not (bar_ms and obs_ms):
        family += "; V[SR] not rescaled (interval unknown)"
    return RecordDsr(deflated_sharpe_of_returns(returns, n, var), family)
