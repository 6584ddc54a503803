"""The emergency stop, driven through a real Textual app (Pilot) over a real state.db and the real control API: the
header says HALTED only once the engine has the stop, the key works from modals and inputs, n/esc send nothing, and
one key press writes one command row."""

from __future__ import annotations

import time

from sqlalchemy import text

from console.app import QuantdeskApp
from console.stop_flow import STOP_FAILED, STOP_PENDING, StopFlow, StopPhase
from console.widgets.keyed_table import KeyedTable
from console.widgets.modals import ConfirmKey, StopConfirmBar, TypedConfirm
from engine.config import LifecycleConfig
from engine.control.commands import CommandProcessor, EngineHooks
from tests.console.desk_helpers import _header, _ready, _rows, _scalar, _stop_open  # noqa: F401 - shared helpers
from tests.console.helpers import console_settings, run_async, screen_text, shows, wait_until

SIZE = (100, 30)


@run_async
async def test_emergency_stop_header_shows_halted_only_after_engine_confirms(desk_state) -> None:
    """ctrl+x, y: the command is queued from the console; HALTED appears only once the engine has executed it."""
    path, store = desk_state
    from engine.control.client import ControlClient

    app = QuantdeskApp(console_settings(path),
                       control_factory=lambda: ControlClient(path, source="console", timeout_s=20.0))
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("ctrl+x")
        assert _stop_open(app)
        await pilot.press("y")
        await wait_until(pilot, lambda: _scalar(store, "SELECT COUNT(*) FROM commands WHERE command='emergency_stop'"),
                         what="emergency_stop command row")
        polls = app.status_polls
        await wait_until(pilot, lambda: app.status_polls >= polls + 3, what="three status polls")
        # Queued, not executed by the engine: the header must not claim HALTED (the client may already have
        # persisted HALTED as a gate, shown as HALTING, but FLATTEN has not run).
        assert _header(app).shown_state in ("ACTIVE", "HALTING")
        await shows(pilot, app, "STOP SENT")
        flattened: dict = {}

        def flatten() -> dict:
            with store.begin() as conn:
                canceled = conn.execute(text("UPDATE orders SET status='canceled' WHERE status='open'")).rowcount
                closed = conn.execute(text("UPDATE positions SET qty=0 WHERE qty != 0")).rowcount
            flattened.update(canceled=canceled, closed=closed)
            return dict(flattened)

        engine = CommandProcessor(store, EngineHooks(cancel_all=lambda _i: 0, flatten=flatten, retrain=str,
                                                     stop=lambda: None), 50, app.settings.lifecycle)
        assert engine.poll_once() == 1
        await wait_until(pilot, lambda: _header(app).shown_state == "HALTED", what="header HALTED")
        await wait_until(pilot, lambda: "HALTED" in screen_text(app) and "STOP SENT" not in screen_text(app),
                         what="HALTED painted, pending marker gone")
        await wait_until(pilot, lambda: app.completed, what="command result")
        assert app.completed[-1].ok, app.completed[-1].message
    row = _rows(store, "SELECT source, status FROM commands WHERE command='emergency_stop'")[0]
    assert row == {"source": "console", "status": "done"}
    assert _scalar(store, "SELECT COUNT(*) FROM orders WHERE status IN ('new','open','partial')") == 0
    assert _scalar(store, "SELECT COUNT(*) FROM positions WHERE qty != 0") == 0
    assert _scalar(store, "SELECT COUNT(*) FROM audit_log WHERE source='console' AND action='command.emergency_stop'") == 1


