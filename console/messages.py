"""Past-tense events that thread workers post to the UI; handlers on the App and screens own all state.

`can_replace` lets a flood of refreshes collapse into the newest one (Toolong's pattern) so a slow terminal never
builds a backlog of stale frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from engine.control.snapshots import StatusSnapshot

Rows = dict[Any, tuple[Any, ...]]


class _Refreshed(Message):
    """Base for poll results: a newer one of the same type replaces a queued older one."""

    def can_replace(self, message: Message) -> bool:
        """Merge floods: the newest refresh wins."""
        return type(message) is type(self)


@dataclass
class StatusRefreshed(_Refreshed):
    """The engine status and trading state were read."""

    status: StatusSnapshot


@dataclass
class StatusUnavailable(_Refreshed):
    """state.db could not be read (engine not started yet, file missing, locked)."""

    error: str


@dataclass
class DeskRefreshed(_Refreshed):
    """The desk's tables were read; None means that part did not change."""

    positions: Rows | None
    orders: Rows | None
    sizing: Rows | None
    alerts: Rows | None
    equity: list[tuple[int, float]] | None
    alert_details: dict[str, dict[str, Any]] | None = None  # the raw alerts by row key, for the detail panel


@dataclass
class TableRefreshed(_Refreshed):
    """One named table of a screen was read and formatted."""

    screen: str
    table: str
    rows: Rows
    extra: Any = None

    def can_replace(self, message: Message) -> bool:
        """Only replace a refresh of the same table."""
        return isinstance(message, TableRefreshed) and (message.screen, message.table) == (self.screen, self.table)


@dataclass
class CommandCompleted(Message):
    """A control command finished (or failed to reach the engine)."""

    command: str
    ok: bool
    message: str
    stop: int = 0  # an emergency stop's number (StopFlow.stop_id); 0 for other commands


@dataclass
class StopProgress(Message):
    """The emergency stop advanced: 'persisted' (HALTED is in state.db) or 'claimed' (the engine has taken it)."""

    stage: str
    stop: int = 0  # which stop (StopFlow.stop_id): a superseded stop's progress moves nothing


@dataclass
class ReportRead(Message):
    """A run's report file was read and summarised as text (in a worker: a tearsheet can be megabytes)."""

    run: str
    path: str
    text: str


@dataclass
class PollFailed(Message):
    """A screen's poll failed; the screen shows the error instead of frozen numbers."""

    screen: str
    error: str
