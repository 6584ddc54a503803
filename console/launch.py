"""`open_console(settings)`: make sure an engine runs for this state store, then run the console in the foreground.

The engine is started detached (its own session, so closing the terminal or quitting the console never stops it) on
the configured settings, which by default are the embedded simulator in paper mode with both strategies. The console
does not wait for the engine: the "engine not responding" banner says what is happening until the first heartbeat.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from engine.config import Settings


def engine_running(settings: Settings) -> bool:
    """True when an engine holds the lock for this state store, or the control API finds it alive (fresh heartbeat,
    process present, not marked stopped: a cleanly stopped engine leaves a recent heartbeat behind)."""
    from engine.control.client import is_engine_alive
    from engine.runtime.lockfile import read_pid
    from engine.store import StoreError, open_readonly

    if read_pid(settings) is not None:
        return True
    try:
        store = open_readonly(settings.store_url())
    except StoreError:
        return False  # no state.db yet: nothing has ever run here
    try:
        return is_engine_alive(store, settings.runtime.heartbeat_timeout_s)
    finally:
        store.dispose()


def engine_log_file(settings: Settings) -> Path:
    """Where a console-started engine's stdout/stderr go (beside the engine's own rotating log)."""
    from engine.runtime.launch import engine_output_file

    return engine_output_file(settings)


def start_engine(settings: Settings) -> subprocess.Popen:
    """Start a paper engine for these settings in its own session (engine.runtime.launch, as `engine --detach`)."""
    from engine.runtime.launch import start_detached

    return start_detached(settings)


def open_console(settings: Settings, *, start: bool = True) -> None:
    """Start an engine when none is alive for this state store (unless start=False), then run the console."""
    if start and settings.execution.mode == "paper" and not engine_running(settings):
        proc = start_engine(settings)
        print(f"started the engine in the background (pid {proc.pid}); log {engine_log_file(settings)}",
              file=sys.stderr)
        # reap it if it stops while this console runs (no zombie); the engine itself never depends on the console
        threading.Thread(target=proc.wait, name="engine-reaper", daemon=True).start()
    from console.app import QuantdeskApp
    from engine.runtime.main import prefer_low_latency

    prefer_low_latency()  # the UI thread and the stop lane must not wait 5 ms turns behind the poll workers
    QuantdeskApp(settings).run()
