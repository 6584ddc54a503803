"""The shared screen shell: nav bar, status header, engine banner, footer and a self-rearming poll.

A poll is one thread worker (`exclusive`, own group) that reads state.db and only posts messages; the handler updates
widgets and re-arms a one-shot timer, so polls never overlap however slow the disk or the terminal. Polling runs while
the screen is in the showing mode, on top or under a modal; a screen of another mode stops its timer.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static

from console.messages import PollFailed
from engine.control.snapshots import StateUnavailable, StatusSnapshot
from console.widgets.modals import PausedByStopConfirm
from console.widgets.nav import NavBar
from console.widgets.status import EngineBanner, StatusHeader, engine_problem

if TYPE_CHECKING:
    from console.app import QuantdeskApp
    from engine.control.client import CommandResult, ControlClient


class PollFinished(Message):
    """A screen's poll worker ended (successfully or not); time to re-arm the timer."""


class PolledScreen(PausedByStopConfirm, Screen):
    """Base for every console screen: header, banner, nav, footer and a non-overlapping poll loop."""

    MODE: ClassVar[str] = ""
    POLL_EVERY: ClassVar[float | None] = None  # seconds; None means the app's refresh rate

    def __init__(self) -> None:
        super().__init__(id=f"screen-{self.MODE}")
        self._timer: Timer | None = None
        self._active = False
        self.polls = 0
        self.last_error: str | None = None

    @property
    def qapp(self) -> "QuantdeskApp":
        """The console app (typed)."""
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        """Shell around the screen body."""
        yield NavBar(self.MODE)
        yield StatusHeader()
        yield EngineBanner()
        yield from self.compose_body()
        yield Static("", id="poll-error", classes="poll-error")
        yield Footer()

    def compose_body(self) -> ComposeResult:
        """The screen's own widgets (override)."""
        yield from ()

    # --- status (pushed by the app) -------------------------------------------------------------------------------
    def show_status(self, status: StatusSnapshot | None, error: str | None, pending: str) -> None:
        """Update header and banner from the app's latest status read (nothing on a screen being torn down: a status
        read can land while the app exits, after the screen's widgets are gone)."""
        headers = self.query(StatusHeader)
        if not headers or not self.query(EngineBanner):
            return
        header = headers.first()
        if status is not None and (header.status is None or
                                   dataclasses.replace(header.status, now=0) != dataclasses.replace(status, now=0)):
            header.status = status  # only a real change repaints the header (the read time alone does not)
        header.pending = pending
        problem = engine_problem(status, error)
        self.query_one(EngineBanner).show_problem(problem)
        self.set_class(problem is not None, "-stale")

    # --- poll loop ------------------------------------------------------------------------------------------------
    def on_screen_resume(self) -> None:
        """Start polling when shown."""
        self._active = True
        app = self.qapp
        self.show_status(app.last_status, app.last_status_error, app.pending_command)
        self._arm(0.01)

    def on_screen_suspend(self) -> None:
        """Keep polling under a modal (its tables stay as live as the header); stop once another mode shows."""
        if not self._in_current_mode():
            self._stop_polling()

    def _in_current_mode(self) -> bool:
        """True while this screen is in the showing mode's stack (on top, or under a modal)."""
        return self.is_attached and self in self.app.screen_stack

    def _stop_polling(self) -> None:
        self._active = False
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _arm(self, delay: float | None = None) -> None:
        if not self._active or self.qapp.stop_event.is_set():
            return
        if self._timer is not None:
            self._timer.stop()
        wait = max(0.01, delay) if delay is not None else (self.POLL_EVERY or self.qapp.poll_interval)
        self._timer = self.set_timer(wait, self._start_poll, name=f"poll-{self.MODE}")

    def _start_poll(self) -> None:
        self._timer = None
        if not self._active:
            return
        if not self._in_current_mode():  # switched to another mode while a modal was open
            self._stop_polling()
            return
        if self.qapp.stop_in_flight():
            # An emergency stop waits for the engine: hold table refreshes (at most STOP_HOLD_S) so the UI thread
            # is free to paint HALTED the moment the engine takes it, instead of repainting tables the FLATTEN churns.
            # The app calls poll_now() when the engine has taken the stop.
            self._arm()
            return
        self._poll_worker()

    def poll_now(self) -> None:
        """Refresh as soon as possible (after a command, or a filter change)."""
        self._arm(0.01)

    @work(thread=True, exclusive=True, exit_on_error=False, group="screen-poll")
    def _poll_worker(self) -> None:
        stop = self.qapp.stop_event
        try:
            if stop.is_set():
                return
            messages = self.poll()
            if not stop.is_set():
                for message in messages:
                    self.post_message(message)
        except StateUnavailable as exc:
            if not stop.is_set():
                self.post_message(PollFailed(self.MODE, str(exc)))
        finally:
            if not stop.is_set():
                self.post_message(PollFinished())

    def poll(self) -> list[Message]:
        """Read state.db (runs in a worker thread) and return messages to post (override)."""
        return []

    def on_poll_finished(self, _message: PollFinished) -> None:
        """Count the poll and schedule the next one."""
        self.polls += 1
        self._arm()

    def on_poll_failed(self, message: PollFailed) -> None:
        """Show the read error under the tables instead of leaving frozen numbers unexplained."""
        self.last_error = message.error
        self.query_one("#poll-error", Static).update(f"cannot read state: {message.error[:120]}")
        self.add_class("-poll-error")

    def clear_poll_error(self) -> None:
        """Hide the read error after a successful poll."""
        if self.last_error is not None:
            self.last_error = None
            self.remove_class("-poll-error")

    def run_command(self, label: str, call: Callable[[ControlClient], CommandResult]) -> None:
        """Send a control command (a typed ControlClient call) through the app (never from this thread)."""
        self.qapp.send_command(label, call)
