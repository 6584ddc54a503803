"""The persistent outbox in state.db: route events to channels, rate-limit, claim, retry with backoff, digest.

Every step is a short transaction guarded by a conditional UPDATE, so two senders on one store (the engine's and the
watchdog's) never route an event twice or send one outbox row twice; a claim left by a process that died expires and
the row is sent again. Critical messages bypass the rate limit and never give up.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any, Iterable

from sqlalchemy import and_, delete, func, insert, or_, select, update

from engine.config import AlertsConfig
from engine.monitoring.alerts.channels import Channel
from engine.store.db import Store
from engine.store.notify import enqueue_event
from engine.store.schema import alert_attempts, alert_outbox, alerts, notify_events

ROUTE_BATCH = 500
RETAIN_MS = 30 * 86_400_000  # delivered/failed messages, attempts and routed events older than this are pruned
CLAIM_MS = 120_000  # a claimed row whose sender died is retried after this long
OPEN = ("pending", "sending", "sent", "failed")  # rows that count against the rate limit
HOST = socket.gethostname()
ALWAYS_SENT = frozenset({"engine", "summary", "watchdog"})  # sent to every channel whatever its min_severity


@dataclass(frozen=True)
class OutboxRow:
    """One message for one channel, as claimed for sending."""

    id: int
    channel: int
    severity: str
    title: str
    body: str
    attempts: int
    created_at: int


def route_events(store: Store, channels: list[Channel], cfg: AlertsConfig, now: int) -> int:
    """Turn unrouted notify events into per-channel outbox rows (held when over the rate limit); returns events."""
    with store.begin() as conn:
        events = conn.execute(select(notify_events).where(notify_events.c.routed == 0)
                              .order_by(notify_events.c.id).limit(ROUTE_BATCH)).mappings().all()
        if not events:
            return 0
        since = now - int(cfg.rate_limit_window_s * 1000)
        recent = {ch.index: int(conn.execute(select(func.count()).select_from(alert_outbox).where(
            alert_outbox.c.channel == ch.index, alert_outbox.c.created_at >= since,
            alert_outbox.c.status.in_(OPEN), alert_outbox.c.event_id.is_not(None))).scalar() or 0)
            for ch in channels}
        routed = 0
        for ev in events:
            claimed = conn.execute(update(notify_events).where(notify_events.c.id == ev["id"],
                                                               notify_events.c.routed == 0).values(routed=1)).rowcount
            if not claimed:
                continue
            routed += 1
            for ch in channels:
                if ev["channel"] is not None and ev["channel"] != ch.index:
                    continue
                if ev["channel"] is None and not (ch.wants(ev["severity"]) or ev["kind"] in ALWAYS_SENT):
                    continue
                held = (ev["severity"] != "critical" and ev["channel"] is None
                        and recent[ch.index] >= cfg.rate_limit_count)
                recent[ch.index] += 0 if held else 1
                conn.execute(insert(alert_outbox).values(
                    event_id=ev["id"], created_at=now, channel=ch.index, channel_url=ch.redacted,
                    severity=ev["severity"], title=_title(ev["title"]), body=_body(ev), attempts=0,
                    status="held" if held else "pending", next_attempt_at=now))
        return routed


def _title(title: str) -> str:
    return f"quantdesk@{HOST}: {title}"


def _body(ev: Any) -> str:
    return f"{ev['body']}\n— event #{ev['id']}" + (f", alert #{ev['alert_id']}" if ev["alert_id"] else "")


def emit_repeats(store: Store, window_ms: int, now: int) -> int:
    """For alerts merged by dedup since their last notice (and that notice older than the window), queue one
    'repeated N times' event; returns how many were queued."""
    queued = 0
    with store.begin() as conn:
        rows = conn.execute(
            select(notify_events.c.id, notify_events.c.notified, notify_events.c.notified_at, alerts.c.id.label("aid"),
                   alerts.c.count, alerts.c.severity, alerts.c.rule, alerts.c.message, alerts.c.last_ts)
            .join(alerts, alerts.c.id == notify_events.c.alert_id)
            .where(notify_events.c.kind == "alert", alerts.c.count > notify_events.c.notified,
                   func.coalesce(notify_events.c.notified_at, 0) <= now - window_ms)).mappings().all()
        for r in rows:
            done = conn.execute(update(notify_events).where(notify_events.c.id == r["id"],
                                                            notify_events.c.notified == r["notified"])
                                .values(notified=r["count"], notified_at=now)).rowcount
            if not done:
                continue
            more = r["count"] - r["notified"]
            enqueue_event(conn, "repeat", r["severity"], f"[{r['severity'].upper()}] {r['rule']} (x{r['count']})",
                          f"{r['message']}\nrepeated {more} more time(s) since the last notice; {r['count']} in "
                          f"all (alert #{r['aid']}, acknowledge to stop merging)",
                          {"count": r["count"], "new": more}, rule=r["rule"], alert_id=r["aid"])
            queued += 1
    return queued


def make_digests(store: Store, channels: Iterable[Channel], cfg: AlertsConfig, now: int) -> int:
    """Per channel, once a window has passed since the oldest held message, send one digest of what was held."""
    window_ms = int(cfg.rate_limit_window_s * 1000)
    made = 0
    for ch in channels:
        with store.begin() as conn:
            held = conn.execute(select(alert_outbox.c.id, alert_outbox.c.title, alert_outbox.c.created_at,
                                       alert_outbox.c.severity)
                                .where(alert_outbox.c.channel == ch.index, alert_outbox.c.status == "held")
                                .order_by(alert_outbox.c.id)).mappings().all()
            if not held or held[0]["created_at"] > now - window_ms:
                continue
            ids = [h["id"] for h in held]
            changed = conn.execute(update(alert_outbox).where(alert_outbox.c.id.in_(ids),
                                                              alert_outbox.c.status == "held")
                                   .values(status="digested")).rowcount
            if changed != len(ids):
                raise RuntimeError("outbox digest raced another sender; rolled back")
            counts: dict[str, int] = {}
            for h in held:
                counts[h["title"]] = counts.get(h["title"], 0) + 1
            lines = [f"{n} x {t}" if n > 1 else t for t, n in sorted(counts.items(), key=lambda kv: -kv[1])]
            body = "\n".join(lines[:25]) + (f"\n… and {len(lines) - 25} more kinds" if len(lines) > 25 else "")
            worst = max((h["severity"] for h in held), key=lambda s: ("info", "warning", "critical").index(s))
            conn.execute(insert(alert_outbox).values(
                event_id=None, created_at=now, channel=ch.index, channel_url=ch.redacted, severity=worst,
                title=_title(f"digest: {len(held)} message(s) held back by the rate limit"),
                body=f"{body}\n(rate limit {cfg.rate_limit_count} per {cfg.rate_limit_window_s:g}s)", attempts=0,
                status="pending", next_attempt_at=now))
            made += 1
    return made


def claim_due(store: Store, channel: int, sender: str, now: int, limit: int = 20) -> list[OutboxRow]:
    """Claim up to `limit` due rows of one channel for this sender (critical first); stale claims are reclaimed."""
    due = or_(and_(alert_outbox.c.status == "pending", alert_outbox.c.next_attempt_at <= now),
              and_(alert_outbox.c.status == "sending", alert_outbox.c.claim_until < now))
    out: list[OutboxRow] = []
    with store.begin() as conn:
        rows = conn.execute(select(alert_outbox).where(alert_outbox.c.channel == channel, due)
                            .order_by((alert_outbox.c.severity == "critical").desc(), alert_outbox.c.id)
                            .limit(limit)).mappings().all()
        for r in rows:
            got = conn.execute(update(alert_outbox).where(alert_outbox.c.id == r["id"], due)
                               .values(status="sending", claimed_by=sender, claim_until=now + CLAIM_MS)).rowcount
            if got:
                out.append(OutboxRow(r["id"], r["channel"], r["severity"], r["title"], r["body"], r["attempts"],
                                     r["created_at"]))
    return out


def claim_row(store: Store, row_id: int, sender: str, now: int) -> OutboxRow | None:
    """Claim one specific pending row (a CLI test message); None when another sender has it."""
    with store.begin() as conn:
        got = conn.execute(update(alert_outbox).where(alert_outbox.c.id == row_id, alert_outbox.c.status == "pending")
                           .values(status="sending", claimed_by=sender, claim_until=now + CLAIM_MS)).rowcount
        r = conn.execute(select(alert_outbox).where(alert_outbox.c.id == row_id)).mappings().first() if got else None
    if r is None:
        return None
    return OutboxRow(r["id"], r["channel"], r["severity"], r["title"], r["body"], r["attempts"], r["created_at"])


def release(store: Store, ids: list[int], sender: str) -> None:
    """Hand claimed but unattempted rows back (their channel is failing; they wait for the next pass)."""
    if not ids:
        return
    with store.begin() as conn:
        conn.execute(update(alert_outbox).where(alert_outbox.c.id.in_(ids), alert_outbox.c.claimed_by == sender,
                                                alert_outbox.c.status == "sending")
                     .values(status="pending", claimed_by=None, claim_until=None))


def backoff_ms(cfg: AlertsConfig, attempts: int) -> int:
    """Delay before the next attempt after `attempts` failures: base * 2^(attempts-1), capped."""
    return int(min(cfg.retry_max_s, cfg.retry_base_s * (2 ** max(0, attempts - 1))) * 1000)


def record_attempt(store: Store, row: OutboxRow, error: str | None, elapsed_ms: int, sender: str,
                   cfg: AlertsConfig, now: int) -> str:
    """Record one delivery attempt and move the row on (sent, retry later, or failed); returns its new status."""
    attempts = row.attempts + 1
    if error is None:
        status, values = "sent", {"sent_at": now, "last_error": None}
    elif row.severity != "critical" and now - row.created_at > cfg.give_up_after_s * 1000:
        status, values = "failed", {"last_error": error[:1000]}
    else:
        status, values = "pending", {"last_error": error[:1000], "next_attempt_at": now + backoff_ms(cfg, attempts)}
    with store.begin() as conn:
        conn.execute(insert(alert_attempts).values(outbox_id=row.id, channel=row.channel, ts=now,
                                                   ok=int(error is None), error=None if error is None else error[:1000],
                                                   elapsed_ms=elapsed_ms, sender=sender))
        conn.execute(update(alert_outbox).where(alert_outbox.c.id == row.id, alert_outbox.c.claimed_by == sender)
                     .values(status=status, attempts=attempts, claimed_by=None, claim_until=None, **values))
    return status


def prune(store: Store, now: int, keep_ms: int = RETAIN_MS) -> int:
    """Delete finished outbox rows, attempts and routed events older than `keep_ms` (the outbox must not grow
    forever); an unacknowledged alert keeps its event, which tracks its repeat notices. Returns rows deleted."""
    cutoff = now - keep_ms
    open_alerts = select(alerts.c.id).where(alerts.c.acked == 0)
    with store.begin() as conn:
        n = conn.execute(delete(alert_attempts).where(alert_attempts.c.ts < cutoff)).rowcount
        n += conn.execute(delete(alert_outbox).where(alert_outbox.c.created_at < cutoff,
                                                     alert_outbox.c.status.in_(("sent", "digested", "failed")))).rowcount
        n += conn.execute(delete(notify_events).where(
            notify_events.c.ts < cutoff, notify_events.c.routed == 1,
            or_(notify_events.c.alert_id.is_(None), notify_events.c.alert_id.not_in(open_alerts)))).rowcount
    return int(n)
