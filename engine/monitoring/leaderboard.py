"""The leaderboard: strategy instances ranked by the deflated Sharpe ratio (a probability) of their paper or live
record, computed by the one DSR implementation (engine.backtest.stats via engine.trading.deflation).

Computed from state.db (equity snapshots, fills, twin trades) and stored by the engine in engine_status.info
["leaderboard"] so front ends read it without recomputing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from sqlalchemy import select, update

from engine.config import LifecycleConfig
from engine.trading.deflation import record_dsr
from engine.trading.lifecycle import instance_record, list_instances
from engine.store.db import Store
from engine.store.schema import engine_status, fills, positions


@dataclass(frozen=True)
class LeaderboardRow:
    """One ranked instance."""

    rank: int
    instance_id: str
    strategy: str
    stage: str
    status: str
    dsr: float | None  # the DSR (engine.backtest.stats): P(true Sharpe > expected max Sharpe of the trial family)
    sharpe_margin: float | None  # per-observation Sharpe minus that expected maximum (SR - SR0)
    n_trials: int  # N of the family the instance's parameters were selected from
    dsr_note: str  # the family, or why the DSR is undefined
    pnl: float
    return_pct: float
    trades: int
    hit_rate: float | None
    drift_bps: float | None


def _hit_rate(store: Store, instance_id: str) -> float | None:
    """Share of closing fills that realized a profit (approximated from reduce legs vs average entry)."""
    with store.connect() as conn:
        rows = conn.execute(select(fills.c.symbol, fills.c.side, fills.c.qty, fills.c.price)
                            .where(fills.c.instance_id == instance_id).order_by(fills.c.id)).all()
    pos: dict[str, tuple[float, float]] = {}
    wins = closes = 0
    for sym, side, qty, price in rows:
        q, avg = pos.get(sym, (0.0, 0.0))
        d = qty if side == "buy" else -qty
        if q and (q > 0) != (d > 0):
            closes += 1
            wins += int((price - avg) * (1 if q > 0 else -1) > 0)
            nq = q + d
            pos[sym] = (nq, avg if (nq > 0) == (q > 0) else price) if abs(nq) > 1e-12 else (0.0, 0.0)
        else:
            nq = q + d
            pos[sym] = (nq, (abs(q) * avg + abs(d) * price) / abs(nq))
    return wins / closes if closes else None


def compute_leaderboard(store: Store, cfg: LifecycleConfig) -> list[LeaderboardRow]:
    """Rank every instance in paper, live-small or live by deflated Sharpe of its current-stage record."""
    rows = []
    for inst in list_instances(store):
        with store.connect() as conn:
            since = 0 if inst.stage == "paper" else inst.stage_changed_at
            rec = instance_record(conn, inst.id, since)
            deflated = record_dsr(conn, inst.id, inst.strategy, inst.params, since, rec["returns"])
            pos = conn.execute(select(positions).where(positions.c.instance_id == inst.id)).mappings().all()
        d = deflated.result
        eq = rec["equity"]
        pnl = (eq[-1] - eq[0]) if len(eq) >= 2 else sum(p["realized_pnl"] - p["fees"] for p in pos)
        base = eq[0] if eq else inst.effective_capital(cfg)
        rows.append(dict(instance_id=inst.id, strategy=inst.strategy, stage=inst.stage, status=inst.status,
                         dsr=d.dsr if d.defined else None, sharpe_margin=(d.sharpe - d.sr0) if d.defined else None,
                         n_trials=d.n_trials, dsr_note=deflated.describe(), pnl=pnl,
                         return_pct=(pnl / base * 100 if base else 0.0), trades=rec["trades"], hit_rate=_hit_rate(store, inst.id), drift_bps=rec["drift_bps"]))
    # undefined DSRs rank last; ties broken by the Sharpe margin
    rows.sort(key=lambda r: (r["dsr"] is not None, r["dsr"] or 0.0, r["sharpe_margin"] or 0.0), reverse=True)
    return [LeaderboardRow(rank=i + 1, **r) for i, r in enumerate(rows)]


def store_leaderboard(store: Store, board: list[LeaderboardRow]) -> None:
    """Save the leaderboard into engine_status.info so the console and CLI read it cheaply."""
    from engine.store.engines import MAIN, bound_engine

    mine = engine_status.c.name == (bound_engine() or MAIN)  # each engine of a desk writes its own row
    with store.begin() as conn:
        row = conn.execute(select(engine_status.c.info).where(mine)).first()
        if row is None:
            return
        info = json.loads(row[0] or "{}")
        info["leaderboard"] = [asdict(r) for r in board]
        conn.execute(update(engine_status).where(mine).values(info=json.dumps(info, default=str)))


def read_leaderboard(store: Store) -> list[dict]:
    """The leaderboard the engine last stored (empty if none)."""
    with store.connect() as conn:
        row = conn.execute(select(engine_status.c.info).where(engine_status.c.id == 1)).first()
    return list(json.loads(row[0] or "{}").get("leaderboard", [])) if row else []
