"""The header and `quantdesk status` show the desk's equity, not main's: on a desk with two engines (main 10,500 and
beta 4,700 at their latest snapshots) the header reads eq 15,200, the day P&L sums both engines' P&L since the market
day opened (+500 - 300), and the drawdown is taken against the sum of the engines' peaks (11,000 + 5,000). Before,
the header read main's portfolio only (eq 10,500, day +500, dd 4.55%). Real Textual Pilot, each store backend."""

from __future__ import annotations

import json
import os

from sqlalchemy import insert
from typer.testing import CliRunner

from console.app import QuantdeskApp
from console.cli import _register_all, app as cli_app
from engine.clock import now_ms
from engine.config import load_settings, settings_with
from engine.config_rules import state_target
from engine.store import open_store
from engine.store.engines import insert_status_row
from engine.store.schema import equity_snapshots
from tests.console.desk_helpers import _ready
from tests.console.helpers import run_async, screen_text, wait_until

DAY = 86_400_000


def _seed(url: str) -> None:
    store = open_store(url)
    now = now_ms()
    day = now - now % DAY - 10 * DAY  # a market day of the simulator's clock, ten days back
    series = {"portfolio": [(day - 1000, 10_000.0), (day + 1000, 11_000.0), (day + 2000, 10_500.0)],
              "portfolio:beta": [(day - 1000, 5_000.0), (day + 1500, 4_700.0)]}
    try:
        with store.begin() as conn:
            for name in ("main", "beta"):
                insert_status_row(conn, name, {"pid": os.getpid(), "host": os.uname().nodename, "mode": "paper",
                                               "started_at": now, "heartbeat_at": now + 600_000, "version": "t",
                                               "info": "{}"})
            conn.execute(insert(equity_snapshots), [
                {"ts": ts, "scope": scope, "equity": eq, "cash": eq, "gross_exposure": 0.1 * eq,
                 "net_exposure": 0.05 * eq, "unrealized_pnl": 0.0, "realized_pnl": 0.0}
                for scope, points in series.items() for ts, eq in points])
    finally:
        store.dispose()


@run_async
async def test_header_and_status_show_the_sum_over_the_desks_engines(backend_url: str) -> None:
    _seed(backend_url)
    _register_all()
    res = CliRunner().invoke(cli_app, ["--state", backend_url, "status", "--json"])
    assert res.exit_code == 0, res.output
    status = json.loads(res.output)
    assert status["equity"] == 15_200.0 and status["day_pnl"] == 200.0
    assert abs(status["drawdown"] - 0.05) < 1e-12 and abs(status["gross_exposure"] - 1_520.0) < 1e-9
    app = QuantdeskApp(settings_with(load_settings(path=None, environ={}), store=state_target(backend_url)))
    async with app.run_test(size=(160, 40)) as pilot:
        await _ready(pilot, app)
        await wait_until(pilot, lambda: "engines 2/2" in screen_text(app), 30, what="header: engines 2/2")
        text = screen_text(app)
        assert "eq 15,200" in text and "day +200" in text and "dd 5.00%" in text, text.splitlines()[:2]
