"""The console over a desk with two real engine processes ("main" and "beta"), on each store backend: the header
counts the engines, and one press of the stop key (ctrl+x, y) halts and flattens both — one emergency_stop row per
engine, each done by its own engine — and then names beta when beta is killed."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from console.app import QuantdeskApp
from engine.config import load_settings, settings_with
from engine.config_rules import state_target
from engine.risk.trading_state import get_state
from engine.store.schema import commands
from tests.console.desk_helpers import _header, _ready, _stop_open
from tests.console.helpers import run_async, screen_text, wait_until
from tests.store_backends.test_several_engines import ENGINES, TRADE_WAIT_S, Desk, _n_fills


@pytest.mark.slow
@pytest.mark.timeout(600)
@run_async
async def test_one_stop_key_press_halts_every_engine_of_the_desk(backend_url: str, tmp_path: Path) -> None:
    desk = Desk(tmp_path, backend_url)
    try:
        desk.start("main")
        desk.start("beta")
        store = desk.store
        settings = settings_with(load_settings(path=None, environ={}), store=state_target(backend_url))
        app = QuantdeskApp(settings)
        async with app.run_test(size=(140, 40)) as pilot:
            await _ready(pilot, app)
            await wait_until(pilot, lambda: "engines 2/2" in screen_text(app), 30, what="header: engines 2/2")
            for inst in ENGINES.values():
                await wait_until(pilot, lambda i=inst: _n_fills(store, i) > 0, TRADE_WAIT_S, what=f"{inst} trading")
            await pilot.press("ctrl+x")
            assert _stop_open(app)
            await pilot.press("y")
            await wait_until(pilot, lambda: app.completed, 60, what="the stop's result")
            done = app.completed[-1]
            assert done.ok and "[main]" in done.message and "[beta]" in done.message, done.message
            await wait_until(pilot, lambda: _header(app).shown_state == "HALTED", 20, what="header HALTED")
            desk.kill("beta")
            await wait_until(pilot, lambda: "down: beta" in screen_text(app), 30, what="header names beta down")
        with store.connect() as conn:
            rows = conn.execute(select(commands.c.target, commands.c.status, commands.c.source)
                                .where(commands.c.command == "emergency_stop")).all()
        assert sorted(rows) == [("beta", "done", "console"), ("main", "done", "console")], rows
        assert get_state(store).state.value == "HALTED"
    finally:
        desk.stop_all()
