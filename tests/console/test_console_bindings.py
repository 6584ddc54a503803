"""Every console binding, driven through a real Textual app (Pilot) over a real state.db and the real control API."""

from __future__ import annotations

import json
from pathlib import Path


from console.app import QuantdeskApp
from console.keymap import all_bindings
from console.widgets.keyed_table import KeyedTable
from console.widgets.modals import ConfirmKey, InfoModal, TypedConfirm
from tests.console.deskdata import build_state
from tests.console.desk_helpers import _header, _ready, _rows, _scalar, _stop_open  # noqa: F401 - shared helpers
from tests.console.helpers import console_settings, run_async, shows, wait_until

SIZE = (100, 30)


@run_async
async def test_resume_needs_the_typed_word(tmp_path: Path) -> None:
    """From HALTED, R opens a typed confirmation; a wrong word is refused; RESUME moves the desk to ACTIVE."""
    path = tmp_path / "state.db"
    store = build_state(path, heartbeat_at=None, state="HALTED")
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        assert _header(app).shown_state == "HALTED"
        await pilot.press("R")
        await pilot.press(*"resume", "enter")
        assert isinstance(app.screen, TypedConfirm)
        assert "exactly" in str(app.screen.query_one("#typed-error").render())
        await pilot.press("escape")
        assert not isinstance(app.screen, TypedConfirm)
        assert _scalar(store, "SELECT COUNT(*) FROM commands") == 0
        await pilot.press("R")
        await pilot.press(*"RESUME", "enter")
        await wait_until(pilot, lambda: _header(app).shown_state == "ACTIVE", what="ACTIVE")
    assert _scalar(store, "SELECT state FROM trading_state") == "ACTIVE"
    assert _scalar(store, "SELECT changed_by FROM trading_state") == "console"
    store.dispose()


@run_async
async def test_strategy_actions_pause_resume_promote_demote(offline_state) -> None:
    """p/r/P/D each ask y/n and then go through the control API; n sends nothing."""
    path, store = offline_state
    app = QuantdeskApp(console_settings(path))
    status = "SELECT status FROM strategy_instances WHERE id='quantum_momentum'"
    stage = "SELECT stage FROM strategy_instances WHERE id='quantum_momentum'"
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await _ready(pilot, app)
        table = app.screen.query_one(KeyedTable)
        await wait_until(pilot, lambda: table.row_count == 2, what="leaderboard")
        assert table.selected_key() == "quantum_momentum"
        await pilot.press("p", "n")
        await pilot.pause(0.2)
        assert _scalar(store, "SELECT COUNT(*) FROM commands") == 0
        await pilot.press("p", "y")
        await wait_until(pilot, lambda: _scalar(store, status) == "paused", what="paused")
        await pilot.press("r", "y")
        await wait_until(pilot, lambda: _scalar(store, status) == "running", what="running")
        await pilot.press("P", "y")
        await wait_until(pilot, lambda: len(app.completed) >= 3, what="promote result")
        assert app.completed[-1].command == "promote quantum_momentum"
        assert not app.completed[-1].ok  # the fixture strategy has no paper track record: the gates refuse
        await pilot.press("D", "y")
        await wait_until(pilot, lambda: _scalar(store, stage) == "research", what="demoted")
    commands = [r["command"] for r in _rows(store, "SELECT command FROM commands ORDER BY id")]
    assert commands == ["pause_strategy", "resume_strategy", "promote", "demote"]


@run_async
async def test_models_retrain_and_rollback(offline_state) -> None:
    """t queues a retrain for the selected model's strategy; b, y asks for a rollback, refused with its reason here
    (the fixture's former champions were never promoted)."""
    path, store = offline_state
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await _ready(pilot, app)
        await wait_until(pilot, lambda: app.screen.query_one(KeyedTable).row_count == 3, what="registry")
        await pilot.press("t", "y")
        await wait_until(pilot, lambda: _scalar(store, "SELECT COUNT(*) FROM commands WHERE command='retrain_now'"),
                         what="retrain command")
        args = json.loads(_scalar(store, "SELECT args FROM commands WHERE command='retrain_now'"))
        assert args == {"strategy": "quantum_momentum"}
        await pilot.press("b")
        assert isinstance(app.screen, ConfirmKey)
        await pilot.press("y")
        await wait_until(pilot, lambda: any(c.command == "rollback quantum_momentum" for c in app.completed),
                         what="rollback result")
        done = [c for c in app.completed if c.command == "rollback quantum_momentum"][-1]
        assert not done.ok and "no previous champion" in done.message
        assert _scalar(store, "SELECT role FROM models WHERE version = 2") == "champion"


