"""Data: coverage, freshness, gaps and quarantined rows per stored series, and the engine's streams."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.message import Message

from console.messages import Rows, TableRefreshed
from console.screens.base import PolledScreen
from console.widgets import fmt
from console.widgets.keyed_table import KeyedTable

COLUMNS = [("series", "Series"), ("first", "First bar"), ("last", "Last bar"), ("bars", "Bars"),
           ("age", "Age"), ("gaps", "Gaps"), ("quarantined", "Quarantined"), ("reason", "Last quarantine reason")]


def coverage_rows(rows: list[dict[str, Any]], stale_after_ms: int) -> Rows:
    """Format coverage keyed by series; stale ages in red, gaps and quarantine in yellow."""
    out: Rows = {}
    for r in rows:
        age_ms = r["age_ms"]
        age = Text(fmt.age(age_ms), style="bold red" if age_ms is not None and age_ms > stale_after_ms else "green")
        out[r["series"]] = (
            r["series"], fmt.stamp(r["first"]), fmt.stamp(r["last"]), f"{r['bars']:,}", age,
            Text(f"{r['gaps']:,}", style="yellow" if r["gaps"] else ""),
            Text(str(r["quarantined"]), style="yellow" if r["quarantined"] else ""), (r["q_reason"] or "")[:60])
    return out


STREAM_COLUMNS = [("stream", "Stream"), ("connected", "Connected"), ("last", "Last message"), ("rate", "Msgs/min"),
                  ("reconnects", "Reconnects"), ("backfilled", "Gaps backfilled"), ("error", "Last error")]


def stream_rows(rows: list[dict[str, Any]], stale_after_s: float) -> Rows:
    """Format the engine's streams keyed by name; a disconnected or silent stream in red."""
    out: Rows = {}
    for r in rows:
        age = r.get("last_message_age_s")
        silent = age is None or age > stale_after_s
        out[r["stream"]] = (
            r["stream"], Text("yes" if r.get("connected") else "NO", style="green" if r.get("connected") else "bold red"),
            Text("-" if age is None else f"{age:.1f}s ago", style="bold red" if silent else "green"),
            f"{r.get('msgs_per_min', 0):,.0f}", Text(str(r.get("reconnects", 0)),
                                                     style="yellow" if r.get("reconnects") else ""),
            f"{r.get('gaps_backfilled', 0):,}", (r.get("last_error") or "")[:60])
    return out


class DataScreen(PolledScreen):
    """Per-series data health."""

    MODE: ClassVar[str] = "data"
    POLL_EVERY: ClassVar[float | None] = 5.0

    def compose_body(self) -> ComposeResult:
        """The coverage table."""
        table = KeyedTable(COLUMNS, id="coverage", classes="panel")
        table.border_title = "Coverage, freshness, gaps, quarantine"
        yield table
        streams = KeyedTable(STREAM_COLUMNS, id="streams", classes="panel")
        streams.border_title = "Streams (websocket market data)"
        streams.display = False  # shown once the engine streams (a ccxt source with exchange.stream on)
        yield streams

    def poll(self) -> list[Message]:
        """Read coverage (worker thread; a grouped scan, hence the slower poll)."""
        stale_ms = int(self.qapp.settings.data.stale_after_s * 1000)
        streams = stream_rows(self.qapp.reader.streams(), self.qapp.settings.exchange.stream_stale_s)
        return [TableRefreshed(self.MODE, "coverage", coverage_rows(self.qapp.reader.coverage(), stale_ms)),
                TableRefreshed(self.MODE, "streams", streams)]

    def on_table_refreshed(self, message: TableRefreshed) -> None:
        """Apply the read."""
        self.clear_poll_error()
        table = self.query_one(f"#{message.table}", KeyedTable)
        table.sync(message.rows)
        if message.table == "streams":
            table.display = bool(message.rows)
