"""Alerts & audit: alerts filtered by severity (and unacknowledged), acknowledge; the audit log below.

The off-box outbox per channel (sent, pending, held by the rate limit, failed) is the alerts panel's subtitle."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable

from console.messages import Rows, TableRefreshed
from console.screens.base import PolledScreen
from console.widgets import fmt
from console.widgets.keyed_table import KeyedTable
from console.widgets.modals import InfoModal
from console.widgets.nav import hint

# What an operator reads first comes first: at 80 columns the message starts at column 50 and the columns after it
# (repeat count, source, id) are what scrolls off; the whole alert, its id and who acknowledged it are on enter.
ALERT_COLUMNS = [("time", "Time", 16), ("sev", "Severity"), ("ack", "Ack", 6), ("rule", "Rule"), ("message", "Message"),
                 ("repeats", "×"), ("source", "Source"), ("id", "Id")]
AUDIT_COLUMNS = [("id", "Id"), ("time", "Time", 16), ("source", "Source"), ("user", "User"), ("action", "Action"),
                 ("details", "Details")]
FILTERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("all", ("info", "warning", "critical")), ("warning+", ("warning", "critical")), ("critical", ("critical",)))


def alert_rows(rows: list[dict[str, Any]]) -> Rows:
    """Format alerts keyed by id, newest first, with the repeat count of their rule + message."""
    return {r["id"]: (fmt.stamp(r["ts"]), fmt.severity(r["severity"]),
                      Text(f"✓ {r['acked_by'] or ''}", style="dim") if r["acked"] else Text("NEW", style="bold"),
                      r["rule"], r["message"], fmt.repeats(r.get("repeats")), r["source"], str(r["id"]))
            for r in rows}  # the read model's order: most recently raised first


def show_alert(screen: Screen, row: dict[str, Any] | None) -> None:
    """Open the detail panel of one alert (nothing when the row has gone since the last read)."""
    if row is None:
        return
    title = f"Alert {row['id']} — {str(row['severity']).upper()} {row['rule']}"
    screen.app.push_screen(InfoModal(title, "", fmt.alert_detail(row), copy_text=str(row["message"])))


def outbox_line(rows: list[dict[str, Any]]) -> str:
    """One line per screen for the off-box outbox: each channel's redacted URL and its message counts."""
    parts = []
    for r in rows:
        url = r["url"] if len(r["url"]) <= 40 else r["url"][:39] + "…"
        counts = " ".join(f"{k} {r[k]}" for k in ("sent", "pending", "held", "failed") if r[k] or k == "sent")
        parts.append(f"[{r['channel']}] {url}: {counts}")
    return ("outbox " + "  ".join(parts)) if parts else ""


def audit_rows(rows: list[dict[str, Any]]) -> Rows:
    """Format audit entries keyed by id."""
    out: Rows = {}
    for r in rows:
        try:
            details = ", ".join(f"{k}={v}" for k, v in json.loads(r["details"] or "{}").items())
        except (ValueError, AttributeError):
            details = str(r["details"])
        out[r["id"]] = (str(r["id"]), fmt.stamp(r["ts"]), r["source"], r["user"], r["action"], details[:300])
    return dict(sorted(out.items(), key=lambda kv: kv[0], reverse=True))  # newest first


class AlertsScreen(PolledScreen):
    """Alerts with a severity filter and acknowledgement, and the audit log."""

    MODE: ClassVar[str] = "alerts"
    POLL_EVERY: ClassVar[float | None] = 1.0
    BINDINGS = [
        Binding("s", "cycle_severity", "Severity", id="alerts.severity",
                tooltip="Cycle the severity filter: all, warning and up, critical"),
        Binding("u", "toggle_unacked", "Unacked", id="alerts.unacked",
                tooltip="Show only unacknowledged alerts (toggle)"),
        Binding("a", "ack", "Ack", id="alerts.ack", tooltip="Acknowledge the selected alert (recorded with your user)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter_index = 0
        self.unacked_only = False
        self.alert_raw: dict[str, dict[str, Any]] = {}

    @property
    def severity_filter(self) -> str:
        """The name of the active severity filter."""
        return FILTERS[self.filter_index][0]

    def compose_body(self) -> ComposeResult:
        """Alerts on top, audit log below."""
        with Vertical(id="alerts-body"):
            yield KeyedTable(ALERT_COLUMNS, id="alerts", classes="panel")
            audit = KeyedTable(AUDIT_COLUMNS, id="audit", classes="panel")
            audit.border_title = "Audit log (who did what, from where)"
            yield audit

    def on_mount(self) -> None:
        """Title shows the filter."""
        self._retitle()

    def _retitle(self) -> None:
        self.query_one("#alerts").border_title = (f"Alerts — severity: {self.severity_filter}"
                                                  + (", unacknowledged only" if self.unacked_only else "")
                                                  + f" — {hint(self, 'table.open', 'enter')}: whole message")

    def poll(self) -> list[Message]:
        """Read alerts (filtered) and the audit log (worker thread)."""
        reader = self.qapp.reader
        severities = FILTERS[self.filter_index][1]
        key = (self.filter_index, self.unacked_only)
        alerts = reader.alerts(severities, self.unacked_only)
        return [TableRefreshed(self.MODE, "alerts", alert_rows(alerts), (key, {str(r["id"]): r for r in alerts})),
                TableRefreshed(self.MODE, "audit", audit_rows(reader.audit())),
                TableRefreshed(self.MODE, "outbox", {}, outbox_line(reader.outbox()))]

    def on_table_refreshed(self, message: TableRefreshed) -> None:
        """Apply a read (an alerts read made under an older filter is dropped)."""
        self.clear_poll_error()
        if message.table == "outbox":
            self.query_one("#alerts").border_subtitle = message.extra
            return
        if message.table == "alerts":
            key, raw = message.extra
            if key != (self.filter_index, self.unacked_only):
                return
            self.alert_raw = raw
        self.query_one(f"#{message.table}", KeyedTable).sync(message.rows)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on an alert opens its whole message, values and repeat count."""
        if event.data_table.id == "alerts":
            show_alert(self, self.alert_raw.get(str(event.row_key.value)))

    def action_cycle_severity(self) -> None:
        """Next severity filter."""
        self.filter_index = (self.filter_index + 1) % len(FILTERS)
        self._retitle()
        self.poll_now()

    def action_toggle_unacked(self) -> None:
        """Toggle unacknowledged-only."""
        self.unacked_only = not self.unacked_only
        self._retitle()
        self.poll_now()

    def action_ack(self) -> None:
        """Acknowledge the selected alert through the control API."""
        key = self.query_one("#alerts", KeyedTable).selected_key()
        if key is None:
            self.notify("no alert selected", severity="warning")
            return
        self.run_command(f"ack alert {key}", lambda c: c.ack_alert(int(key)))
