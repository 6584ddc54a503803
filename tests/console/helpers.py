"""Console test helpers: settings for a state.db, waiting on Pilot, the screen as text."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from engine.clock import now_ms
from engine.config import Settings, load_settings, settings_with


def console_settings(state: Path, **console: Any) -> Settings:
    """Default settings (no config file, no env) pointed at a state.db, with console overrides."""
    settings = settings_with(load_settings(path=None, environ={}), store={"path": str(state), "url": ""})
    return settings_with(settings, console=console) if console else settings


async def wait_until(pilot: Any, predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> float:
    """Let the app run until predicate() holds; returns the seconds waited (fails the test on timeout)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await pilot.pause(0.02)
    return time.monotonic() - start


def screen_text(app: Any) -> str:
    """The current screen as plain text (what a terminal would show)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def live_heartbeat() -> int:
    """A heartbeat a minute in the future: fresh for the reader and the control client for the whole test."""
    return now_ms() + 60_000


def run_async(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run an async test body with asyncio.run (no async pytest plugin needed); fixtures pass through."""
    import asyncio
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


async def shows(pilot: Any, app: Any, *texts: str, timeout: float = 20.0) -> None:
    """Wait until every text is painted on the current screen (painting lags widget updates by a frame)."""
    await wait_until(pilot, lambda: all(t in screen_text(app) for t in texts), timeout, what=f"screen shows {texts}")
