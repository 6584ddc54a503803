"""The off-box alert delivery tables (written by engine/store/notify.py, delivered by engine/monitoring/alerts)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from engine.store.metadata import metadata

# --- off-box alert delivery (engine/store/notify.py writes events; engine/monitoring/alerts delivers them) --------
# Every alert and trading-state change writes a notify event in its own transaction (the transactional outbox); the
# sender routes each event to the configured channels as outbox rows and records every delivery attempt.
notify_events = Table(
    "notify_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),  # alert | state | flatten | engine | escalation | watchdog | summary ...
    Column("severity", String(8), nullable=False),
    Column("rule", String(64), nullable=False, default=""),
    Column("alert_id", Integer),  # the alerts row this event announces (kind alert)
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("values_json", Text, nullable=False, default="{}"),
    Column("channel", Integer),  # only this channel index (a test message); NULL routes by severity to every channel
    Column("routed", Integer, nullable=False, default=0),
    Column("notified", Integer, nullable=False, default=1),  # occurrences of the alert announced so far (repeats)
    Column("notified_at", BigInteger),
    Index("ix_notify_events_routed", "routed", "id"),
    Index("ix_notify_events_alert", "alert_id"),
)

alert_outbox = Table(
    "alert_outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", Integer),  # NULL for a rate-limit digest
    Column("created_at", BigInteger, nullable=False),
    Column("channel", Integer, nullable=False),  # index into alerts.channels
    Column("channel_url", String(512), nullable=False),  # redacted: secrets are never stored
    Column("severity", String(8), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(10), nullable=False),  # pending | sending | sent | held | digested | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("last_error", Text),
    Column("sent_at", BigInteger),
    Column("claimed_by", String(64)),  # engine or watchdog process that is sending it now
    Column("claim_until", BigInteger),
    Index("ix_alert_outbox_due", "channel", "status", "next_attempt_at"),
    Index("ix_alert_outbox_created", "channel", "created_at"),
)

alert_attempts = Table(
    "alert_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("outbox_id", Integer, nullable=False),
    Column("channel", Integer, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("ok", Integer, nullable=False),
    Column("error", Text),
    Column("elapsed_ms", Integer, nullable=False, default=0),
    Column("sender", String(64), nullable=False, default=""),  # process that tried (engine pid / watchdog pid)
    Index("ix_alert_attempts_outbox", "outbox_id"),
)

alert_escalations = Table(
    "alert_escalations", metadata,
    Column("alert_id", Integer, primary_key=True),
    Column("step", Integer, nullable=False),  # 1 = REDUCING, 2 = HALTED
    Column("ts", BigInteger, nullable=False),
    Column("state", String(12), nullable=False),
)
