"""Valuation: per-instance and portfolio equity from positions and marks, written as equity snapshots."""

from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import func, insert, select

from engine.config import LifecycleConfig
from engine.trading.lifecycle import list_instances
from engine.store.db import Store
from engine.store.schema import equity_snapshots, fills, orders, positions


def valuation(store: Store, mark: Callable[[str], float], lifecycle_cfg: LifecycleConfig) -> dict[str, dict[str, Any]]:
    """Equity, cash, exposures and P&L per instance plus a 'portfolio' total, valued at `mark(symbol)`."""
    marks: dict[str, float] = {}
    out: dict[str, dict[str, Any]] = {}
    unallocated = 0.0  # capital a live-small instance holds back: still the desk's, so a promotion is not a loss
    with store.connect() as conn:
        pos_rows = [dict(r) for r in conn.execute(select(positions)).mappings()]
    for inst in list_instances(store):
        rows = [p for p in pos_rows if p["instance_id"] == inst.id]
        realized = sum(p["realized_pnl"] - p["fees"] - p["funding"] for p in rows)
        unreal = gross = net = 0.0
        for p in rows:
            if abs(p["qty"]) < 1e-12:
                continue
            if p["symbol"] not in marks:
                marks[p["symbol"]] = mark(p["symbol"])
            m = marks[p["symbol"]]
            unreal += p["qty"] * (m - p["avg_price"])
            gross += abs(p["qty"] * m)
            net += p["qty"] * m
        equity = inst.effective_capital(lifecycle_cfg) + realized + unreal
        unallocated += inst.capital - inst.effective_capital(lifecycle_cfg)
        out[inst.id] = {"equity": equity, "cash": equity - net, "gross_exposure": gross, "net_exposure": net,
                        "unrealized_pnl": unreal, "realized_pnl": realized}
    total = {k: sum(v[k] for v in out.values()) for k in ("equity", "cash", "gross_exposure", "net_exposure",
                                                          "unrealized_pnl", "realized_pnl")}
    total["equity"] += unallocated  # the drawdown triggers read this: it moves with P&L only, never with a stage
    total["cash"] += unallocated
    out["portfolio"] = total
    return out


def snapshot_equity(store: Store, mark: Callable[[str], float], ts: int, lifecycle_cfg: LifecycleConfig) -> dict:
    """Write one equity snapshot per instance and for the portfolio; returns the valuation."""
    from engine.store.engines import portfolio_scope

    val = valuation(store, mark, lifecycle_cfg)
    with store.begin() as conn:
        for scope, v in val.items():  # another engine than main writes its total as portfolio:<name>
            conn.execute(insert(equity_snapshots).values(ts=ts, scope=portfolio_scope() if scope == "portfolio"
                                                         else scope, **{k: float(x) for k, x in v.items()}))
    return val


def last_market_ts(store: Store) -> int | None:
    """The newest market-time stamp the engine wrote (orders, fills, equity snapshots), or None: where a restarted
    simulator resumes its clock."""
    with store.connect() as conn:
        vals = [conn.execute(select(func.max(orders.c.updated_at))).scalar(),
                conn.execute(select(func.max(fills.c.ts))).scalar(),
                conn.execute(select(func.max(equity_snapshots.c.ts))).scalar()]
    found = [int(v) for v in vals if v is not None]
    return max(found) if found else None
