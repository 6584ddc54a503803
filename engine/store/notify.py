"""The transactional outbox of off-box notifications: events written in the same transaction as what they announce.

`raise_alert` and `set_state` call `enqueue_event` on their own connection, so an alert or a trading-state change and
its notification commit (or roll back) together: nothing is announced that did not happen, and nothing that happened
is missed when the engine dies right after. The sender in engine/monitoring/alerts routes the events to channels.

Alert deduplication lives here too: an alert identical (severity, rule, source, message) to an unacknowledged one seen
within the dedup window is merged into that row (count + 1, last_ts) instead of a new row and a new notification.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from engine.clock import now_ms
from engine.store.schema import alert_outbox, alerts, equity_snapshots, notify_events, positions

DEFAULT_DEDUP_WINDOW_S = 300.0
_dedup_window_ms = int(DEFAULT_DEDUP_WINDOW_S * 1000)


def set_dedup_window(seconds: float) -> None:
    """Set this process's alert dedup window (the engine applies `alerts.dedup_window_s` at start); 0 turns it off."""
    global _dedup_window_ms
    if seconds < 0:
        raise ValueError(f"dedup window: must be >= 0 seconds, got {seconds!r}")
    _dedup_window_ms = int(seconds * 1000)


def dedup_window_ms() -> int:
    """The alert dedup window in force in this process, in milliseconds."""
    return _dedup_window_ms


def dedup_key(severity: str, rule: str, source: str, message: str) -> str:
    """Identity of an alert for deduplication: same severity, rule, source and message."""
    return hashlib.sha1(f"{severity}\x1f{rule}\x1f{source}\x1f{message}".encode()).hexdigest()


def merge_duplicate(conn: Connection, key: str, ts: int, values_json: str) -> int | None:
    """Fold a repeat into the newest unacknowledged alert with this key seen within the window (count + 1, latest
    values); its id, or None when there is none."""
    if _dedup_window_ms <= 0:
        return None
    row = conn.execute(select(alerts.c.id).where(alerts.c.dedup_key == key, alerts.c.acked == 0,
                                                 func.coalesce(alerts.c.last_ts, alerts.c.ts) >= ts - _dedup_window_ms)
                       .order_by(alerts.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    conn.execute(update(alerts).where(alerts.c.id == row[0]).values(count=alerts.c.count + 1, last_ts=ts,
                                                                        values_json=values_json))
    return int(row[0])


def enqueue_event(conn: Connection, kind: str, severity: str, title: str, body: str,
                  values: Mapping[str, Any] | None = None, *, rule: str = "", alert_id: int | None = None,
                  channel: int | None = None) -> int:
    """Write one notification event on the caller's connection (inside its transaction); returns its id."""
    ts = now_ms()
    stmt = insert(notify_events).values(ts=ts, kind=kind, severity=severity, rule=rule, alert_id=alert_id,
                                        title=title[:300], body=body, channel=channel, routed=0, notified=1,
                                        notified_at=ts,
                                        values_json=json.dumps(dict(values or {}), default=str, sort_keys=True))
    return int(conn.execute(stmt).inserted_primary_key[0])


def desk_snapshot(conn: Connection) -> dict[str, Any]:
    """Open positions and the latest portfolio exposure, read in the caller's transaction (for state-change notes)."""
    pos = [{"instance": r["instance_id"], "symbol": r["symbol"], "qty": r["qty"], "avg_price": r["avg_price"]}
           for r in conn.execute(select(positions).where(func.abs(positions.c.qty) > 1e-12)
                                 .order_by(positions.c.instance_id, positions.c.symbol)).mappings()]
    snap = conn.execute(select(equity_snapshots).where(equity_snapshots.c.scope == "portfolio")
                        .order_by(equity_snapshots.c.ts.desc()).limit(1)).mappings().first()
    exposure: dict[str, Any] = {}
    if snap is not None:
        exposure = {"equity": snap["equity"], "gross_exposure": snap["gross_exposure"], "as_of": snap["ts"]}
        if "net_exposure" in snap:
            exposure["net_exposure"] = snap["net_exposure"]
    return {"positions": pos, "exposure": exposure}


def outbox_counts(store: Any) -> dict[tuple[int, str], tuple[int, str]]:
    """(channel, status) -> (rows, redacted channel URL): the outbox per channel for the console and the CLI."""
    with store.connect() as conn:
        rows = conn.execute(select(alert_outbox.c.channel, alert_outbox.c.status, func.count(),
                                   func.max(alert_outbox.c.channel_url))
                            .group_by(alert_outbox.c.channel, alert_outbox.c.status)).all()
    return {(int(r[0]), str(r[1])): (int(r[2]), str(r[3])) for r in rows}


def outbox_row(store: Any, event_id: int, channel: int) -> dict[str, Any] | None:
    """The outbox row of one event on one channel (id, status, last_error), or None when it was not routed there."""
    with store.connect() as conn:
        row = conn.execute(select(alert_outbox.c.id, alert_outbox.c.status, alert_outbox.c.last_error).where(
            alert_outbox.c.event_id == event_id, alert_outbox.c.channel == channel)).mappings().first()
    return dict(row) if row else None
