"""Acknowledgement and escalation: a critical alert nobody acknowledges tightens the desk on a schedule.

Whose state tightens: a desk-wide alert's (raised by a front end or the watchdog) moves the desk's `global` scope;
an engine's alert on a desk with several engines moves that engine's scope (`engine:<name>`) only, so one engine's
reconciliation alert does not halt the others. On a desk where only main ever ran, every alert moves the desk.

Step 1, `alerts.ack_timeout_s` after the alert: ACTIVE -> REDUCING. Step 2, `alerts.halt_after_s` after step 1:
-> HALTED. Each step is one transaction: the escalation row (the primary key makes a step happen once, whichever
process gets there first), the trading-state change (audited and notified by set_state), an `alert.escalated` audit
entry and its own notification. Acknowledging the alert (`quantdesk alerts ack ID`, the console key) stops it; the
state is never loosened by this module (only an operator resumes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from engine.config import AlertsConfig
from engine.risk.trading_state import GLOBAL, TradingState, read_state, set_state
from engine.store.db import Store
from engine.store.engines import MAIN, engine_scope
from engine.store.notify import enqueue_event
from engine.store.ops import audit
from engine.store.schema import alert_escalations, alerts, engine_status

log = logging.getLogger("quantdesk.alerts")
_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}
STEPS = {1: TradingState.REDUCING, 2: TradingState.HALTED}


@dataclass(frozen=True)
class Escalation:
    """One escalation step taken."""

    alert_id: int
    step: int
    target: TradingState
    previous: TradingState


def check_escalations(store: Store, cfg: AlertsConfig, now: int) -> list[Escalation]:
    """Take every escalation step that is due now; returns the steps taken."""
    if cfg.ack_timeout_s <= 0:
        return []
    ack_ms, halt_ms = int(cfg.ack_timeout_s * 1000), int(cfg.halt_after_s * 1000)
    with store.connect() as conn:
        rows = conn.execute(
            select(alerts.c.id, alerts.c.ts, alerts.c.rule, alerts.c.message, alerts.c.engine, alert_escalations.c.step,
                   alert_escalations.c.ts.label("step_ts"))
            .outerjoin(alert_escalations, alert_escalations.c.alert_id == alerts.c.id)
            .where(alerts.c.severity == "critical", alerts.c.acked == 0,
                   alerts.c.ts >= now - int(cfg.escalation_lookback_s * 1000), alerts.c.ts <= now - ack_ms)
            .order_by(alerts.c.id)).mappings().all()
    taken: list[Escalation] = []
    for r in rows:
        step = r["step"] or 0
        if step == 0:
            due = True
        elif step == 1 and halt_ms > 0:
            due = r["step_ts"] + halt_ms <= now
        else:
            due = False
        if due:
            done = _escalate(store, r, step + 1, cfg, now)
            if done is not None:
                taken.append(done)
    return taken


def _escalate(store: Store, r: dict, step: int, cfg: AlertsConfig, now: int) -> Escalation | None:
    """Take one step in one transaction; None when another process took it first or the alert was acked."""
    target = STEPS[step]
    try:
        with store.begin() as conn:
            acked = conn.execute(select(alerts.c.acked).where(alerts.c.id == r["id"])).scalar()
            if acked:
                return None
            if step == 1:
                conn.execute(insert(alert_escalations).values(alert_id=r["id"], step=1, ts=now, state=target.value))
            elif not conn.execute(update(alert_escalations).where(alert_escalations.c.alert_id == r["id"],
                                                                  alert_escalations.c.step == step - 1)
                                  .values(step=step, ts=now, state=target.value)).rowcount:
                return None
            scope = escalation_scope(conn, r["engine"])
            previous = read_state(conn, scope).state
            waited_s = (now - r["ts"]) / 1000
            reason = (f"escalation: critical alert #{r['id']} ({r['rule']}) not acknowledged for {waited_s:.0f}s "
                      f"-> {target.value}")
            if _RANK[target] > _RANK[previous]:
                set_state(conn, target, reason, source="engine", user="escalation", scope=scope,
                          values={"rule": "alerts.escalation", "alert_id": r["id"], "alert_rule": r["rule"],
                                  "step": step})
            _record(conn, r, step, target, previous, waited_s, cfg, scope)
    except IntegrityError:
        return None  # another sender took step 1 at the same moment
    log.warning("escalated: alert #%s step %s -> %s", r["id"], step, target.value)
    return Escalation(r["id"], step, target, previous)


def escalation_scope(conn: Connection, engine: str | None) -> str:
    """The trading-state scope an alert's escalation moves: the engine's own when the alert is an engine's and the
    desk has (had) other engines than main, else the desk's `global`."""
    if engine is None:
        return GLOBAL
    others = conn.execute(select(engine_status.c.name).where(engine_status.c.name != MAIN).limit(1)).first()
    return engine_scope(engine) if others is not None else GLOBAL


def _record(conn: Connection, r: dict, step: int, target: TradingState, previous: TradingState, waited_s: float,
            cfg: AlertsConfig, scope: str) -> None:
    """Audit the step and queue its own notification (it says what happens next and how to stop it)."""
    details = {"alert_id": r["id"], "rule": r["rule"], "step": step, "from": previous.value, "to": target.value,
               "waited_s": round(waited_s, 1), "scope": scope}
    whose = "desk" if scope == GLOBAL else scope.replace(":", " ", 1)
    audit(conn, "engine", "alert.escalated", details, user="escalation")
    nxt = (f"; HALTED in {cfg.halt_after_s:g}s unless acknowledged" if step == 1 and cfg.halt_after_s > 0 else "")
    changed = "" if _RANK[target] > _RANK[previous] else f" (already {previous.value})"
    enqueue_event(conn, "escalation", "critical",
                  f"[CRITICAL] escalation: {whose} -> {target.value}{changed}",
                  f"critical alert #{r['id']} ({r['rule']}: {r['message'][:200]}) was not acknowledged within "
                  f"{waited_s:.0f}s: trading state -> {target.value}{changed}{nxt}.\n"
                  f"Acknowledge: quantdesk alerts ack {r['id']}", details, rule="alerts.escalation")
