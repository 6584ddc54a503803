"""The console defects found in an incident (issue 10), each driven through a real app (Pilot) over a real state.db:
newest rows first, whole alert messages with repeat counts, key hints from the live keymap, money columns that never
truncate, tables that keep refreshing under a modal, and a text summary of an HTML tearsheet."""

from __future__ import annotations

import json
from pathlib import Path

from rich.text import Text
from sqlalchemy import text

from console.app import QuantdeskApp
from console.widgets.keyed_table import KeyedTable
from console.widgets.modals import InfoModal, TypedConfirm
from engine.store import raise_alert
from engine.store.ops import audit
from tests.console.deskdata import FIXED_NOW, build_state
from tests.console.helpers import console_settings, live_heartbeat, run_async, screen_text, shows, wait_until

WIDE = (140, 40)
NETWORK_ERROR = ("order book pull for BTC/USDT failed after 3 retries; last error: ccxt.base.errors.NetworkError: "
                 "binance GET https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=100 timed out [Errno 110]")


def _table(app: QuantdeskApp, wid: str) -> KeyedTable:
    return app.screen.query_one(f"#{wid}", KeyedTable)


def _live(tmp_path: Path, **kwargs):  # noqa: ANN003, ANN202 - (path, store)
    path = tmp_path / "state.db"
    return path, build_state(path, heartbeat_at=live_heartbeat(), **kwargs)


@run_async
async def test_event_tables_show_the_newest_row_first(tmp_path: Path) -> None:
    """A new alert, audit entry and model version appear at the top of their tables, visible without scrolling."""
    path, store = _live(tmp_path, alerts=12)
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=(100, 30)) as pilot:
        desk_alerts = _table(app, "desk-alerts")
        await wait_until(pilot, lambda: desk_alerts.row_count >= 5, what="desk alerts")
        new_id = raise_alert(store, "warning", "feed.stale", "fresh alert on the desk", source="engine")
        await wait_until(pilot, lambda: str(new_id) in desk_alerts.row_keys, what="new desk alert")
        assert desk_alerts.row_keys[0] == str(new_id)
        await shows(pilot, app, "fresh alert on the desk")
        await pilot.press("7")
        audit_table = _table(app, "audit")
        await wait_until(pilot, lambda: audit_table.row_count >= 1, what="audit rows")
        for i in range(40):
            audit(store, "engine", f"fixture.filler{i}", {}, user="fixture")
        await wait_until(pilot, lambda: audit_table.row_count >= 41, what="filler audit rows")
        entry = audit(store, "console", "command.newest_entry", {}, user="fixture")
        await wait_until(pilot, lambda: str(entry) in audit_table.row_keys, what="new audit entry")
        assert audit_table.row_keys[0] == str(entry)
        await shows(pilot, app, "command.newest_entry")
        await pilot.press("4")
        models = _table(app, "models")
        await wait_until(pilot, lambda: models.row_count == 3, what="models")
        with store.begin() as conn:
            conn.execute(text(
                "INSERT INTO models (created_at, strategy, version, path, sha256, features, train_start, train_end, "
                "data_hash, cv_scores, oos_score, lib_versions, estimator, role) VALUES (:t, 'zzz_last_by_name', 1, "
                "'m.joblib', :h, '[]', 0, :t, 'x', '[]', 0.6, '{}', 'LogisticRegression', 'challenger')"),
                {"t": FIXED_NOW, "h": "f" * 64})
        await wait_until(pilot, lambda: models.row_count == 4, what="new model")
        assert models.row_keys[0] == "zzz_last_by_name:1"
    store.dispose()


