"""Jobs: the engine's APScheduler jobs with next run, last result and errors."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.message import Message

from console.messages import Rows, TableRefreshed
from console.screens.base import PolledScreen
from console.widgets import fmt
from console.widgets.keyed_table import KeyedTable

COLUMNS = [("job", "Job"), ("trigger", "Trigger"), ("next", "Next run"), ("last", "Last run"), ("took", "Took"),
           ("result", "Last result"), ("runs", "Runs"), ("errors", "Errors"), ("error", "Last error")]


def job_rows(rows: list[dict[str, Any]], now: int) -> Rows:
    """Format jobs keyed by job id; the next run relative to `now` (the console's clock, epoch ms)."""
    out: Rows = {}
    for r in rows:
        nxt = r.get("next_run")
        started, finished = r.get("started_at"), r.get("finished_at")
        ok = r.get("ok")
        result = Text("ok", style="green") if ok == 1 else Text("ERROR", style="bold red") if ok == 0 else \
            Text("running" if started else "—", style="dim")
        out[r["job_id"]] = (
            r["job_id"], r.get("trigger") or "—", fmt.due(nxt * 1000, now) if nxt else "paused/none",
            fmt.stamp(started), fmt.age(finished - started) if (started and finished) else "—",
            result if ok != 1 else Text(str(r.get("result") or "ok")[:40], style="green"),
            str(r.get("runs") or 0), str(r.get("errors") or 0), (r.get("error") or "")[:60])
    return out


class JobsScreen(PolledScreen):
    """Scheduler jobs merged from the job store and the job_runs history."""

    MODE: ClassVar[str] = "jobs"
    POLL_EVERY: ClassVar[float | None] = 1.0

    def compose_body(self) -> ComposeResult:
        """The jobs table."""
        table = KeyedTable(COLUMNS, id="jobs", classes="panel")
        table.border_title = "Scheduler jobs"
        yield table

    def poll(self) -> list[Message]:
        """Read jobs (worker thread)."""
        return [TableRefreshed(self.MODE, "jobs", job_rows(self.qapp.reader.jobs(), self.qapp.clock()))]

    def on_table_refreshed(self, message: TableRefreshed) -> None:
        """Apply the read."""
        self.clear_poll_error()
        self.query_one("#jobs", KeyedTable).sync(message.rows)
