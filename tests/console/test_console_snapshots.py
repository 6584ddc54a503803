"""Snapshot tests (pytest-textual-snapshot): every screen at 80x24 and 140x40, the HALTED desk, an alert's detail.

Determinism: a temp state.db filled with fixed data (tests/console/deskdata.py), a frozen clock (FIXED_NOW) for every
age and liveness check, no Input on screen (so no cursor blink), and the screenshot is taken only after the status and
screen polls have landed. Regenerate after an intended change with `pytest tests/console/test_console_snapshots.py
--snapshot-update` and look at the SVGs (tests/console/__snapshots__/) before committing them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from console.app import QuantdeskApp
from console.widgets.keyed_table import KeyedTable
from tests.console.deskdata import FIXED_NOW, add_scheduler_job, build_state
from tests.console.helpers import console_settings, wait_until

SIZES = {"80x24": (80, 24), "140x40": (140, 40)}
SCREENS = {"desk": "1", "strategies": "2", "research": "3", "models": "4", "jobs": "5", "data": "6", "alerts": "7"}
FILLED = {"desk": "positions", "strategies": "leaderboard", "research": "trials", "models": "models", "jobs": "jobs",
          "data": "coverage", "alerts": "audit"}  # the table whose rows arrive last on each screen


def _app(tmp_path: Path, state: str = "ACTIVE") -> QuantdeskApp:
    path = tmp_path / "state.db"
    build_state(path, state=state).dispose()
    add_scheduler_job(path, next_run_ms=FIXED_NOW + 25_000)  # the Jobs screen's next run, at the frozen clock
    return QuantdeskApp(console_settings(path), clock=lambda: FIXED_NOW)


async def _repainted(pilot: Any) -> None:
    """Let DataTable apply column widths (done on idle after rows change) and repaint."""
    for _ in range(3):
        await pilot.pause()
        await pilot.pause(0.1)
    await pilot.wait_for_scheduled_animations()


def _on_screen(app: QuantdeskApp, mode: str) -> Any:
    async def run_before(pilot: Any) -> None:
        await wait_until(pilot, lambda: app.status_polls >= 2, what="status polls")
        await pilot.press(SCREENS[mode])
        await wait_until(pilot, lambda: app.current_mode == mode and app.screen.polls >= 2
                         and app.screen.query_one(f"#{FILLED[mode]}", KeyedTable).row_count > 0,
                         what=f"{mode} polled")
        await _repainted(pilot)

    return run_before


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("mode", list(SCREENS))
def test_snapshot_screen(snap_compare: Any, tmp_path: Path, mode: str, size: str) -> None:
    """Each of the seven screens over the fixture desk, at the smallest supported and a common wide terminal."""
    app = _app(tmp_path)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_on_screen(app, mode))


def test_snapshot_desk_halted(snap_compare: Any, tmp_path: Path) -> None:
    """The desk after the engine has HALTED (red badge)."""
    app = _app(tmp_path, state="HALTED")
    assert snap_compare(app, terminal_size=SIZES["140x40"], run_before=_on_screen(app, "desk"))


def test_snapshot_alert_detail(snap_compare: Any, tmp_path: Path) -> None:
    """Enter on the newest alert: its whole message, when, what raised it, its values and repeat count."""
    app = _app(tmp_path)
    shown = _on_screen(app, "alerts")

    async def run_before(pilot: Any) -> None:
        await shown(pilot)
        app.screen.query_one("#alerts", KeyedTable).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen.query("#info-body"), what="alert detail")
        await _repainted(pilot)

    assert snap_compare(app, terminal_size=SIZES["140x40"], run_before=run_before)
