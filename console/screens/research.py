"""Research: backtest runs and their trials with Sharpe, deflated Sharpe (DSR) and, for walk-forward runs, the
probability of backtest overfitting (PBO); open a run's tearsheet."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable

from console.messages import ReportRead, Rows, TableRefreshed
from console.screens.base import PolledScreen
from console.widgets import fmt
from console.widgets.keyed_table import KeyedTable
from console.widgets.modals import InfoModal
from console.widgets.nav import hint
from console.widgets.report_text import report_summary

RUN_COLUMNS = [("id", "Run"), ("created", "Created", 16), ("kind", "Kind"), ("strategy", "Strategy"), ("tf", "TF"),
               ("sharpe", "Sharpe ann."), ("dsr", "DSR"), ("pbo", "PBO"), ("trials", "Trials"), ("lookahead", "Lookahead"),
               ("report", "Tearsheet")]
TRIAL_COLUMNS = [("id", "Trial"), ("phase", "Phase"), ("window", "Win"), ("sharpe", "Sharpe ann."),
                 ("sharpe_bar", "per bar"), ("n", "Obs"), ("skew", "Skew"), ("kurt", "Kurt"), ("params", "Params")]


def run_rows(rows: list[dict[str, Any]]) -> Rows:
    """Format backtest runs keyed by id."""
    return {r["id"]: (
        str(r["id"]), fmt.stamp(r["created_at"]), r["kind"], r["strategy"], r["timeframe"], fmt.num(r["sharpe"], 2),
        fmt.num(r["dsr"], 3), fmt.num(r.get("pbo"), 2), str(r["n_trials"] if r["n_trials"] is not None else r["trial_rows"]),
        {1: "ok", 0: "FAIL"}.get(r["lookahead_ok"], "—"), "yes" if r["report_path"] else "—") for r in rows}


def trial_rows(rows: list[dict[str, Any]], timeframe: str | None) -> Rows:
    """Format trials keyed by id; the registry's per-bar Sharpe is shown annualised (as the runs' Sharpe is)."""
    out: Rows = {}
    for r in rows:
        try:
            params = ", ".join(f"{k}={v}" for k, v in json.loads(r["params"] or "{}").items())
        except (ValueError, AttributeError):
            params = str(r["params"])
        out[r["id"]] = (str(r["id"]), r["phase"], "—" if r["window"] is None else str(r["window"]),
                        fmt.num(fmt.annualised(r["sharpe"], timeframe), 2), fmt.num(r["sharpe"], 4),
                        str(r["n_obs"] or "—"), fmt.num(r["skew"], 2),
                        fmt.num(r["kurtosis"], 2), params)
    return out


class ResearchScreen(PolledScreen):
    """Runs on top, the selected run's trials below."""

    MODE: ClassVar[str] = "research"
    POLL_EVERY: ClassVar[float | None] = 2.0
    BINDINGS = [
        Binding("o", "open_tearsheet", "Tearsheet", id="research.tearsheet",
                tooltip="Show the selected run's tearsheet path and its text (the path can be copied from there)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.selected_run: int | None = None
        self.report_paths: dict[str, str] = {}

    def compose_body(self) -> ComposeResult:
        """Runs and trials."""
        with Vertical(id="research-body"):
            runs = KeyedTable(RUN_COLUMNS, id="runs", classes="panel")
            runs.border_title = "Backtest runs"
            yield runs
            trials = KeyedTable(TRIAL_COLUMNS, id="trials", classes="panel")
            trials.border_title = "Trials of the selected run"
            yield trials

    def poll(self) -> list[Message]:
        """Read runs and the selected run's trials (worker thread)."""
        reader = self.qapp.reader
        runs = reader.backtest_runs()
        out: list[Message] = [TableRefreshed(self.MODE, "runs", run_rows(runs),
                                             {str(r["id"]): r["report_path"] or "" for r in runs})]
        run_id = self.selected_run if self.selected_run is not None else (runs[0]["id"] if runs else None)
        if run_id is not None:
            timeframe = next((r["timeframe"] for r in runs if r["id"] == run_id), None)
            out.append(TableRefreshed(self.MODE, "trials", trial_rows(reader.trials(int(run_id)), timeframe), run_id))
        return out

    def on_table_refreshed(self, message: TableRefreshed) -> None:
        """Apply runs or trials."""
        self.clear_poll_error()
        table = self.query_one(f"#{message.table}", KeyedTable)
        table.sync(message.rows)
        if message.table == "runs":
            self.report_paths = message.extra
            key = table.selected_key()  # a new run arriving under a cursor on top is the selected one now
            if self.selected_run is not None and key is not None and int(key) != self.selected_run:
                self.selected_run = int(key)
                self.poll_now()
        else:
            self.query_one("#trials").border_title = f"Trials of run {message.extra}"

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Moving in the runs table selects whose trials are shown."""
        if event.data_table.id == "runs" and event.row_key.value is not None:
            run = int(str(event.row_key.value))
            if run != self.selected_run:
                self.selected_run = run
                self.poll_now()

    def action_open_tearsheet(self) -> None:
        """Read the selected run's tearsheet in a thread worker (a report can be megabytes); show it when read."""
        key = self.query_one("#runs", KeyedTable).selected_key()
        path = self.report_paths.get(key or "", "")
        if not path:
            self.notify("the selected run has no tearsheet", severity="warning")
            return
        copy_key = hint(self, "info.copy", "c")
        self.run_worker(lambda: self.post_message(ReportRead(str(key), path, report_summary(path, copy_key))),
                        thread=True, exclusive=True, group="report", exit_on_error=False, name="read-report")

    def on_report_read(self, message: ReportRead) -> None:
        """Show the report's path and text summary."""
        self.app.push_screen(InfoModal(f"Tearsheet of run {message.run}", message.path, message.text))
