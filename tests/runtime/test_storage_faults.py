"""Finding 1: a persistent storage fault halts the engine in memory, alerts, stops writing and exits non-zero;
state.db is never made worse (integrity ok, nothing committed before the fault lost). And finding 5's other half:
a HALT still reaches a live engine when the store is locked for the front end."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.support.backends import sqlite_only
from tests.support.faults import FAULTS, desk_halted, run_fault, running
from rt_helpers import start_engine, stop_engine, wait_for, write_config

from engine.runtime.storage_guard import EXIT_STORAGE_FAULT
from tests.store.cli_run import quantdesk


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_storage_fault_halts_and_exits_without_damage(tmp_path: Path, fault: str, store_backend: str) -> None:
    sqlite_only(store_backend, "the -wal file, the database file and its size limit belong to a SQLite store; a "
                               "server store's faults are in test_server_store_faults.py")
    out = run_fault(tmp_path, fault)
    assert out.exit_code == EXIT_STORAGE_FAULT, out.stderr[-3000:]
    assert out.halt_s is not None and out.halt_s < 5.0
    assert "HALTED in memory" in out.stderr and "quantdesk doctor" in out.stderr
    assert out.integrity == "ok"
    assert out.data_lost == {}, out.data_lost


def test_halt_reaches_a_live_engine_while_the_store_is_locked(tmp_path: Path, store_backend: str) -> None:
    sqlite_only(store_backend, "a whole-database write lock (BEGIN IMMEDIATE) exists on SQLite only; PostgreSQL "
                               "locks rows, and its halt path is tested in test_engine_e2e.py")
    cfg = write_config(tmp_path)
    state = tmp_path / "state.db"
    proc = start_engine(tmp_path, cfg, state)
    try:
        wait_for(lambda: running(state, proc.pid), 90, "engine running")
        fast = tmp_path / "fast.toml"
        fast.write_text("[store]\nbusy_timeout_ms = 200\n")
        holder = sqlite3.connect(state, isolation_level=None, timeout=20)
        holder.execute("BEGIN IMMEDIATE")
        try:
            out = quantdesk("--config", str(fast), "--state", str(state), "halt", cwd=tmp_path)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert out.returncode == 0, out.stderr
        assert "locked" in out.stderr and f"engine pid {proc.pid}" in out.stdout
        wait_for(lambda: desk_halted(state), 30, "HALTED persisted by the engine after the lock is gone")
        assert proc.poll() is None  # a locked store is contention, not a storage fault: the engine stays up
    finally:
        assert stop_engine(proc) == 0
