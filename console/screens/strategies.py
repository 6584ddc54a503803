"""Strategies: the leaderboard, lifecycle stage, drift vs the backtest twin; pause/resume/promote/demote."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message

from console.messages import Rows, TableRefreshed
from console.screens.base import PolledScreen
from console.widgets import fmt
from console.widgets.keyed_table import KeyedTable
from console.widgets.modals import ConfirmKey

COLUMNS = [("rank", "#"), ("id", "Instance", 16), ("strategy", "Strategy"), ("stage", "Stage"), ("status", "Status"),
           ("lineage", "Lineage"), ("dsr", "DSR"), ("n_trials", "N"), ("capital", "Capital"), ("equity", "Equity"), ("ret", "Return"),
           ("dd", "DD"), ("fills", "Fills"), ("drift_n", "Twins"), ("drift", "Drift"), ("drift_abs", "|Drift|")]


def lineage(row: dict[str, Any]) -> str:
    """'champion', or which champion a challenger races and the walk-forward run that produced it."""
    if row.get("role") != "challenger":
        return str(row.get("role") or "champion")
    run = row.get("origin_run_id")
    return f"vs {row.get('parent_id') or '?'}" + (f" (wf run #{run})" if run is not None else "")


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The CLI's order: the engine's deflated-Sharpe rank first; instances it has not ranked yet by return after."""
    return sorted(rows, key=lambda r: (r.get("rank") is None, r.get("rank") or 0, r["ret"] is None, -(r["ret"] or 0)))


def leaderboard_rows(rows: list[dict[str, Any]]) -> Rows:
    """Format the leaderboard keyed by instance id, best first (DSR = deflated Sharpe ratio of the paper/live record,
    a probability; N = the trials it is deflated by)."""
    return {r["id"]: (
        str(i + 1), r["id"], r["strategy"], r["stage"], r["status"], lineage(r), fmt.num(r.get("dsr"), 3),
        "—" if r.get("n_trials") is None else str(r["n_trials"]), fmt.money(r["capital"]), fmt.money(r["equity"]),
        fmt.pct(r["ret"], signed=True), fmt.pct(r["drawdown"]), str(r["fills"]), str(r["drift_n"]),
        fmt.num(r["drift_mean"], 2), fmt.num(r["drift_abs"], 2)) for i, r in enumerate(ranked(rows))}


class StrategiesScreen(PolledScreen):
    """Strategy instances ranked by DSR with their lineage (champions and the paper challengers re-optimisation
    started against them), with lifecycle actions behind a one-key confirmation."""

    MODE: ClassVar[str] = "strategies"
    POLL_EVERY: ClassVar[float | None] = 1.0
    BINDINGS = [
        Binding("p", "act('pause_strategy')", "Pause", id="strategies.pause",
                tooltip="Pause the selected strategy (cancels its open orders); asks to confirm"),
        Binding("r", "act('resume_strategy')", "Resume", id="strategies.resume",
                tooltip="Resume the selected paused strategy; asks to confirm"),
        Binding("P", "act('promote')", "Promote", id="strategies.promote",
                tooltip="Promote the selected strategy one stage if its gates pass; asks to confirm"),
        Binding("D", "act('demote')", "Demote", id="strategies.demote",
                tooltip="Demote the selected strategy one stage; asks to confirm"),
    ]
    _VERBS = {"pause_strategy": "Pause", "resume_strategy": "Resume", "promote": "Promote", "demote": "Demote"}

    def compose_body(self) -> ComposeResult:
        """The leaderboard."""
        table = KeyedTable(COLUMNS, id="leaderboard", classes="panel")
        table.border_title = "Leaderboard by deflated Sharpe (DSR); drift = live fill vs backtest twin, in bps"
        yield table

    def poll(self) -> list[Message]:
        """Read the leaderboard (worker thread)."""
        return [TableRefreshed(self.MODE, "leaderboard", leaderboard_rows(self.qapp.reader.strategies()))]

    def on_table_refreshed(self, message: TableRefreshed) -> None:
        """Apply the read (the rows arrive in rank order and the table keeps it)."""
        self.clear_poll_error()
        self._status = {key: row[4] for key, row in message.rows.items()}  # for "already paused" without a y/n
        self.query_one("#leaderboard", KeyedTable).sync(message.rows)

    def action_act(self, command: str) -> None:
        """Confirm, then send the lifecycle command for the selected instance."""
        instance = self.query_one("#leaderboard", KeyedTable).selected_key()
        if instance is None:
            self.notify("no strategy selected", severity="warning")
            return
        verb = self._VERBS[command]
        already = {"pause_strategy": "paused", "resume_strategy": "running"}.get(command)
        if already is not None and getattr(self, "_status", {}).get(instance) == already:
            self.notify(f"{instance} is already {already}; nothing to do")
            return

        def answered(ok: bool | None) -> None:
            if not ok:
                return
            calls = {"promote": lambda c: c.promote(instance, True),
                     "demote": lambda c: c.demote(instance, "operator demote (console)"),
                     "pause_strategy": lambda c: c.pause_strategy(instance),
                     "resume_strategy": lambda c: c.resume_strategy(instance)}
            self.run_command(f"{verb.lower()} {instance}", calls[command])

        self.app.push_screen(ConfirmKey(f"{verb} {instance}?", f"{verb} strategy instance {instance} through the "
                                        "engine's control API. The result appears as a notification."), answered)
