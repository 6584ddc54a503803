"""Scheduled re-optimisation: walk-forward on the latest stored bars of a champion instance; a configuration that beats
the champion out of sample (higher DSR, PBO below the maximum) starts as a paper challenger with its lineage, and
challengers that lose to their champion over `reopt.retire_after_days` of paper record are retired.

The comparison is like for like: the champion's stored parameters are run over the same out-of-sample segments the
walk-forward stitched, and both return series are deflated by the same trial family (N and V[SR] of the run), with the
one DSR (`engine.backtest.stats.deflated_sharpe_of_returns`). Every decision, started or not, is audited.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from sqlalchemy import insert, select, update

from engine.backtest.stats import DsrResult, deflated_sharpe_of_returns
from engine.clock import now_ms
from engine.config import Settings
from engine.store.db import Store
from engine.store.ops import audit, raise_alert
from engine.store.schema import strategy_instances
from engine.trading.deflation import record_dsr
from engine.trading.lifecycle import DAY_MS, RETIRED, Instance, get_instance, instance_record, list_instances

CHALLENGER = "challenger"


@dataclass(frozen=True)
class Decision:
    """The outcome of one re-optimisation: the candidate, both DSRs, the PBO, and the challenger started (if any)."""

    instance_id: str
    run_id: int | None
    candidate: dict[str, Any]
    candidate_dsr: DsrResult
    champion_dsr: DsrResult
    pbo: float
    reasons: tuple[str, ...]  # why no challenger was started (empty when one was)
    challenger_id: str | None = None

    def summary(self) -> dict[str, Any]:
        """A JSON-able record for the audit log and the job's result."""
        return {"instance_id": self.instance_id, "run_id": self.run_id, "candidate_dsr": _num(self.candidate_dsr.dsr), "champion_dsr": _num(self.champion_dsr.dsr),
                "candidate": self.candidate, "candidate_dsr_detail": self.candidate_dsr.describe(),
                "champion_dsr_detail": self.champion_dsr.describe(), "pbo": _num(self.pbo),
                "challenger_id": self.challenger_id, "reasons": list(self.reasons)}


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    """numpy scalars from the search as plain Python values, so stored params load back with their types."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()}


def challengers_of(store: Store, champion_id: str, running_only: bool = True) -> list[Instance]:
    """The challenger instances racing one champion (running or paused unless `running_only` is False)."""
    return [i for i in list_instances(store) if i.role == CHALLENGER and i.parent_id == champion_id
            and (not running_only or i.status != RETIRED)]


def _beats(candidate: DsrResult, champion: DsrResult, margin: float) -> bool:
    if not candidate.defined:
        return False
    # equal returns give equal DSRs up to rounding (stitched equity vs raw returns): that is not a win
    return (not champion.defined) or candidate.dsr > champion.dsr + max(margin, 1e-9)


def reoptimize_instance(store: Store, settings: Settings, instance_id: str, exchange: str,
                        until_ms: int) -> Decision:
    """Walk-forward the champion's strategy on its latest stored bars and start a paper challenger when it wins."""
    from engine.backtest.walkforward import _evaluate, run_walkforward
    from engine.clock import timeframe_ms
    from engine.features.panel import load_panel
    from engine.strategy.registry import strategy_class

    cfg = settings.reopt
    champ = get_instance(store, instance_id)
    if champ.role != "champion":
        raise ValueError(f"reopt {instance_id}: only a champion is re-optimised, this instance is a {champ.role}")
    step = timeframe_ms(champ.timeframe)
    until = until_ms - until_ms % step
    since = until - int(cfg.lookback_days * DAY_MS)
    panel = {s: f for s, f in load_panel(store, exchange, list(champ.symbols), champ.timeframe, since, until - 1,
                                         feeds=True).items() if len(f)}
    if not panel:
        raise ValueError(f"reopt {instance_id}: no stored {champ.timeframe} bars for {', '.join(champ.symbols)} in "
                         f"the last {cfg.lookback_days:g} days; pull data first (`quantdesk data pull`)")
    cls = strategy_class(champ.strategy)
    fixed = {k: v for k, v in champ.params.items() if k not in cls.param_space()}  # the operator's fixed choices
    result = run_walkforward(cls, panel, settings.backtest, n_trials=cfg.n_trials, n_windows=cfg.n_windows,
                             fixed_params=fixed or None, search=cfg.search, selection=cfg.selection,
                             seed=int(until // step) % (2 ** 31), store=store, backend="sequential", n_jobs=1,
                             timeframe=champ.timeframe, pbo_splits=cfg.pbo_splits)
    n_trials = int(result.metrics["n_trials"])
    var = float(result.metrics["trial_sharpe_variance"])
    eq = result.oos_equity.to_numpy("float64")
    cand_dsr = deflated_sharpe_of_returns(eq[1:] / eq[:-1] - 1.0, max(n_trials, 1), var)
    champ_parts = [_evaluate(cls, [(0, champ.params)], panel, w, settings.backtest, None, None, step)[0][3]
                   for w in result.windows]
    champ_dsr = deflated_sharpe_of_returns(np.concatenate(champ_parts), max(n_trials, 1), var)
    candidate = {**fixed, **_plain(result.table.iloc[-1]["best_params"])}  # what walk-forward would deploy now: the last window's
    pbo = float(result.pbo.get("pbo", float("nan")))
    reasons = []
    if not _beats(cand_dsr, champ_dsr, cfg.min_dsr_margin):
        reasons.append(f"candidate {cand_dsr.describe()} does not beat champion {champ_dsr.describe()} "
                       f"(margin {cfg.min_dsr_margin:g})")
    if cand_dsr.defined and cand_dsr.dsr < cfg.min_candidate_dsr:
        reasons.append(f"candidate {cand_dsr.describe()} is below reopt.min_candidate_dsr {cfg.min_candidate_dsr:g}")
    if not (math.isfinite(pbo) and pbo <= cfg.max_pbo):
        reasons.append(f"PBO {pbo:.3f} is above reopt.max_pbo {cfg.max_pbo:g}")
    running = challengers_of(store, champ.id)
    if candidate == _plain(champ.params) or any(c.params == candidate for c in running):
        reasons.append("candidate parameters are already running (champion or challenger)")
    if len(running) >= cfg.max_challengers:
        reasons.append(f"{len(running)} challengers already running (reopt.max_challengers {cfg.max_challengers})")
    decision = Decision(champ.id, result.run_id, candidate, cand_dsr, champ_dsr, pbo, tuple(reasons))
    if reasons:
        audit(store, "engine", "strategy.reopt", {**decision.summary(), "started": False}, user="engine")
        return decision
    decision = Decision(champ.id, result.run_id, candidate, cand_dsr, champ_dsr, pbo, (),
                        _start_challenger(store, settings, champ, candidate, result.run_id, decision))
    return decision


def _start_challenger(store: Store, settings: Settings, champ: Instance, params: dict[str, Any],
                      run_id: int | None, decision: Decision) -> str:
    """Insert the paper challenger with its lineage, audited in the same transaction, then alert."""
    now = now_ms()
    challenger_id = f"{champ.id}~c{run_id if run_id is not None else now}"
    with store.begin() as conn:
        conn.execute(insert(strategy_instances).values(
            id=challenger_id, strategy=champ.strategy, stage="paper", status="running",
            capital=champ.capital * settings.reopt.challenger_capital_fraction, symbols=json.dumps(list(champ.symbols)),
            timeframe=champ.timeframe, params=json.dumps(params), created_at=now, stage_changed_at=now,
            updated_at=now, role=CHALLENGER, parent_id=champ.id, origin_run_id=run_id, engine=champ.engine))
        audit(conn, "engine", "strategy.reopt", {**decision.summary(), "started": True,
                                                 "challenger_id": challenger_id}, user="engine")
        audit(conn, "engine", "strategy.challenger.start",
              {"instance_id": challenger_id, "parent_id": champ.id, "origin_run_id": run_id, "params": params,
               "stage": "paper"}, user="engine")
    raise_alert(store, "info", "reopt.challenger",
                f"{challenger_id}: paper challenger of {champ.id} from walk-forward run {run_id} "
                f"(DSR {decision.candidate_dsr.dsr:.3f} vs champion {_num(decision.champion_dsr.dsr)}, "
                f"PBO {decision.pbo:.3f})",
                {"instance_id": challenger_id, "parent_id": champ.id, "run_id": run_id, "params": params})
    return challenger_id


def _record(store: Store, inst: Instance, since: int) -> DsrResult:
    with store.connect() as conn:
        rec = instance_record(conn, inst.id, since)
        return record_dsr(conn, inst.id, inst.strategy, inst.params, since, rec["returns"]).result


def retire_losers(store: Store, settings: Settings, champion_id: str, now: int | None = None) -> list[str]:
    """Retire each challenger of a champion, older than reopt.retire_after_days, whose paper-record DSR since its
    start is undefined or below its champion's over the same span; audited and alerted."""
    now = now_ms() if now is None else now
    due_after = int(settings.reopt.retire_after_days * DAY_MS)
    champ = get_instance(store, champion_id)
    retired = []
    for ch in challengers_of(store, champion_id):
        if now - ch.created_at < due_after:
            continue
        mine, theirs = _record(store, ch, ch.created_at), _record(store, champ, ch.created_at)
        if mine.defined and (not theirs.defined or mine.dsr >= theirs.dsr):
            continue
        with store.begin() as conn:
            conn.execute(update(strategy_instances).where(strategy_instances.c.id == ch.id)
                         .values(status=RETIRED, updated_at=now_ms()))
            audit(conn, "engine", "strategy.challenger.retire",
                  {"instance_id": ch.id, "parent_id": champ.id, "origin_run_id": ch.origin_run_id,
                   "challenger_dsr": _num(mine.dsr), "champion_dsr": _num(theirs.dsr),
                   "challenger_detail": mine.describe(), "champion_detail": theirs.describe(),
                   "age_days": round((now - ch.created_at) / DAY_MS, 3)}, user="engine")
        raise_alert(store, "info", "reopt.retire", f"{ch.id} retired: challenger {mine.describe()} vs champion "
                    f"{champ.id} {theirs.describe()}", {"instance_id": ch.id, "parent_id": champ.id})
        retired.append(ch.id)
    return retired


def running_challengers(store: Store) -> list[Instance]:
    """Every challenger that still trades (not retired), for the engine's tick jobs (an engine's own only)."""
    from engine.store.engines import scoped

    with store.connect() as conn:
        ids = [r[0] for r in conn.execute(scoped(select(strategy_instances.c.id).where(
            strategy_instances.c.role == CHALLENGER, strategy_instances.c.status != RETIRED),
            strategy_instances.c.id))]
    return [get_instance(store, i) for i in ids]
