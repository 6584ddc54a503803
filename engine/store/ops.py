"""Alerts and the audit log: the two records every package writes when something happens."""

from __future__ import annotations

import json
import os
import logging
from dataclasses import dataclass
from typing import Any, Mapping

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from engine.clock import now_ms
from engine.store.db import Store
from engine.store.engines import bound_engine
from engine.store.notify import dedup_key, enqueue_event, merge_duplicate
from engine.store.schema import alerts, audit_log

log = logging.getLogger("quantdesk.alerts")
SEVERITIES = ("info", "warning", "critical")
_LOG_LEVEL = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


@dataclass(frozen=True)
class Alert:
    """One alert row."""

    id: int
    ts: int
    severity: str
    rule: str
    source: str
    message: str
    values: dict[str, Any]
    acked: bool
    acked_by: str | None
    acked_at: int | None = None
    count: int = 1  # identical alerts merged into this row within the dedup window
    last_ts: int | None = None


def current_user() -> str:
    """The OS user of this process (its effective uid), for the audit log; never $USER/$LOGNAME, which anyone can set."""
    import pwd

    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # no passwd entry in some containers
        return f"uid {uid}"


def _json(values: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(values or {}), default=str, sort_keys=True)


MERGE_WINDOW_MS = 600_000  # a repeat of an unacknowledged alert within 10 minutes is merged into it


def raise_alert(store: Store | Connection, severity: str, rule: str, message: str,
                values: Mapping[str, Any] | None = None, source: str = "engine", merge_key: str | None = None) -> int:
    """Record an alert (and log it) so an operator sees it, with its off-box notification in the same
    transaction; returns its id.

    Repeats are merged, never re-announced one by one: with `merge_key`, a repeat of an unacknowledged alert with the
    same rule, source and key raised within MERGE_WINDOW_MS of its last repeat updates that alert (newest message,
    `last_ts`, `values.count` + 1, `values.first_ts`; `ts` stays the first time, which ack escalation counts from),
    so a failing source gives one alert with a count, not one a minute.
    Without it, an alert identical (severity, rule, source, message) to an unacknowledged one seen within the dedup
    window (engine/store/notify.py, `alerts.dedup_window_s`) is counted on that row. Either way the `count` column
    grows and the sender sends one repeat notice per window instead of a message per repeat.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity: must be one of {SEVERITIES}, got {severity!r}")
    if isinstance(store, Connection):
        return _record_alert(store, severity, rule, message, values, source, merge_key)
    with store.begin() as conn:
        return _record_alert(conn, severity, rule, message, values, source, merge_key)


def _record_alert(conn: Connection, severity: str, rule: str, message: str, values: Mapping[str, Any] | None,
                  source: str, merge_key: str | None) -> int:
    now = now_ms()
    vals = dict(values or {})
    engine = bound_engine()  # an engine process's alert is that engine's; a front end's is desk-wide (NULL)
    merge_key = merge_key if merge_key is not None else vals.get("merge_key")  # a sink may pass it in values
    if merge_key is not None:
        vals["merge_key"] = merge_key
        row = conn.execute(select(alerts.c.id, alerts.c.ts, alerts.c.values_json)
                           .where(alerts.c.rule == rule, alerts.c.source == source, alerts.c.acked == 0,
                                  alerts.c.engine.is_(None) if engine is None else alerts.c.engine == engine,
                                  func.coalesce(alerts.c.last_ts, alerts.c.ts) >= now - MERGE_WINDOW_MS)
                           .order_by(alerts.c.id.desc()).limit(50)).all()
        for alert_id, ts, values_json in row:
            old = json.loads(values_json or "{}")
            if old.get("merge_key") != merge_key:
                continue
            vals.update(count=int(old.get("count", 1)) + 1, first_ts=int(old.get("first_ts", ts)))
            conn.execute(update(alerts).where(alerts.c.id == alert_id)
                         .values(severity=severity, message=message, values_json=_json(vals),
                                 count=alerts.c.count + 1, last_ts=now))  # ts stays the first time (escalation)
            log.debug("[%s] %s: %s (repeat, merged into alert %s)", severity, rule, message, alert_id)
            return int(alert_id)
        vals.update(count=1, first_ts=now)
    key = dedup_key(severity, rule, source if engine is None else f"{source}@{engine}", message)
    if merge_key is None:
        merged = merge_duplicate(conn, key, now, _json(vals))
        if merged is not None:
            log.debug("[%s] %s: %s (repeat, merged into alert %s)", severity, rule, message, merged)
            return merged
    log.log(_LOG_LEVEL[severity], "[%s] %s: %s %s", severity, rule, message, _json(vals))
    row = insert(alerts).values(ts=now, severity=severity, rule=rule, source=source, message=message,
                                values_json=_json(vals), acked=0, count=1, last_ts=now, dedup_key=key, engine=engine)
    alert_id = int(conn.execute(row).inserted_primary_key[0])
    enqueue_event(conn, "alert", severity, f"[{severity.upper()}] {rule}", message, vals, rule=rule,
                  alert_id=alert_id)
    return alert_id


def audit(store: Store | Connection, source: str, action: str, details: Mapping[str, Any] | None = None,
          user: str | None = None) -> int:
    """Append to the audit log who did what, from where; returns the row id."""
    stmt = insert(audit_log).values(ts=now_ms(), source=source, user=user or current_user(), action=action,
                                    details=_json(details))
    if isinstance(store, Connection):
        return int(store.execute(stmt).inserted_primary_key[0])
    with store.begin() as conn:
        return int(conn.execute(stmt).inserted_primary_key[0])


def _alert(r: Mapping[str, Any]) -> Alert:
    return Alert(id=r["id"], ts=r["ts"], severity=r["severity"], rule=r["rule"], source=r["source"],
                 message=r["message"], values=json.loads(r["values_json"] or "{}"), acked=bool(r["acked"]),
                 acked_by=r["acked_by"], acked_at=r["acked_at"], count=int(r["count"] or 1), last_ts=r["last_ts"])


def list_alerts(store: Store, *, limit: int = 100, min_severity: str = "info", unacked_only: bool = False) -> list[Alert]:
    """Newest alerts first, filtered by severity and acknowledgement."""
    allowed = SEVERITIES[SEVERITIES.index(min_severity):]
    stmt = select(alerts).where(alerts.c.severity.in_(allowed)).order_by(alerts.c.id.desc()).limit(limit)
    if unacked_only:
        stmt = stmt.where(alerts.c.acked == 0)
    with store.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return [_alert(r) for r in rows]


def get_alert(store: Store, alert_id: int) -> Alert | None:
    """One alert by id (None when there is no such row)."""
    with store.connect() as conn:
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().first()
    return None if row is None else _alert(row)


def ack_alert(store: Store, alert_id: int, user: str, source: str = "engine") -> bool:
    """Mark an alert acknowledged and audit it; False when no such unacknowledged alert exists."""
    with store.begin() as conn:
        changed = conn.execute(update(alerts).where(alerts.c.id == alert_id, alerts.c.acked == 0)
                               .values(acked=1, acked_by=user, acked_at=now_ms())).rowcount
        if changed:
            audit(conn, source, "alert.ack", {"alert_id": alert_id}, user=user)
    return bool(changed)
