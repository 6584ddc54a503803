"""The alerts screen shows merged repeats as a count and the off-box outbox per channel (issue 14)."""

from __future__ import annotations

from pathlib import Path

from console.app import QuantdeskApp
from console.widgets.keyed_table import KeyedTable
from engine.clock import now_ms
from engine.config import AlertChannelConfig, AlertsConfig
from engine.monitoring.alerts.channels import build_channels
from engine.monitoring.alerts.outbox import route_events
from engine.store.ops import raise_alert
from tests.console.deskdata import build_state
from tests.console.helpers import console_settings, live_heartbeat, run_async, shows, wait_until


@run_async
async def test_alerts_screen_shows_counts_and_the_outbox(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = build_state(path, heartbeat_at=live_heartbeat())
    for _ in range(12):
        raise_alert(store, "warning", "ingest.source_error", "sim: fetch failed: timeout", {})
    cfg = AlertsConfig(channels=(AlertChannelConfig("json://127.0.0.1:9/hook", "info"),), rate_limit_count=3)
    route_events(store, build_channels(cfg, {}), cfg, now_ms())  # 6 events: 3 pending, 3 held by the rate limit
    store.dispose()
    app = QuantdeskApp(console_settings(path))
    async with app.run_test(size=(140, 36)) as pilot:
        await pilot.press("7")
        table = app.screen.query_one("#alerts", KeyedTable)
        await wait_until(pilot, lambda: table.row_count == 6, what="5 fixture alerts + 1 merged row")
        await shows(pilot, app, "×12", "sim: fetch failed: timeout")
        await wait_until(pilot, lambda: str(table.border_subtitle) ==
                         "outbox [0] json://127.0.0.1:9/hook: sent 0 pending 3 held 3", what="the outbox line")
