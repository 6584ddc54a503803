"""open_console's engine check: an engine holding the lock or a fresh heartbeat counts as running."""

from __future__ import annotations

from pathlib import Path

from console.launch import engine_log_file, engine_running
from engine.clock import now_ms
from engine.runtime.lockfile import EngineLock, lock_path
from tests.console.deskdata import build_state
from tests.console.helpers import console_settings


def test_engine_running_by_lock_or_heartbeat(tmp_path: Path) -> None:
    """No engine -> False; the real engine lock held -> True; a fresh heartbeat -> True; a stale one -> False."""
    path = tmp_path / "state.db"
    settings = console_settings(path)
    assert engine_running(settings) is False  # no state.db at all
    store = build_state(path, heartbeat_at=now_ms() - 60_000)
    assert engine_running(settings) is False
    lock = EngineLock(lock_path(settings))
    lock.acquire()
    try:
        assert engine_running(settings) is True
    finally:
        lock.release()
    with store.begin() as conn:
        conn.exec_driver_sql(f"UPDATE engine_status SET heartbeat_at = {now_ms()}")
    assert engine_running(settings) is True
    store.dispose()
    assert engine_log_file(settings).parent == tmp_path / "logs"