@run_async
async def test_research_tearsheet(offline_state) -> None:
    """o opens the selected run's tearsheet path with a preview; c copies the path; escape closes."""
    path, _store = offline_state
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await _ready(pilot, app)
        await wait_until(pilot, lambda: app.screen.query_one("#trials", KeyedTable).row_count == 3, what="trials")
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, InfoModal), what="report read in a worker")
        await shows(pilot, app, "Tearsheet run 1")
        await pilot.press("c")
        assert app.clipboard.endswith("run1.md")
        await pilot.press("escape")
        assert not isinstance(app.screen, InfoModal)


@run_async
async def test_alerts_filter_and_ack(offline_state) -> None:
    """s cycles the severity filter, u shows unacknowledged only, a acknowledges the selected alert."""
    path, store = offline_state
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("7")
        await _ready(pilot, app)
        alerts = app.screen.query_one("#alerts", KeyedTable)
        await wait_until(pilot, lambda: alerts.row_count == 5, what="all alerts")
        await pilot.press("s")
        await wait_until(pilot, lambda: alerts.row_count == 3, what="warning and up")
        await pilot.press("s")
        await wait_until(pilot, lambda: alerts.row_count == 1, what="critical only")
        await pilot.press("s")
        await wait_until(pilot, lambda: alerts.row_count == 5, what="all again")
        first = alerts.selected_key()
        await pilot.press("a")
        await wait_until(pilot, lambda: _scalar(store, f"SELECT acked FROM alerts WHERE id={first}") == 1,
                         what="acked")
        await pilot.press("u")
        await wait_until(pilot, lambda: alerts.row_count == 4, what="unacked only")
        assert first not in alerts.row_keys
        audit = app.screen.query_one("#audit", KeyedTable)
        await wait_until(pilot, lambda: audit.row_count >= 2, what="audit rows")
    assert _scalar(store, f"SELECT acked_by FROM alerts WHERE id={first}") is not None


@run_async
async def test_screen_keys_help_focus_and_quit(offline_state) -> None:
    """1..7 switch screens, f1 toggles the key panel, f cycles desk tables, q quits and stops polling."""
    path, _store = offline_state
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        for key, mode in zip("2345671", ("strategies", "research", "models", "jobs", "data", "alerts", "desk")):
            await pilot.press(key)
            assert app.current_mode == mode
            assert app.screen.id == f"screen-{mode}"
        await pilot.press("f1")
        assert app.screen.query("HelpPanel")
        await pilot.press("f1")
        assert not app.screen.query("HelpPanel")
        first = app.focused
        await pilot.press("f")
        assert app.focused is not first and isinstance(app.focused, KeyedTable)
        await pilot.press("q")
        await pilot.pause(0.1)
    assert app.stop_event.is_set()
    assert app.return_code == 0


@run_async
async def test_keymap_remaps_and_reports_unknown_ids(offline_state) -> None:
    """[console] keys remaps by binding id (f12 for the stop); unknown ids are named in a warning."""
    path, _store = offline_state
    app = QuantdeskApp(console_settings(path, keys={"emergency-stop": "f12", "screen.alerts": "f7",
                                                    "no.such.action": "x"}))
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        assert app.unknown_keys == ["no.such.action"]
        assert any("no.such.action" in n.message for n in app._notifications)
        await pilot.press("ctrl+x")
        assert not _stop_open(app)
        await pilot.press("f12")
        assert _stop_open(app)
        await pilot.press("escape")
        await pilot.press("f7")
        assert app.current_mode == "alerts"


@run_async
async def test_command_palette_lists_console_actions(offline_state) -> None:
    """ctrl+p lists the screen's and the app's actions by description and id, and runs them."""
    path, _store = offline_state
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await _ready(pilot, app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for needed in ("Pause (strategies.pause)", "Promote (strategies.promote)", "STOP (emergency-stop)",
                       "Alerts (screen.alerts)"):
            assert needed in titles
        await pilot.press("ctrl+p")
        await pilot.press(*"Alerts (screen")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.current_mode == "alerts", what="palette ran the action")


def test_every_binding_has_id_tooltip_and_unique_id() -> None:
    """Posting's rule: every Binding has an id and a tooltip; ids are unique per scope."""
    bindings = all_bindings()
    assert len(bindings) >= 25
    for b in bindings:
        assert b.id and b.tooltip, b
    pairs = [(b.scope, b.id) for b in bindings]
    assert len(pairs) == len(set(pairs))
    stop = [b for b in bindings if b.id == "emergency-stop"][0]
    assert stop.key == "ctrl+x" and stop.scope == "app"