@run_async
async def test_alert_message_is_shown_whole_with_its_repeat_count(tmp_path: Path) -> None:
    """A long alert is not cut at 40 characters: enter opens its whole message; identical alerts are counted."""
    path, store = _live(tmp_path)
    for _ in range(3):
        raise_alert(store, "critical", "ingest.error", NETWORK_ERROR, {"symbol": "BTC/USDT"}, source="engine")
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("7")
        alerts = _table(app, "alerts")
        await wait_until(pilot, lambda: alerts.row_count == 6, what="alerts (the three repeats are one row)")
        newest = alerts.row_keys[0]
        row = alerts.get_row(newest)
        assert "×3" in [str(c) for c in row], row  # the repeat count of identical rule + message
        assert alerts.selected_key() == newest
        alerts.focus()
        await pilot.press("enter")
        assert isinstance(app.screen, InfoModal)
        await shows(pilot, app, "NetworkError", "timed out [Errno 110]", "3 alerts with this rule and message")
        await pilot.press("escape")
        await pilot.press("1")
        desk_alerts = _table(app, "desk-alerts")
        await wait_until(pilot, lambda: desk_alerts.row_count >= 1, what="desk alerts")
        await shows(pilot, app, "×3")
    store.dispose()


@run_async
async def test_key_hints_follow_the_keymap_and_the_warning_keeps_its_brackets(tmp_path: Path) -> None:
    """With the stop on f12 the top bar says f12 (not ^x); the unknown-key warning shows '[console] keys'."""
    path, store = _live(tmp_path)
    app = QuantdeskApp(console_settings(path, keys={"emergency-stop": "f12", "no.such.action": "x"}))
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await wait_until(pilot, lambda: app.status_polls >= 1, what="status")
        await shows(pilot, app, "f12 STOP", "[console] keys")
        assert "^x" not in screen_text(app)
        await pilot.press("f12")
        await shows(pilot, app, "EMERGENCY STOP")
        await pilot.press("escape")
    store.dispose()


@run_async
async def test_money_columns_and_cap_reason_are_whole_at_140_columns(tmp_path: Path) -> None:
    """At 140x40 every position's uPnL and rPnL, every sizing Size and cap reason are painted in full."""
    path, store = _live(tmp_path)
    with store.begin() as conn:
        conn.execute(text("UPDATE positions SET qty = qty * 40, avg_price = avg_price * 0.9, "
                          "realized_pnl = -123456.78 WHERE symbol = 'BTC/USDT'"))
        conn.execute(text("UPDATE sizing_decisions SET cap_applied = 'max_position_notional', "
                          "final_size = 0.000123456 WHERE symbol = 'SOL/USDT'"))
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=WIDE) as pilot:
        positions = _table(app, "positions")
        await wait_until(pilot, lambda: positions.row_count == 4 and _table(app, "sizing").row_count == 6,
                         what="desk tables")
        await pilot.pause(0.3)
        wanted = []
        for key in positions.row_keys:
            cells = positions.get_row(key)
            wanted += [str(cells[5].plain if isinstance(cells[5], Text) else cells[5]),
                       str(cells[6].plain if isinstance(cells[6], Text) else cells[6])]
        assert "-123,456.78" in wanted
        wanted += ["max_position_notional", "0.000123456"]
        await shows(pilot, app, *wanted)
    store.dispose()


@run_async
async def test_leaderboard_has_the_dsr_column_and_ranks_by_it(tmp_path: Path) -> None:
    """The console's leaderboard shows the DSR (a probability) and its N and ranks as the CLI does."""
    path, store = _live(tmp_path)
    board = [{"instance_id": "macro_trend", "dsr": 0.83, "n_trials": 12, "rank": 1},
             {"instance_id": "quantum_momentum", "dsr": 0.41, "n_trials": 7, "rank": 2}]
    with store.begin() as conn:
        conn.execute(text("UPDATE engine_status SET info = :i"), {"i": json.dumps({"leaderboard": board})})
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("2")
        table = _table(app, "leaderboard")
        await wait_until(pilot, lambda: table.row_keys == ["macro_trend", "quantum_momentum"], what="DSR rank order")
        await shows(pilot, app, "DSR", "N", "0.830", "0.410", "12")
    store.dispose()


