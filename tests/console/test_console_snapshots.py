"""Snapshot tests (pytest-textual-snapshot): desk, HALTED desk and the alerts screen, deterministic.

Determinism: fixed data (tests/console/deskdata.py), a frozen clock (FIXED_NOW) for every age and liveness check,
no Input (so no cursor blink), and the screenshot is taken only after the status and screen polls have landed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from console.app import QuantdeskApp
from tests.console.deskdata import FIXED_NOW, build_state
from tests.console.helpers import console_settings, wait_until

SIZE = (100, 30)


def _app(tmp_path: Path, state: str = "ACTIVE") -> QuantdeskApp:
    path = tmp_path / "state.db"
    build_state(path, state=state).dispose()
    return QuantdeskApp(console_settings(path), clock=lambda: FIXED_NOW)


async def _repainted(pilot: Any) -> None:
    """Let DataTable recompute auto column widths (done on idle after rows change) and repaint."""
    for _ in range(3):
        await pilot.pause()
        await pilot.pause(0.1)
    await pilot.wait_for_scheduled_animations()


def _settled(app: QuantdeskApp, min_polls: int = 2) -> Any:
    async def run_before(pilot: Any) -> None:
        await wait_until(pilot, lambda: app.status_polls >= min_polls and getattr(app.screen, "polls", 0) >= min_polls,
                         what="polls landed")
        await _repainted(pilot)

    return run_before


def test_snapshot_desk(snap_compare: Any, tmp_path: Path) -> None:
    """The desk with positions, orders, sizing, alerts and the equity chart."""
    app = _app(tmp_path)
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled(app))


def test_snapshot_desk_halted(snap_compare: Any, tmp_path: Path) -> None:
    """The desk after the engine has HALTED (red badge)."""
    app = _app(tmp_path, state="HALTED")
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled(app))


def test_snapshot_alerts(snap_compare: Any, tmp_path: Path) -> None:
    """The alerts and audit screen."""
    app = _app(tmp_path)

    async def run_before(pilot: Any) -> None:
        await pilot.press("7")
        await wait_until(pilot, lambda: app.current_mode == "alerts" and app.screen.polls >= 2, what="alerts polled")
        await _repainted(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
