"""StorageGuard's trip sequence in-process: HALT latched before anything else, cancels through the broker, the
alert, then the exit code; a contention error (locked) never trips it, a second storage fault in a row does."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.risk.trading_state import TradingState, clear_latch, get_state, latched
from engine.runtime.storage_guard import EXIT_STORAGE_FAULT, StorageGuard


class _Exit(Exception):
    pass


@pytest.fixture(autouse=True)
def _no_latch():
    clear_latch()
    yield
    clear_latch()


def _guard(calls: list[str], db: Path | None = None) -> StorageGuard:
    def cancel() -> int:
        calls.append(f"cancel (latched {latched() is not None})")
        return 3

    def alert(line: str) -> None:
        calls.append("alert")

    def leave(code: int) -> None:
        calls.append(f"exit {code}")
        raise _Exit

    return StorageGuard(db, on_cancel=cancel, on_alert=alert, exit_fn=leave)


def test_two_storage_faults_in_a_row_trip_in_order() -> None:
    calls: list[str] = []
    guard = _guard(calls)

    def failing_write() -> None:
        raise sqlite3.OperationalError("database or disk is full")

    assert guard.check(failing_write) is False and calls == []  # one failure may be transient
    with pytest.raises(_Exit):
        guard.check(failing_write)
    assert calls == ["cancel (latched True)", "alert", f"exit {EXIT_STORAGE_FAULT}"]
    assert get_state(object()).state is TradingState.HALTED  # answered from memory: the store is not touched
    assert "full" in guard.cause


def test_a_locked_store_never_trips() -> None:
    calls: list[str] = []
    guard = _guard(calls)

    def locked() -> None:
        raise sqlite3.OperationalError("database is locked")

    for _ in range(5):
        assert guard.check(locked) is False
    assert calls == [] and latched() is None


def test_a_removed_wal_trips_at_once_even_when_every_step_fails(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(b"x")
    Path(f"{db}-wal").write_bytes(b"y")
    calls: list[str] = []
    guard = _guard(calls, db)
    guard.on_cancel = lambda: (_ for _ in ()).throw(sqlite3.OperationalError("disk I/O error"))
    guard.on_alert = lambda line: (_ for _ in ()).throw(sqlite3.OperationalError("disk I/O error"))
    guard.arm()
    assert guard.check(lambda: None) is True
    Path(f"{db}-wal").unlink()
    with pytest.raises(_Exit):
        guard.check(lambda: None)
    assert calls == [f"exit {EXIT_STORAGE_FAULT}"] and "removed" in guard.cause
