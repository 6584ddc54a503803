"""Models: the registry per strategy with champion/challenger roles; retrain now; roll back the champion."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message

from console.messages import Rows, TableRefreshed
from console.screens.base import PolledScreen
from console.widgets import fmt
from console.widgets.keyed_table import KeyedTable
from console.widgets.modals import ConfirmKey

COLUMNS = [("strategy", "Strategy"), ("version", "Ver"), ("role", "Role"), ("created", "Created", 16),
           ("oos", "OOS"), ("cv", "CV mean"), ("estimator", "Estimator"), ("sha", "sha256"), ("promoted", "Promoted")]
ROLE_STYLE = {"champion": "bold green", "challenger": "yellow", "retired": "dim", "rejected": "red"}


def model_rows(rows: list[dict[str, Any]]) -> Rows:
    """Format registry rows keyed by strategy:version, newest first across strategies (a new version is on top)."""
    rows = sorted(rows, key=lambda r: (r["created_at"] or 0, r["version"]), reverse=True)
    return {f"{r['strategy']}:{r['version']}": (
        r["strategy"], str(r["version"]), Text(r["role"], style=ROLE_STYLE.get(r["role"], "")),
        fmt.stamp(r["created_at"]), fmt.num(r["oos_score"], 3), fmt.num(r["cv_mean"], 3), r["estimator"] or "—",
        (r["sha256"] or "")[:12], fmt.stamp(r["promoted_at"])) for r in rows}


class ModelsScreen(PolledScreen):
    """The model registry with retrain and rollback actions."""

    MODE: ClassVar[str] = "models"
    POLL_EVERY: ClassVar[float | None] = 2.0
    BINDINGS = [
        Binding("t", "retrain", "Retrain now", id="models.retrain",
                tooltip="Run the selected strategy's retraining job now; asks to confirm"),
        Binding("b", "rollback", "Rollback", id="models.rollback",
                tooltip="Restore the previous champion of the selected strategy; asks to confirm"),
    ]

    def compose_body(self) -> ComposeResult:
        """The registry table."""
        table = KeyedTable(COLUMNS, id="models", classes="panel")
        table.border_title = "Model registry (champion / challenger)"
        yield table

    def poll(self) -> list[Message]:
        """Read the registry (worker thread)."""
        return [TableRefreshed(self.MODE, "models", model_rows(self.qapp.reader.models()))]

    def on_table_refreshed(self, message: TableRefreshed) -> None:
        """Apply the read."""
        self.clear_poll_error()
        self.query_one("#models", KeyedTable).sync(message.rows)

    def _selected_strategy(self) -> str | None:
        key = self.query_one("#models", KeyedTable).selected_key()
        if key is None:
            self.notify("no model selected", severity="warning")
            return None
        return key.rsplit(":", 1)[0]

    def action_retrain(self) -> None:
        """Confirm, then ask the engine to retrain the selected strategy's meta-model now."""
        strategy = self._selected_strategy()
        if strategy is None:
            return
        self.app.push_screen(
            ConfirmKey(f"Retrain {strategy} now?", "The engine runs the retraining job; a new version enters the "
                       "registry as challenger."),
            lambda ok: ok and self.run_command(f"retrain {strategy}", lambda c: c.retrain_now(strategy)))

    def action_rollback(self) -> None:
        """Confirm, then restore the previous champion through the control API (audited; refused if none verifies)."""
        strategy = self._selected_strategy()
        if strategy is None:
            return
        self.app.push_screen(
            ConfirmKey(f"Roll back {strategy}?", "Retire the current champion and restore the previous one."),
            lambda ok: ok and self.run_command(f"rollback {strategy}", lambda c: c.rollback_model(strategy)))
