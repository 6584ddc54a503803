"""Pausing a paused strategy in the console says so instead of asking y/n again."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from console.app import QuantdeskApp
from console.widgets.keyed_table import KeyedTable
from console.widgets.modals import ConfirmKey
from tests.console.deskdata import build_state
from tests.console.helpers import console_settings, run_async, wait_until


@run_async
async def test_pause_on_a_paused_strategy_does_not_ask_again(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = build_state(path, heartbeat_at=None)
    with store.begin() as conn:
        conn.execute(text("UPDATE strategy_instances SET status = 'paused' WHERE id = 'quantum_momentum'"))
    app = QuantdeskApp(console_settings(path))
    notes: list[str] = []
    app.notify = lambda message, **kw: notes.append(str(message))  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        table = app.screen.query_one(KeyedTable)
        await wait_until(pilot, lambda: table.row_count == 2 and table.selected_key() == "quantum_momentum",
                         what="leaderboard")
        await wait_until(pilot, lambda: getattr(app.screen, "_status", {}).get("quantum_momentum") == "paused",
                         what="status read")
        await pilot.press("p")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfirmKey)
        assert any("already paused" in n for n in notes)
        await pilot.press("r")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmKey)  # resuming a paused one still asks
    with store.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM commands")).scalar() == 0
    store.dispose()
