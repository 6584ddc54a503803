"""Data: coverage, freshness, gaps and quarantined rows per stored series."""

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


class DataScreen(PolledScreen):
    """Per-series data health."""

    MODE: ClassVar[str] = "data"
    POLL_EVERY: ClassVar[float | None] = 5.0

    def compose_body(self) -> ComposeResult:
        """The coverage table."""
        table = KeyedTable(COLUMNS, id="coverage", classes="panel")
        table.border_title = "Coverage, freshness, gaps, quarantine"
        yield table

    def poll(self) -> list[Message]:
        """Read coverage (worker thread; a grouped scan, hence the slower poll)."""
        stale_ms = int(self.qapp.settings.data.stale_after_s * 1000)
        return [TableRefreshed(self.MODE, "coverage", coverage_rows(self.qapp.reader.coverage(), stale_ms))]

    def on_table_refreshed(self, message: TableRefreshed) -> None:
        """Apply the read."""
        self.clear_poll_error()
        self.query_one("#coverage", KeyedTable).sync(message.rows)
