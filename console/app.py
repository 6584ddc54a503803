"""The quantdesk operator console: a Textual app with one mode per screen, over the control API and state.db.

The App owns the engine status (polled in a thread worker with a self-rearming timer), the emergency stop (a
priority binding active on every screen and modal) and sending control commands (thread workers that only post
`CommandCompleted`). The emergency stop runs on its own pre-started thread (console/stop_lane.py) and reports its
progress as it goes. Screens own their tables. Nothing here blocks the UI thread.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Callable, Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer

from console.app_bindings import APP_BINDINGS
from console.messages import CommandCompleted, StatusRefreshed, StatusUnavailable, StopProgress
from engine.control.reader import StateReader
from engine.control.snapshots import StateUnavailable, StatusSnapshot
from console.screens.base import PolledScreen
from console.screens.registry import SCREEN_CLASSES
from console.stop_flow import StopFlow, StopPhase
from console.stop_lane import StopLane
from console.terminal_watch import controlling_fd, terminal_lost
from console.widgets.modals import StopConfirmBar, TypedConfirm
from engine.clock import now_ms
from engine.config import Settings

STOP_REASON = "operator emergency stop (console)"
STOP_HOLD_S = 2.0  # longest that screens hold their table refreshes while a stop waits for the engine


class QuantdeskApp(App):
    """Operator console over one state.db."""

    CSS_PATH = "app.tcss"
    TITLE = "quantdesk"
    MODES = dict(SCREEN_CLASSES)
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]  # 80x24 terminals get a tighter desk grid
    # under 100 columns positions take the full width; 120+ columns: full-width order and sizing tables too
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-medium"), (120, "-wide")]
    BINDINGS = APP_BINDINGS

    def __init__(self, settings: Settings, *, clock: Callable[[], int] = now_ms,
                 control_factory: Callable[[], Any] | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.state_target = settings.store.url or settings.store.path
        self.clock = clock
        self.poll_interval = 1.0 / max(0.2, settings.console.refresh_hz)
        timeframe = settings.data.timeframes[0] if settings.data.timeframes else "1m"
        exchange = settings.data.source.split(":", 1)[1] if settings.data.source.startswith("ccxt:") else "sim"
        self.reader = StateReader(self.state_target, clock=clock, exchange=exchange, timeframe=timeframe,
                                  heartbeat_timeout_s=settings.runtime.heartbeat_timeout_s)
        self.stop_event = threading.Event()
        self.last_status: StatusSnapshot | None = None
        self.last_status_error: str | None = None
        self.stop_flow = StopFlow(STOP_HOLD_S)
        self.status_polls = 0
        self.completed: list[CommandCompleted] = []
        self._control_factory = control_factory or self._default_control
        self._control: Any = None
        self._control_lock = threading.Lock()
        self._status_timer: Timer | None = None
        self.stop_lane: StopLane | None = None
        self.unknown_keys: list[str] = []
        self.key_hints: dict[str, str] = {}  # binding id -> the key(s) the live keymap gives it, as shown
        if settings.console.theme:
            self.theme = settings.console.theme

    # --- lifecycle ------------------------------------------------------------------------------------------------
    def on_mount(self) -> None:
        """Apply the user's keymap, show the desk and start the status poll."""
        from console.keymap import build_keymap, key_hints

        keymap, self.unknown_keys = build_keymap(self.settings.console.keys)
        if keymap:
            self.set_keymap(keymap)
        self.key_hints = key_hints(keymap, self.get_key_display)
        if self.unknown_keys:  # markup off: '[console]' is the config's section name, not a style tag
            self.notify(f"unknown action ids in [console] keys: {', '.join(self.unknown_keys)}", severity="warning",
                        timeout=30, markup=False)  # a config mistake should stay readable, not flash by
        self.stop_lane = StopLane()
        tty = controlling_fd()
        if tty is not None:
            self.set_interval(1.0, lambda: self._watch_terminal(tty), name="terminal-watch")
        self.switch_mode("desk")
        self._arm_status(0.01)
        self.run_worker(self._warm_control, thread=True, group="control", exit_on_error=False, name="control-warmup")

    def _warm_control(self) -> None:
        """Build the control client now, off the UI thread, so the first emergency stop pays no set-up cost.

        Not for a state.db that does not exist: a front end never creates one (the banner says it is missing)."""
        from engine.store.db import sqlite_path

        path = sqlite_path(self.settings.store_url())
        if path is not None and not path.exists():
            return
        try:
            _ = self.control
        except Exception as exc:  # noqa: BLE001 - reported when a command needs it; the desk still renders
            if not self.stop_event.is_set():
                self.post_message(CommandCompleted("control API", False, f"{type(exc).__name__}: {exc}"))

    def _watch_terminal(self, fd: int) -> None:
        """Exit when the terminal has hung up (the engine keeps running, as on a normal quit)."""
        if terminal_lost(fd):
            self.stop_event.set()
            self.exit(return_code=1)  # nothing is printed: there is no terminal to print to

    async def action_quit(self) -> None:
        """Stop polling threads, then exit; the engine is left running."""
        self.stop_event.set()
        await super().action_quit()

    def on_unmount(self) -> None:
        """Make sure no worker re-arms after exit."""
        self.stop_event.set()
        if self.stop_lane is not None:
            self.stop_lane.close()
        self.reader.close()

    # --- status poll ----------------------------------------------------------------------------------------------
    def _arm_status(self, delay: float | None = None) -> None:
        if self.stop_event.is_set():
            return
        if delay is None:
            delay = self.poll_interval  # a pending stop is followed by its own thread (StopProgress), not by polls
        if self._status_timer is not None:
            self._status_timer.stop()  # one pending poll at most: extra arms (commands, stop key) collapse the chain
        self._status_timer = self.set_timer(max(0.01, delay), self._status_worker, name="status-poll")

    @work(thread=True, exclusive=True, exit_on_error=False, group="status-poll")
    def _status_worker(self) -> None:
        if self.stop_event.is_set():
            return
        try:
            message: StatusRefreshed | StatusUnavailable = StatusRefreshed(self.reader.status())
        except StateUnavailable as exc:
            message = StatusUnavailable(str(exc))
        if not self.stop_event.is_set():
            self.post_message(message)

    def on_status_refreshed(self, message: StatusRefreshed) -> None:
        """Keep the latest status, clear a pending stop once the engine's HALTED is stored, update headers."""
        self.status_polls += 1
        if self.last_status is None and self._control is None:
            self.run_worker(lambda: self.control, thread=True, group="control", exit_on_error=False,
                            name="control-warmup")  # open the control store now, not when the stop key is pressed
        self.last_status, self.last_status_error = message.status, None
        if self.stop_flow.phase is StopPhase.FAILED and self._shown(message.status).confirmed_state == "HALTED":
            self.stop_flow.move(StopPhase.IDLE)  # the failure marker goes once the desk reads HALTED after all
        self._push_status()
        self._arm_status()

    def _shown(self, status: StatusSnapshot) -> StatusSnapshot:
        """The status as the header may show it. Between the client's HALTED write and its queuing of the stop
        command, a status read finds HALTED and no pending stop; that is not the engine's confirmation, so until the
        engine claims the stop (or the command ends) a live engine's HALTED reads HALTING."""
        if self.stop_flow.unconfirmed and status.state == "HALTED" and status.engine_alive and not status.pending_stops:
            return dataclasses.replace(status, pending_stops=1)
        return status

    def on_status_unavailable(self, message: StatusUnavailable) -> None:
        """Show the 'engine not responding' banner instead of frozen numbers."""
        self.status_polls += 1
        self.last_status_error = message.error
        self._push_status()
        self._arm_status()

    def _push_status(self) -> None:
        status = self._shown(self.last_status) if self.last_status is not None else None
        for screen in self.screen_stack:
            if isinstance(screen, PolledScreen) and screen.is_mounted:
                screen.show_status(status, self.last_status_error, self.pending_command)

    # --- control commands -----------------------------------------------------------------------------------------
    def _default_control(self) -> Any:
        from engine.control.client import ControlClient

        # poll_s 20 ms: the command thread waits for the engine's result without hogging the GIL that the UI
        # thread and the status poll need to show HALTED.
        return ControlClient.from_settings(self.settings, "console", poll_s=0.02)

    @property
    def control(self) -> Any:
        """The control API client (created on first use, in a worker thread)."""
        with self._control_lock:
            if self._control is None:
                self._control = self._control_factory()
            return self._control

    def send_command(self, label: str, call: Callable[[Any], Any]) -> None:
        """Run a typed call on the ControlClient (`lambda c: c.resume(True)`) in a thread worker; the result arrives
        as CommandCompleted."""
        self.run_worker(lambda: self._command_thread(label, call), thread=True, group="control",
                        exit_on_error=False, name=f"command-{label}")

    def _command_thread(self, label: str, call: Callable[[Any], Any], stop: int = 0) -> None:
        try:
            client = self.control
            result = call(client)
            ok, text = bool(result.ok), str(result.message)  # offline: HALTED is stored, the stop queued
        except Exception as exc:  # noqa: BLE001 - any failure is reported to the operator, never a crash
            ok, text = False, f"{type(exc).__name__}: {exc}"
        if not self.stop_event.is_set():
            self.post_message(CommandCompleted(label, ok, text, stop))

    def on_command_completed(self, message: CommandCompleted) -> None:
        """Tell the operator what the engine answered; refresh the screen."""
        self.completed = [*self.completed[-49:], message]
        if message.command == "emergency stop":
            # the command row exists now: status reads say what the engine did
            moved = self.stop_flow.advance(message.stop, StopPhase.DONE if message.ok else StopPhase.FAILED)
            if moved and self.stop_flow.phase is not StopPhase.CONFIRMING:  # never close a newer confirmation
                for bar in self.screen.query(StopConfirmBar):
                    bar.close()
        self.notify(f"{message.command}: {message.message}", severity="information" if message.ok else "error",
                    timeout=6 if message.ok else 15)
        self._push_status()
        self._arm_status(0.01)
        if isinstance(self.screen, PolledScreen):
            self.screen.poll_now()

    # --- emergency stop and resume --------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """While the stop confirmation is open only the stop key acts at app level (the overlay is modal)."""
        return action == "emergency_stop" or not self.screen.query(StopConfirmBar)

    def action_emergency_stop(self) -> None:
        """Open the one-key confirmation over any screen or modal; a second press while it is open does nothing.
        While a stop still waits for the engine the key asks again: y sends a second stop (the first goes on)."""
        screen = self.screen
        if screen.query(StopConfirmBar):
            bar = screen.query_one(StopConfirmBar)
            if bar.sent and self.stop_flow.ask():  # its "STOP SENT" panel asks again: y sends a second stop
                bar.ask()
            bar.focus()
            return
        if not self.stop_flow.ask():
            return
        bar = StopConfirmBar(self._stop_answered, restore_focus=self.focused)
        screen.mount(bar)
        bar.focus()

    def _stop_answered(self, confirmed: bool) -> None:
        """y sends HALT + FLATTEN at once (the overlay closes after); n/escape send nothing."""
        stop = self.stop_flow.answer(confirmed)
        if not confirmed:
            waiting = "; the earlier stop is still waiting for the engine" if self.stop_flow.unconfirmed else ""
            self.notify(f"emergency stop cancelled; nothing was sent{waiting}")
            self._push_status()
            return
        if stop is None:
            return

        def run() -> None:
            self._command_thread("emergency stop",
                                 lambda c: c.emergency_stop(STOP_REASON,
                                                            progress=lambda stage: self._stop_progress(stage, stop)),
                                 stop)

        lane = self.stop_lane
        if lane is not None and lane.alive:
            lane.submit(run)
        else:  # not mounted yet (cannot happen from a key press) or the lane died: an ordinary worker still works
            self.run_worker(run, thread=True, group="control", exit_on_error=False, name="command-emergency_stop")
        self._push_status()

    @property
    def pending_command(self) -> str:
        """The header's stop marker ('' when no stop is pending or failed)."""
        return self.stop_flow.pending_text

    def stop_in_flight(self) -> bool:
        """True from the stop key until the engine has taken the stop (bounded by STOP_HOLD_S)."""
        return self.stop_flow.in_flight()

    def _stop_progress(self, stage: str, stop: int = 0) -> None:
        """Called on the stop's thread as the control client advances; the UI hears it as StopProgress."""
        if not self.stop_event.is_set():
            self.post_message(StopProgress(stage, stop))

    def on_stop_progress(self, message: StopProgress) -> None:
        """'persisted': the overlay says HALTED is stored and the header reads HALTING. 'claimed': the engine has
        taken the stop, so HALTED is engine-confirmed and the header shows it now, without waiting for a status read.

        The engine runs a stop's HALT before its FLATTEN on one thread, and HALTED was committed by this console
        before the command was queued, so 'claimed' is the same fact the status poll reports as pending_stops == 0.
        """
        target = {"persisted": StopPhase.PERSISTED, "claimed": StopPhase.CLAIMED}.get(message.stage)
        if target is None or not self.stop_flow.advance(message.stop, target):
            return
        if self.stop_flow.phase is StopPhase.CONFIRMING:  # a second confirmation is open over this stop: leave it
            self._push_status()
            return
        if message.stage == "persisted":
            for bar in self.screen.query(StopConfirmBar):
                bar.show_persisted()
            if self.last_status is not None and self.last_status.state != "HALTED":
                # HALTED is stored (brokers already refuse new orders); the header reads HALTING until the engine
                # takes the stop (see _shown), instead of the stale ACTIVE of the last status read.
                self.last_status = dataclasses.replace(self.last_status, state="HALTED")
                self._push_status()
            return
        if self.last_status is not None:
            self.last_status = dataclasses.replace(self.last_status, state="HALTED", pending_stops=0,
                                                   flattening=max(1, self.last_status.flattening))
        self._push_status()
        self.call_after_refresh(self._after_stop_painted)  # paint HALTED first; reads and table refreshes after

    def _after_stop_painted(self) -> None:
        """Read the status again and refresh the tables that were held while the stop was in flight."""
        self._arm_status(0.01)
        if isinstance(self.screen, PolledScreen):
            self.screen.poll_now()

    def confirm_resume(self) -> None:
        """Resume needs the word RESUME typed; then the control API moves HALTED/REDUCING -> ACTIVE."""
        def answered(ok: bool | None) -> None:
            if ok:
                self.send_command("resume", lambda c: c.resume(True))

        self.push_screen(TypedConfirm("RESUME TRADING", "Move the desk back to ACTIVE: strategies may open new "
                                      "positions again.", "RESUME"), callback=answered)

    def key_hint(self, binding_id: str, fallback: str) -> str:
        """The key(s) of a binding as the live keymap has them ('^x', 'f12', 'n / esc'), for hints in text."""
        return self.key_hints.get(binding_id, fallback)

    def action_toggle_help(self) -> None:
        """Show or hide the key panel (every binding with its description)."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    # --- command palette ------------------------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette lists every console action of the app and the current screen, plus Textual's own."""
        yield from super().get_system_commands(screen)
        seen: set[str] = set()
        for active in screen.active_bindings.values():
            binding = active.binding
            if binding.system or not binding.id or binding.id in seen or active.node not in (self, screen):
                continue
            seen.add(binding.id)
            yield SystemCommand(f"{binding.description} ({binding.id})", binding.tooltip or binding.description,
                                self._palette_callback(binding.action, active.node))

    def _palette_callback(self, action: str, node: Any) -> Callable[[], Any]:
        async def run() -> None:
            await self.run_action(action, node)

        return run

