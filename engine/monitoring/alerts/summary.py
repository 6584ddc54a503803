"""The daily summary sent off-box at `alerts.daily_summary_at` (UTC): equity, P&L, drawdown, positions, per strategy.

Once per UTC day: the event's rule is `summary:<date>` and it is written only when no event with that rule exists,
so a restart after the configured time does not send it twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from engine.config import AlertsConfig
from engine.store.db import Store
from engine.store.notify import enqueue_event
from engine.store.schema import equity_snapshots, notify_events, positions

DAY_MS = 86_400_000


def summary_due(cfg: AlertsConfig, now: int) -> str | None:
    """The UTC date whose summary is due at `now` (configured time passed today), or None."""
    if not cfg.daily_summary_at:
        return None
    hh, mm = (int(x) for x in cfg.daily_summary_at.split(":"))
    day_start = now - now % DAY_MS
    if now < day_start + (hh * 60 + mm) * 60_000:
        return None
    return dt.datetime.fromtimestamp(day_start / 1000, tz=dt.timezone.utc).date().isoformat()


def desk_figures(store: Store, now: int) -> dict[str, Any]:
    """Equity, P&L over the last 24 h, drawdown from the peak, open positions and per-strategy P&L."""
    with store.connect() as conn:
        def latest(scope: str, before: int | None = None) -> Any:
            stmt = select(equity_snapshots).where(equity_snapshots.c.scope == scope)
            if before is not None:
                stmt = stmt.where(equity_snapshots.c.ts <= before)
            return conn.execute(stmt.order_by(equity_snapshots.c.ts.desc()).limit(1)).mappings().first()

        last = latest("portfolio")
        ref = int(last["ts"]) if last else now  # snapshots carry the market clock (simulated time for the simulator)
        day_ago = latest("portfolio", ref - DAY_MS)
        peak = conn.execute(select(func.max(equity_snapshots.c.equity))
                            .where(equity_snapshots.c.scope == "portfolio")).scalar()
        scopes = [r[0] for r in conn.execute(select(equity_snapshots.c.scope).distinct()
                                             .where(equity_snapshots.c.scope != "portfolio"))]
        per_strategy = {}
        for scope in sorted(scopes):
            snap = latest(scope)
            if snap is not None:
                per_strategy[scope] = round(float(snap["realized_pnl"]) + float(snap["unrealized_pnl"]), 2)
        pos = [dict(r) for r in conn.execute(select(positions.c.instance_id, positions.c.symbol, positions.c.qty,
                                                    positions.c.avg_price)
                                             .where(func.abs(positions.c.qty) > 1e-12)).mappings()]
    equity = float(last["equity"]) if last else None
    return {"equity": equity,
            "pnl_24h": (equity - float(day_ago["equity"])) if equity is not None and day_ago else None,
            "drawdown": (max(0.0, 1.0 - equity / float(peak)) if equity is not None and peak else None),
            "gross_exposure": float(last["gross_exposure"]) if last else None,
            "positions": pos, "per_strategy_pnl": per_strategy}


def _fmt(v: float | None, spec: str = "{:,.2f}") -> str:
    return "-" if v is None else spec.format(v)


def send_daily_summary(store: Store, cfg: AlertsConfig, now: int) -> bool:
    """Queue today's summary when it is due and not yet queued; True when it was queued now."""
    date = summary_due(cfg, now)
    if date is None:
        return False
    rule = f"summary:{date}"
    with store.connect() as conn:
        if conn.execute(select(notify_events.c.id).where(notify_events.c.rule == rule).limit(1)).first():
            return False
    f = desk_figures(store, now)
    lines = [f"equity {_fmt(f['equity'])}   P&L 24h {_fmt(f['pnl_24h'])}   drawdown {_fmt(f['drawdown'], '{:.2%}')}",
             f"gross exposure {_fmt(f['gross_exposure'])}   open positions {len(f['positions'])}"]
    lines += [f"  {p['instance_id']} {p['symbol']} {p['qty']:+.6g} @ {p['avg_price']:,.2f}" for p in f["positions"][:20]]
    if f["per_strategy_pnl"]:
        lines.append("P&L per strategy: " + ", ".join(f"{k} {v:,.2f}" for k, v in f["per_strategy_pnl"].items()))
    with store.begin() as conn:
        if conn.execute(select(notify_events.c.id).where(notify_events.c.rule == rule).limit(1)).first():
            return False
        enqueue_event(conn, "summary", "info", f"daily summary {date}", "\n".join(lines), f, rule=rule)
    return True
