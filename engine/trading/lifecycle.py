"""Strategy lifecycle: research -> paper -> live-small -> live, with promotion gates from config and auto-demotion.

Instances live in the `strategy_instances` table (seeded from `[strategies.*]` config, never overwritten afterwards,
so an operator's promotion survives restarts). Each instance trades its own capital allocation; live-small uses
`lifecycle.live_small_fraction` of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from engine.clock import now_ms
from engine.config import LifecycleConfig, Settings
from engine.store.db import Store
from engine.store.ops import audit, raise_alert
from engine.store.schema import equity_snapshots, fills, strategy_instances, twin_trades

STAGES = ("research", "paper", "live-small", "live")
STATUSES = ("running", "paused")  # an operator's choices; "retired" is set only by re-optimisation
RETIRED = "retired"
DAY_MS = 86_400_000


class LifecycleError(ValueError):
    """A lifecycle operation that is not allowed (unknown instance, wrong stage, gate not met)."""


@dataclass(frozen=True)
class Instance:
    """One strategy instance as stored."""

    id: str
    strategy: str
    stage: str
    status: str
    capital: float
    symbols: tuple[str, ...]
    timeframe: str
    params: dict[str, Any]
    stage_changed_at: int
    role: str = "champion"  # champion (configured) | challenger (started by re-optimisation)
    parent_id: str | None = None  # a challenger's champion
    origin_run_id: int | None = None  # the walk-forward run (backtest_runs.id) that produced a challenger
    created_at: int = 0
    engine: str = "main"  # the engine of the desk that declared it and trades it

    def effective_capital(self, cfg: LifecycleConfig) -> float:
        """Capital this instance may deploy at its stage (live-small trades a fraction)."""
        return self.capital * (cfg.live_small_fraction if self.stage == "live-small" else 1.0)


@dataclass(frozen=True)
class GateCheck:
    """One promotion criterion with its measured value and threshold."""

    name: str
    ok: bool
    value: float | None
    threshold: float | str


@dataclass(frozen=True)
class GateReport:
    """Whether an instance may be promoted, and why."""

    instance_id: str
    from_stage: str
    to_stage: str
    checks: tuple[GateCheck, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    def summary(self) -> str:
        """One line naming every failed check (or 'all gates pass')."""
        failed = [f"{c.name}={c.value if c.value is None else round(c.value, 4)} (needs {c.threshold})"
                  for c in self.checks if not c.ok]
        return "all gates pass" if not failed else "gate not met: " + "; ".join(failed)


def _row_to_instance(row: Mapping[str, Any]) -> Instance:
    return Instance(id=row["id"], strategy=row["strategy"], stage=row["stage"], status=row["status"],
                    capital=float(row["capital"]), symbols=tuple(json.loads(row["symbols"])),
                    timeframe=row["timeframe"], params=json.loads(row["params"] or "{}"),
                    stage_changed_at=int(row["stage_changed_at"]), role=row.get("role") or "champion",
                    parent_id=row.get("parent_id"),
                    origin_run_id=None if row.get("origin_run_id") is None else int(row["origin_run_id"]),
                    created_at=int(row.get("created_at") or 0), engine=row.get("engine") or "main")


SEED_STAGE_MAX = "paper"  # config may declare an instance, never place it past paper


def seed_stage(configured: str) -> str:
    """The stage a configured instance starts at: its configured stage, but never past paper (only a promotion with
    a passing gate report and an operator's confirmation reaches live-small or live)."""
    return configured if STAGES.index(configured) <= STAGES.index(SEED_STAGE_MAX) else SEED_STAGE_MAX


def sync_instances(store: Store, settings: Settings) -> list[Instance]:
    """Insert configured instances missing from state.db (stored stage/status win, a configured stage past paper
    is seeded at paper, with an alert and an audit entry); return enabled instances."""
    from engine.config import ConfigError

    now = now_ms()
    clamped = []
    name = settings.engine.name
    with store.begin() as conn:
        owners = {r[0]: r[1] for r in conn.execute(select(strategy_instances.c.id, strategy_instances.c.engine))}
        existing = set(owners)
        taken = [f"strategies.{i}: instance {i!r} belongs to engine {owners[i]!r} on this desk; engine {name!r} "
                 "cannot trade it (declare it in one engine's config only, or give this one another id)"
                 for i in settings.strategies if i in owners and owners[i] != name]
        if taken:  # one engine per instance: two would trade one ledger
            raise ConfigError("\n".join(taken), taken)
        for inst_id, cfg in settings.strategies.items():
            if inst_id in existing:
                conn.execute(update(strategy_instances).where(strategy_instances.c.id == inst_id).values(
                    capital=cfg.capital, symbols=json.dumps(list(cfg.symbols)), timeframe=cfg.timeframe,
                    params=json.dumps(cfg.params, default=str), updated_at=now))
                continue
            stage = seed_stage(cfg.stage)
            conn.execute(insert(strategy_instances).values(
                id=inst_id, strategy=cfg.strategy or inst_id, stage=stage, status="running", capital=cfg.capital,
                symbols=json.dumps(list(cfg.symbols)), timeframe=cfg.timeframe,
                params=json.dumps(cfg.params, default=str), created_at=now, stage_changed_at=now, updated_at=now,
                engine=name))
            audit(conn, "engine", "strategy.seed", {"instance_id": inst_id, "configured_stage": cfg.stage,
                                                    "stage": stage, "engine": name}, user="engine")
            if stage != cfg.stage:
                clamped.append((inst_id, cfg.stage))
    for inst_id, configured in clamped:
        raise_alert(store, "warning", "lifecycle.seed_clamped", f"{inst_id}: config says stage {configured}, seeded at "
                    f"{SEED_STAGE_MAX}; live-small and live are reached only by `quantdesk strategy promote {inst_id} "
                    "--confirm` with a passing gate report", {"instance_id": inst_id, "configured": configured})
    enabled = {k for k, v in settings.strategies.items() if v.enabled}
    return [i for i in list_instances(store) if i.id in enabled]


def list_instances(store: Store) -> list[Instance]:
    """Every stored instance, by id (in an engine process: the instances that engine owns, engine/store/engines.py)."""
    from engine.store.engines import scoped

    with store.connect() as conn:
        rows = conn.execute(scoped(select(strategy_instances), strategy_instances.c.id)
                            .order_by(strategy_instances.c.id)).mappings().all()
    return [_row_to_instance(r) for r in rows]


def get_instance(store: Store | Connection, instance_id: str) -> Instance:
    """One instance; LifecycleError naming the id when it does not exist."""
    stmt = select(strategy_instances).where(strategy_instances.c.id == instance_id)
    if isinstance(store, Connection):
        row = store.execute(stmt).mappings().first()
    else:
        with store.connect() as conn:
            row = conn.execute(stmt).mappings().first()
    if row is None:
        raise LifecycleError(f"strategy instance {instance_id!r} does not exist")
    return _row_to_instance(row)


def set_status(store: Store, instance_id: str, status: str, source: str, user: str) -> Instance:
    """Pause or resume an instance, audited."""
    if status not in STATUSES:
        raise LifecycleError(f"status: must be one of {STATUSES}, got {status!r}")
    with store.begin() as conn:
        inst = get_instance(conn, instance_id)
        if inst.status == RETIRED:
            raise LifecycleError(f"strategy instance {instance_id!r} is a retired challenger; it cannot be paused or "
                                 "resumed (the next re-optimisation may start a new one)")
        conn.execute(update(strategy_instances).where(strategy_instances.c.id == instance_id)
                     .values(status=status, updated_at=now_ms()))
        audit(conn, source, f"strategy.{'pause' if status == 'paused' else 'resume'}",
              {"instance_id": instance_id, "from": inst.status, "to": status}, user=user)
    return get_instance(store, instance_id)


def instance_record(conn: Connection, instance_id: str, since: int) -> dict[str, Any]:
    """Equity returns, trade count, span and drift of an instance's record since a timestamp."""
    eq = [float(r.equity) for r in conn.execute(select(equity_snapshots.c.equity).where(
        equity_snapshots.c.scope == instance_id, equity_snapshots.c.ts >= since).order_by(equity_snapshots.c.ts))]
    span = conn.execute(select(func.min(equity_snapshots.c.ts), func.max(equity_snapshots.c.ts)).where(
        equity_snapshots.c.scope == instance_id, equity_snapshots.c.ts >= since)).first()
    n_fills = conn.execute(select(func.count()).select_from(fills).where(
        fills.c.instance_id == instance_id, fills.c.ts >= since)).scalar() or 0
    drift = conn.execute(select(func.avg(func.abs(twin_trades.c.drift_bps)), func.count()).where(
        twin_trades.c.instance_id == instance_id, twin_trades.c.ts >= since)).first()
    returns = [b / a - 1 for a, b in zip(eq, eq[1:]) if a > 0]
    days = ((span[1] - span[0]) / DAY_MS) if span and span[0] is not None else 0.0
    return {"returns": returns, "equity": eq, "trades": int(n_fills), "days": float(days),
            "drift_bps": float(drift[0]) if drift and drift[0] is not None else None,
            "twin_trades": int(drift[1]) if drift else 0}


def gate_report(store: Store, instance_id: str, cfg: LifecycleConfig) -> GateReport:
    """Evaluate the promotion gates of an instance's current-stage record."""
    with store.connect() as conn:
        inst = get_instance(conn, instance_id)
        if inst.stage == STAGES[-1]:
            raise LifecycleError(f"strategy instance {instance_id!r} is already at the last stage (live)")
        to_stage = STAGES[STAGES.index(inst.stage) + 1]
        if inst.stage == "research":
            return GateReport(instance_id, inst.stage, to_stage, ())
        from engine.trading.deflation import record_dsr  # numpy: only when gates are evaluated (`status` stays lean)

        rec = instance_record(conn, instance_id, inst.stage_changed_at)
        deflated = record_dsr(conn, instance_id, inst.strategy, inst.params, inst.stage_changed_at, rec["returns"])
    dsr = deflated.result
    drift = rec["drift_bps"]
    checks = (
        GateCheck("days", rec["days"] >= cfg.min_paper_days, rec["days"], cfg.min_paper_days),
        GateCheck("trades", rec["trades"] >= cfg.min_paper_trades, float(rec["trades"]), cfg.min_paper_trades),
        # the DSR is a probability; undefined (NaN) never passes, and the threshold names N and SR0
        GateCheck("dsr", dsr.defined and dsr.dsr >= cfg.min_dsr, None if not dsr.defined else dsr.dsr,
                  f">= {cfg.min_dsr} probability; {deflated.describe()}"),
        GateCheck("drift_bps", drift is not None and drift <= cfg.max_drift_bps, drift, f"<= {cfg.max_drift_bps}"),
    )
    return GateReport(instance_id, inst.stage, to_stage, checks)


def _move_stage(conn: Connection, inst: Instance, to_stage: str, source: str, user: str, action: str,
                details: Mapping[str, Any]) -> None:
    # the new stage's record starts after everything already recorded: equity snapshots and fills carry the market
    # source's clock (the twin or the simulator may run ahead of the wall clock), so a wall-clock stamp alone let
    # the old stage's snapshots count as the new stage's (a live-small promotion read as a 90 % drawdown)
    last = max(int(conn.execute(select(func.max(equity_snapshots.c.ts)).where(
        equity_snapshots.c.scope == inst.id)).scalar() or 0), int(conn.execute(select(func.max(fills.c.ts)).where(
            fills.c.instance_id == inst.id)).scalar() or 0))
    now = max(now_ms(), last + 1)
    conn.execute(update(strategy_instances).where(strategy_instances.c.id == inst.id)
                 .values(stage=to_stage, stage_changed_at=now, updated_at=now))
    audit(conn, source, action, {"instance_id": inst.id, "from": inst.stage, "to": to_stage, **dict(details)},
          user=user)


def promote(store: Store, instance_id: str, cfg: LifecycleConfig, confirm: bool, source: str,
            user: str) -> GateReport:
    """Promote one stage when every gate passes and the operator confirmed; LifecycleError otherwise."""
    report = gate_report(store, instance_id, cfg)
    if not report.passed:
        raise LifecycleError(f"{instance_id}: {report.from_stage} -> {report.to_stage} refused, {report.summary()}")
    if not confirm:
        raise LifecycleError(f"{instance_id}: promotion to {report.to_stage} needs operator confirmation (--confirm)")
    with store.begin() as conn:
        inst = get_instance(conn, instance_id)
        if inst.stage != report.from_stage:
            raise LifecycleError(f"{instance_id}: stage changed concurrently ({inst.stage})")
        _move_stage(conn, inst, report.to_stage, source, user, "strategy.promote",
                    {"checks": [c.__dict__ for c in report.checks]})
    return report


def demote(store: Store, instance_id: str, reason: str, source: str, user: str) -> Instance:
    """Move an instance one stage back (research stays research), audited with the reason."""
    with store.begin() as conn:
        inst = get_instance(conn, instance_id)
        if inst.stage == STAGES[0]:
            raise LifecycleError(f"strategy instance {instance_id!r} is already at the first stage (research)")
        _move_stage(conn, inst, STAGES[STAGES.index(inst.stage) - 1], source, user, "strategy.demote",
                    {"reason": reason})
    return get_instance(store, instance_id)


def auto_demote(store: Store, cfg: LifecycleConfig) -> list[str]:
    """Demote (and alert on) every live/live-small instance whose drawdown from peak breaches its limit."""
    demoted = []
    for inst in list_instances(store):
        if inst.stage not in ("live-small", "live"):
            continue
        with store.connect() as conn:
            rec = instance_record(conn, inst.id, inst.stage_changed_at)
        eq = rec["equity"]
        if not eq:
            continue
        peak = max(eq)
        dd = 1 - eq[-1] / peak if peak > 0 else 0.0
        if dd > cfg.demote_drawdown:
            demote(store, inst.id, f"drawdown {dd:.2%} > {cfg.demote_drawdown:.2%}", "engine", "engine")
            raise_alert(store, "critical", "lifecycle.demote", f"{inst.id} demoted from {inst.stage}: drawdown limit",
                        {"instance_id": inst.id, "drawdown": dd, "limit": cfg.demote_drawdown})
            demoted.append(inst.id)
    return demoted
