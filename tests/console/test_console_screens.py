"""Every screen renders its state.db data; tables update by row key; the engine banner; refresh rate; 80x24."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from sqlalchemy import text

from console.app import QuantdeskApp
from console.widgets.chart import SeriesChart
from console.widgets.keyed_table import KeyedTable
from console.widgets.status import EngineBanner, StatusHeader
from engine.clock import now_ms
from tests.console.deskdata import FIXED_NOW, add_scheduler_job, build_state
from tests.console.helpers import console_settings, live_heartbeat, run_async, screen_text, shows, wait_until


def _table(app: QuantdeskApp, wid: str) -> KeyedTable:
    return app.screen.query_one(f"#{wid}", KeyedTable)


@run_async
async def test_every_screen_shows_its_data(tmp_path: Path) -> None:
    """Desk, strategies, research, models, jobs, data and alerts each show the fixture rows from state.db."""
    path = tmp_path / "state.db"
    build_state(path, heartbeat_at=live_heartbeat()).dispose()
    add_scheduler_job(path)
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: _table(app, "positions").row_count == 4, what="positions")
        assert _table(app, "orders").row_keys == ["qd-00002", "qd-00001", "qd-00000"]  # newest first
        await wait_until(pilot, lambda: _table(app, "sizing").row_count == 6, what="sizing")
        assert _table(app, "desk-alerts").row_count == 5
        chart = app.screen.query_one(SeriesChart)
        await wait_until(pilot, lambda: len(chart.points) == 240, what="equity curve")
        header = app.screen.query_one(StatusHeader)
        assert header.shown_state == "ACTIVE" and header.status.mode == "paper"
        await shows(pilot, app, "eq 101,326")
        await pilot.press("2")
        await wait_until(pilot, lambda: _table(app, "leaderboard").row_keys == ["quantum_momentum", "macro_trend"],
                         what="leaderboard ranked by return")
        await pilot.press("3")
        await wait_until(pilot, lambda: _table(app, "runs").row_keys == ["1"] and _table(app, "trials").row_count == 3,
                         what="runs and trials")
        await shows(pilot, app, "0.910", "0.42")  # the DSR and PBO columns (the fixture run is an optuna search)
        await pilot.press("4")
        await wait_until(pilot, lambda: _table(app, "models").row_count == 3, what="models")
        await shows(pilot, app, "champion", "challenger")
        await pilot.press("5")
        await wait_until(pilot, lambda: _table(app, "jobs").row_keys == ["ingest"], what="jobs")
        await shows(pilot, app, "interval[0:00:30]", "42 bars")  # last run ok (the failed one is counted)
        assert "ValueError" not in screen_text(app)
        await pilot.press("6")
        await wait_until(pilot, lambda: _table(app, "coverage").row_count == 3, what="coverage")
        assert "sim:SOL/USDT:1m" in _table(app, "coverage").row_keys
        await shows(pilot, app, "high < low")
        await pilot.press("7")
        await wait_until(pilot, lambda: _table(app, "alerts").row_count == 5 and _table(app, "audit").row_count == 1,
                         what="alerts and audit")


@run_async
async def test_jobs_screen_says_when_each_job_runs_next_to_the_second(tmp_path: Path) -> None:
    """A 30 s interval job due 25 s from now (the console's clock) reads '12:00:25 in 25s' at 80 columns, not a
    minute-resolution date that looks the same for every run of the hour."""
    path = tmp_path / "state.db"
    build_state(path).dispose()
    add_scheduler_job(path, next_run_ms=FIXED_NOW + 25_000)
    app = QuantdeskApp(console_settings(path), clock=lambda: FIXED_NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        await wait_until(pilot, lambda: _table(app, "jobs").row_keys == ["ingest"], what="jobs")
        due = dt.datetime.fromtimestamp((FIXED_NOW + 25_000) / 1000, dt.timezone.utc).strftime("%H:%M:%S")
        await shows(pilot, app, f"{due} in 25s")

@run_async
async def test_tables_update_by_row_key_touching_only_changed_cells(tmp_path: Path) -> None:
    """A filled order changes one cell; a new order adds one row; a canceled order removes its row."""
    path = tmp_path / "state.db"
    store = build_state(path, heartbeat_at=live_heartbeat(), orders=50)
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=(100, 30)) as pilot:
        orders = _table(app, "orders")
        await wait_until(pilot, lambda: orders.row_count == 50, what="orders")
        polls = app.screen.polls
        await wait_until(pilot, lambda: app.screen.polls >= polls + 2, what="quiet polls")
        quiet = orders.updates
        await wait_until(pilot, lambda: app.screen.polls >= polls + 4, what="more quiet polls")
        assert orders.updates == quiet  # nothing changed, nothing touched
        with store.begin() as conn:
            conn.execute(text("UPDATE orders SET filled_qty = 0.05, status = 'partial' WHERE client_order_id='qd-00007'"))
        await wait_until(pilot, lambda: orders.updates > quiet, what="cell update")
        assert orders.updates - quiet == 2  # filled and status cells of one row
        row = orders.get_row("qd-00007")
        assert row[-1] == "partial" and row[-2] == "0.05"
        with store.begin() as conn:
            conn.execute(text("UPDATE orders SET status='canceled' WHERE client_order_id='qd-00003'"))
            conn.execute(text("INSERT INTO orders (client_order_id, instance_id, symbol, side, type, qty, price, "
                              "reduce_only, status, filled_qty, reason, created_at, updated_at) VALUES ('qd-new', "
                              "'macro_trend', 'BTC/USDT', 'sell', 'limit', 1, 61000, 1, 'open', 0, '', :t, :t)"),
                         {"t": FIXED_NOW})
        await wait_until(pilot, lambda: "qd-new" in orders.row_keys and "qd-00003" not in orders.row_keys,
                         what="row added and removed")
        assert orders.row_count == 50
    store.dispose()


@run_async
async def test_engine_not_responding_banner(tmp_path: Path) -> None:
    """A stale heartbeat shows the banner and marks the screen stale; a fresh one clears it."""
    path = tmp_path / "state.db"
    store = build_state(path, heartbeat_at=now_ms() - 30_000)
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=(100, 30)) as pilot:
        banner = app.screen.query_one(EngineBanner)
        await wait_until(pilot, lambda: banner.visible_problem, what="banner")
        await wait_until(pilot, lambda: "ENGINE NOT RESPONDING" in screen_text(app), what="banner painted")
        assert re.search(r"last heartbeat 3\ds ago", screen_text(app))
        assert app.screen.has_class("-stale")
        with store.begin() as conn:
            conn.execute(text("UPDATE engine_status SET heartbeat_at = :h"), {"h": live_heartbeat()})
        await wait_until(pilot, lambda: not banner.visible_problem, what="banner cleared")
        assert not app.screen.has_class("-stale")
    store.dispose()


@run_async
async def test_missing_state_db_shows_the_banner_not_a_crash(tmp_path: Path) -> None:
    """Before the engine has created state.db the console runs and says so."""
    app = QuantdeskApp(console_settings(tmp_path / "not-yet" / "state.db"))
    async with app.run_test(size=(80, 24)) as pilot:
        banner = app.screen.query_one(EngineBanner)
        await wait_until(pilot, lambda: banner.visible_problem, what="banner")
        await wait_until(pilot, lambda: "cannot read state" in screen_text(app), what="banner painted")
        await wait_until(pilot, lambda: app.screen.last_error is not None, what="screen poll error shown")


@run_async
async def test_status_poll_runs_near_4hz_without_overlap(tmp_path: Path, report) -> None:  # noqa: ANN001
    """The self-rearming status poll runs at about refresh_hz (never faster: polls cannot overlap)."""
    path = tmp_path / "state.db"
    build_state(path, heartbeat_at=live_heartbeat()).dispose()
    app = QuantdeskApp(console_settings(path, refresh_hz=4.0))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.status_polls >= 1, what="first poll")
        import time

        start_polls, start = app.status_polls, time.monotonic()
        await pilot.pause(2.0)
        rate = (app.status_polls - start_polls) / (time.monotonic() - start)
        desk_rate = app.screen.polls / (time.monotonic() - start)
    report("console poll rate", {"status_hz": rate, "desk_hz_approx": desk_rate})
    assert 0.5 <= rate <= 4.05  # lower bound loose: the test machine is shared; the upper bound is the point


@run_async
async def test_usable_at_80x24(tmp_path: Path) -> None:
    """At 80x24 the nav, the state badge, the tables and the footer's stop key are all on screen."""
    path = tmp_path / "state.db"
    build_state(path, heartbeat_at=FIXED_NOW).dispose()
    app = QuantdeskApp(console_settings(path), clock=lambda: FIXED_NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: _table(app, "positions").row_count == 4, what="positions")
        await shows(pilot, app, " ACTIVE ", "quantum_momentum")
        await wait_until(pilot, lambda: "^x STOP" in screen_text(app).splitlines()[-1], what="the footer painted")
        lines = screen_text(app).splitlines()
        assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
        assert "^x STOP" in lines[0] and lines[1].startswith(" ACTIVE ")
        assert "Positions" in lines[2] and "Open orders" in "\n".join(lines[8:14])
        assert "^x STOP" in lines[-1]
        assert app.screen.has_class("-short")


@run_async
async def test_data_screen_shows_the_engines_streams(tmp_path: Path) -> None:
    """The data screen lists each stream the engine published (connected, last message, rate, reconnects, gaps);
    the panel stays hidden for a desk that does not stream."""
    import json

    path = tmp_path / "state.db"
    build_state(path, heartbeat_at=live_heartbeat()).dispose()
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("6")
        await wait_until(pilot, lambda: _table(app, "coverage").row_count == 3, what="coverage")
        assert not _table(app, "streams").display
        streams = [{"stream": "ohlcv:BTC/USDT:1m", "connected": True, "last_message_age_s": 0.5, "msgs_per_min": 60,
                    "reconnects": 1, "gaps_backfilled": 4, "last_error": ""},
                   {"stream": "trades:BTC/USDT", "connected": False, "last_message_age_s": 95.0, "msgs_per_min": 0,
                    "reconnects": 5, "gaps_backfilled": 0, "last_error": "NetworkError: refused"}]
        from engine.store import open_store

        store = open_store(f"sqlite:///{path}")
        with store.begin() as conn:
            conn.execute(text("UPDATE engine_status SET info = :info WHERE id = 1"),
                         {"info": json.dumps({"streams": streams, "streams_at": now_ms()})})
        store.dispose()
        await wait_until(pilot, lambda: _table(app, "streams").row_count == 2, what="streams", timeout=15)
        assert _table(app, "streams").display
        await shows(pilot, app, "trades:BTC/USDT", "NetworkError: refused")


@run_async
async def test_strategies_screen_shows_each_challengers_lineage(tmp_path: Path) -> None:
    """A paper challenger started by re-optimisation shows the champion it races and the walk-forward run it came
    from; champions say so (issue 16: the console's strategies screen shows lineage)."""
    path = tmp_path / "state.db"
    store = build_state(path, heartbeat_at=live_heartbeat())
    with store.begin() as conn:
        conn.execute(text("INSERT INTO strategy_instances (id, strategy, stage, status, capital, symbols, timeframe, "
                          "params, created_at, stage_changed_at, updated_at, role, parent_id, origin_run_id) VALUES "
                          "('qm-ch1', 'quantum_momentum', 'paper', 'running', 10000, '[\"BTC/USDT\"]', '1m', '{}', "
                          ":t, :t, :t, 'challenger', 'quantum_momentum', 7)"), {"t": FIXED_NOW})
    store.dispose()
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=(200, 36)) as pilot:
        await pilot.press("2")
        await wait_until(pilot, lambda: _table(app, "leaderboard").row_count == 3, what="three instances")
        await shows(pilot, app, "vs quantum_momentum (wf run #7)", "champion")