@run_async
async def test_header_shows_halted_when_the_engine_takes_the_stop_not_when_flatten_ends(desk_state,
                                                                                       monkeypatch) -> None:
    """The stop runs on the console's pre-started stop lane; the engine's claim (while its FLATTEN still runs) is
    what turns the header to HALTED, and table refreshes are held while the stop waits for the engine."""
    import threading

    import console.app

    # Pilot's press waits for the app to go idle (up to ~2 s here), longer than the hold's safety bound
    monkeypatch.setattr(console.app, "STOP_HOLD_S", 30.0)

    from engine.control.client import ControlClient

    path, store = desk_state
    threads: list[str] = []

    class RecordingClient(ControlClient):
        def emergency_stop(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
            threads.append(threading.current_thread().name)
            return super().emergency_stop(*args, **kwargs)

        def engine_alive(self) -> bool:
            # Widen the gap between the client's HALTED write and its queuing of the command: status polls in it
            # read HALTED with no pending stop, which must not pass for the engine's confirmation.
            time.sleep(0.8)
            return super().engine_alive()

    release = threading.Event()

    def slow_flatten() -> dict:
        release.wait(20)
        return {"canceled": 0, "closed": 0, "positions_left": 0}

    engine = CommandProcessor(store, EngineHooks(cancel_all=lambda _i: 0, flatten=slow_flatten, retrain=str,
                                                 stop=lambda: None), 20, LifecycleConfig())
    app = QuantdeskApp(console_settings(path),
                       control_factory=lambda: RecordingClient(path, source="console", timeout_s=30.0))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await _ready(pilot, app)
            await pilot.press("ctrl+x", "y")
            await wait_until(pilot, lambda: _scalar(store, "SELECT state FROM trading_state") == "HALTED",
                             what="HALTED written by the console")
            polls = app.status_polls
            await wait_until(pilot, lambda: app.status_polls >= polls + 2, what="status polls before the queuing")
            assert _header(app).shown_state == "HALTING" and app.stop_in_flight()
            await wait_until(pilot, lambda: _scalar(store, "SELECT COUNT(*) FROM commands WHERE status='pending'"),
                             what="the stop queued")
            assert app.stop_in_flight() and _header(app).shown_state == "HALTING"
            polls = app.screen.polls
            await pilot.pause(0.6)  # the desk would poll twice at 4 Hz; it holds while the stop is in flight
            assert app.screen.polls == polls
            engine.start()  # now the engine takes the stop (woken by nothing: it polls at start)
            await wait_until(pilot, lambda: _header(app).shown_state == "HALTED", what="header HALTED")
            assert not release.is_set() and not app.completed  # FLATTEN is still running in the engine
            assert threads == ["stop-lane"]
            assert not app.stop_in_flight()  # claimed: the desk refreshes again
            await shows(pilot, app, "HALTED is stored")  # the overlay said so once the write was done
            polls = app.screen.polls
            await wait_until(pilot, lambda: app.screen.polls > polls, what="desk polls resumed")
            release.set()
            await wait_until(pilot, lambda: app.completed, what="command result")
            assert app.completed[-1].ok, app.completed[-1].message
            await wait_until(pilot, lambda: not app.screen.query(StopConfirmBar), what="overlay closed")
    finally:
        release.set()
        engine.stop()
    assert _scalar(store, "SELECT status FROM commands WHERE command='emergency_stop'") == "done"


@run_async
async def test_emergency_stop_from_a_modal(offline_state) -> None:
    """The priority binding works on top of another modal (here the strategy pause confirmation)."""
    path, store = offline_state
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await _ready(pilot, app)
        await wait_until(pilot, lambda: app.screen.query_one(KeyedTable).row_count == 2, what="leaderboard")
        await pilot.press("p")
        assert isinstance(app.screen, ConfirmKey)
        await pilot.press("ctrl+x")
        assert _stop_open(app)
        await pilot.press("ctrl+x")  # a second press while the stop modal is open does not stack another
        assert len(app.screen.query(StopConfirmBar)) == 1
        await pilot.press("y")
        await wait_until(pilot, lambda: _header(app).shown_state == "HALTED", what="HALTED")
        assert isinstance(app.screen, ConfirmKey)  # back on the pause confirmation, which was not answered
        await pilot.press("n")
    assert _scalar(store, "SELECT state FROM trading_state") == "HALTED"
    assert _scalar(store, "SELECT status FROM strategy_instances WHERE id='quantum_momentum'") == "running"
    sources = {r["source"] for r in _rows(store, "SELECT source FROM audit_log WHERE action LIKE 'command.%'")}
    assert sources == {"console"}
    assert _scalar(store, "SELECT COUNT(*) FROM commands WHERE command='emergency_stop' AND status='pending'") == 1


@run_async
async def test_emergency_stop_from_a_focused_input(offline_state) -> None:
    """ctrl+x is not swallowed by a focused Input (the typed-confirmation box of resume)."""
    path, store = offline_state
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("R")
        assert isinstance(app.screen, TypedConfirm)
        assert app.focused is not None and app.focused.id == "typed-input"
        await pilot.press("R", "E", "S")
        await pilot.press("ctrl+x")
        assert _stop_open(app)
        await pilot.press("y")
        await wait_until(pilot, lambda: _header(app).shown_state == "HALTED", what="HALTED")
        assert app.screen.query_one("#typed-input").value == "RES"
        assert app.focused is not None and app.focused.id == "typed-input"  # focus went back to the input
    assert _scalar(store, "SELECT state FROM trading_state") == "HALTED"


@run_async
async def test_emergency_stop_cancel_sends_nothing(offline_state) -> None:
    """n and escape close the stop modal without writing a command."""
    path, store = offline_state
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        for key in ("n", "escape"):
            await pilot.press("ctrl+x")
            assert _stop_open(app)
            await pilot.press(key)
            assert not _stop_open(app)
        await pilot.pause(0.3)
    assert _scalar(store, "SELECT COUNT(*) FROM commands") == 0
    assert _scalar(store, "SELECT state FROM trading_state") == "ACTIVE"


@run_async
async def test_stop_confirmation_is_modal(offline_state) -> None:
    """While the stop confirmation is open, screen and app keys do nothing: no screen switch, no quit, no action."""
    path, store = offline_state
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        desk = app.screen
        await pilot.press("ctrl+x")
        assert _stop_open(app)
        for key in ("2", "7", "q", "f1", "R"):
            await pilot.press(key)
        await pilot.pause(0.1)
        assert app.screen is desk and _stop_open(app) and app.is_running
        await pilot.press("ctrl+x")  # pressing the stop key again keeps the one confirmation
        assert len(app.screen.query(StopConfirmBar)) == 1
        await pilot.press("n")
        assert not _stop_open(app)
        await pilot.press("2")
        await pilot.pause(0.1)
        assert app.screen is not desk  # keys work again once it is closed
    assert _scalar(store, "SELECT COUNT(*) FROM commands") == 0


@run_async
async def test_one_stop_key_press_is_one_command_row_and_one_audit_entry(offline_state) -> None:
    """With no engine running, ctrl+x y stores HALTED and queues one emergency_stop for the engine's next start:
    one command row, one command audit entry, one state change (no extra halt() written after the client had already
    persisted HALTED), and the stop flow went IDLE -> CONFIRMING -> SENT -> PERSISTED -> DONE."""
    path, store = offline_state
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("ctrl+x")
        assert app.stop_flow.phase is StopPhase.CONFIRMING
        await pilot.press("y")
        await wait_until(pilot, lambda: app.completed, what="command result")
        assert app.completed[-1].ok, app.completed[-1].message
        assert "queued" in app.completed[-1].message
        await wait_until(pilot, lambda: _header(app).shown_state == "HALTED", what="HALTED")
        assert app.stop_flow.history == [StopPhase.IDLE, StopPhase.CONFIRMING, StopPhase.SENT, StopPhase.PERSISTED,
                                         StopPhase.DONE]
        assert app.pending_command == "" and not app.stop_in_flight()
    assert _rows(store, "SELECT command, status FROM commands") == [{"command": "emergency_stop", "status": "pending"}]
    actions = [r["action"] for r in _rows(store, "SELECT action FROM audit_log WHERE source = 'console'")]
    assert len([a for a in actions if a.startswith("command.")]) == 1, actions
    assert _scalar(store, "SELECT state FROM trading_state") == "HALTED"


def test_stop_flow_refuses_moves_its_table_does_not_allow() -> None:
    """The state table: a late 'claimed' after the result, or a second y, changes nothing; a stop ends in DONE or
    FAILED and the next stop key starts from there."""
    clock = [0.0]
    flow = StopFlow(hold_s=2.0, clock=lambda: clock[0])
    assert not flow.move(StopPhase.SENT)  # y without the confirmation open
    assert flow.move(StopPhase.CONFIRMING) and flow.move(StopPhase.SENT)
    assert flow.pending_text == STOP_PENDING and flow.in_flight() and flow.unconfirmed
    clock[0] = 2.5
    assert not flow.in_flight()  # the table hold is bounded even if the engine never answers
    assert flow.move(StopPhase.PERSISTED) and flow.move(StopPhase.FAILED)
    assert not flow.move(StopPhase.CLAIMED)  # a late claim after the failure is ignored
    assert flow.pending_text == STOP_FAILED and not flow.unconfirmed
    assert flow.move(StopPhase.CONFIRMING)  # the operator can stop again
    assert not flow.move(StopPhase.DONE)


@run_async
async def test_the_stop_key_asks_again_while_a_stop_waits_for_the_engine(desk_state) -> None:
    """A stop that waits for the engine (HALTED stored, the engine has not answered) does not lock the stop key: it
    opens a second confirmation; n goes back to the waiting stop (its marker stays), y sends a second stop (a second
    command row); the first stop's late result moves nothing and the flow ends once the engine answers the second."""
    path, store = desk_state
    from engine.control.client import ControlClient

    app = QuantdeskApp(console_settings(path),
                       control_factory=lambda: ControlClient(path, source="console", timeout_s=20.0))
    stops = "SELECT COUNT(*) FROM commands WHERE command='emergency_stop'"
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("ctrl+x", "y")
        await wait_until(pilot, lambda: app.stop_flow.phase is StopPhase.PERSISTED and _scalar(store, stops) == 1,
                         what="the first stop persisted and queued")
        await pilot.press("escape")  # close its panel; the stop goes on waiting
        await wait_until(pilot, lambda: not app.screen.query(StopConfirmBar), what="panel closed")
        await pilot.press("ctrl+x")
        assert _stop_open(app), "the stop key did nothing while a stop was waiting"
        assert app.pending_command == STOP_PENDING  # the waiting stop is still shown
        await pilot.press("n")
        assert app.stop_flow.phase is StopPhase.PERSISTED and app.pending_command == STOP_PENDING
        await pilot.press("ctrl+x")
        assert _stop_open(app)
        await pilot.press("y")
        await wait_until(pilot, lambda: _scalar(store, stops) == 2, what="the second stop's command row")
        engine = CommandProcessor(store, EngineHooks(cancel_all=lambda _i: 0, flatten=dict, retrain=str,
                                                     stop=lambda: None), 50, app.settings.lifecycle)
        assert engine.poll_once() == 2
        await wait_until(pilot, lambda: len([c for c in app.completed if c.command == "emergency stop"]) == 2,
                         what="both results")
        await wait_until(pilot, lambda: app.stop_flow.phase is StopPhase.DONE and _header(app).shown_state == "HALTED",
                         what="the flow ends with the engine's HALTED")
        assert app.pending_command == "" and app.stop_flow.stop_id == 2