@run_async
async def test_trial_sharpe_is_annualised_and_labelled(tmp_path: Path) -> None:
    """The trials table shows the annualised Sharpe (per-bar x sqrt(bars per year)) under an 'ann.' label."""
    path, store = _live(tmp_path)
    with store.begin() as conn:
        conn.execute(text("UPDATE trials SET sharpe = 0.02 WHERE id = 1"))
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("3")
        trials = _table(app, "trials")
        await wait_until(pilot, lambda: trials.row_count == 3, what="trials")
        # the fixture run is 1h: 8,760 bars a year; 0.02 per bar = 1.87 a year
        await shows(pilot, app, "Sharpe ann.", "1.87")
    store.dispose()


@run_async
async def test_tables_keep_refreshing_under_a_modal(tmp_path: Path) -> None:
    """While the resume confirmation is open, closed positions leave the Positions table (not only the header)."""
    path, store = _live(tmp_path)
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=WIDE) as pilot:
        desk = app.screen
        positions = _table(app, "positions")
        await wait_until(pilot, lambda: positions.row_count == 4, what="positions")
        await pilot.press("R")
        assert isinstance(app.screen, TypedConfirm)
        with store.begin() as conn:
            conn.execute(text("UPDATE positions SET qty = 0"))
        await wait_until(pilot, lambda: app.last_status is not None and app.last_status.positions == 0,
                         what="status read pos 0")
        await wait_until(pilot, lambda: desk.query_one("#positions", KeyedTable).row_count == 0, timeout=5,
                         what="positions table refreshed under the modal")
        assert isinstance(app.screen, TypedConfirm)
    store.dispose()


@run_async
async def test_html_tearsheet_preview_is_a_text_summary(tmp_path: Path) -> None:
    """o on an HTML report shows its text (title, DSR line, metric tables) and its path, never HTML source."""
    from engine.backtest.tearsheet import _dsr_line, _page, metrics_block, write_html

    path, store = _live(tmp_path)
    metrics = {"sharpe": 1.42, "dsr": 0.91, "psr": 0.97, "n_trials": 3, "total_return": 0.25, "max_drawdown": -0.08}
    report = write_html(_page("Walk-forward optimisation: quantum_momentum", "3 windows",
                              [("Summary", _dsr_line(metrics) + metrics_block(metrics)),
                               ("Equity", "<svg><text>equity</text><path d='M0 0'/></svg>")]),
                        tmp_path / "reports" / "run1.html")
    with store.begin() as conn:
        conn.execute(text("UPDATE backtest_runs SET report_path = :p"), {"p": str(report)})
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("3")
        await wait_until(pilot, lambda: _table(app, "runs").row_count == 1 and app.screen.report_paths,
                         what="runs")
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, InfoModal), what="report read in a worker")
        await shows(pilot, app, "Walk-forward optimisation: quantum_momentum", "Deflated Sharpe ratio 0.910",
                    "total_return", "25.00%", "run1.html")
        shown = screen_text(app)
        for source in ("<html", "<style", "font-family", "<td>", "<svg", "M0 0"):
            assert source not in shown
    store.dispose()



@run_async
async def test_alert_messages_are_readable_at_80_columns(tmp_path: Path) -> None:
    """At 80x24 (the smallest supported terminal) the alerts table shows each alert's severity, whether it is new, its
    rule and at least the start of its message, not only the columns before it."""
    path, store = _live(tmp_path)
    raise_alert(store, "critical", "ingest.error", NETWORK_ERROR, {"symbol": "BTC/USDT"}, source="engine")
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("7")
        alerts = _table(app, "alerts")
        await wait_until(pilot, lambda: alerts.row_count == 6, what="alerts")
        await shows(pilot, app, "order book pull for BTC", "fixture alert 4", "fixture alert 1", "CRITICAL", "NEW")
    store.dispose()
