"""Helpers shared by the console key-binding and stop-flow tests: SQL reads, the stop bar, the header, first poll."""

from __future__ import annotations

from sqlalchemy import text

from console.app import QuantdeskApp
from console.widgets.modals import StopConfirmBar
from console.widgets.status import StatusHeader
from tests.console.helpers import wait_until


def _scalar(store, sql: str):  # noqa: ANN001, ANN202 - tiny SQL helper
    with store.connect() as conn:
        return conn.execute(text(sql)).scalar()


def _rows(store, sql: str) -> list[dict]:
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(text(sql)).mappings().all()]


def _stop_open(app: QuantdeskApp) -> bool:
    """The emergency-stop confirmation is showing (and focused) on the current screen."""
    bars = app.screen.query(StopConfirmBar)
    return bool(bars) and app.focused is bars.first()


def _header(app: QuantdeskApp) -> StatusHeader:
    return app.screen_stack[0].query_one(StatusHeader) if not app.screen.query(StatusHeader) else \
        app.screen.query_one(StatusHeader)


async def _ready(pilot, app: QuantdeskApp) -> None:  # noqa: ANN001
    await wait_until(pilot, lambda: app.status_polls >= 1 and getattr(app.screen, "polls", 0) >= 1, what="first poll")
