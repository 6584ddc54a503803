"""PostgreSQL counterparts of the SQLite file faults (tests/runtime/test_storage_faults.py), on a real engine process:
- the server ends the engine's sessions (pg_terminate_backend, as a server restart, a failover or an admin does): the
  engine reconnects and keeps trading, and it still holds the desk's advisory lock (the lock's own session was ended
  too; without re-taking it a second engine could start on the desk);
- the server is stopped under the running engine: the engine halts in memory, names the cause and exits with the
  storage-fault code like on a broken SQLite file; nothing committed is lost and a restarted engine runs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from rt_helpers import rows, scalar, start_engine, stop_engine, store_ready, wait_for, write_config

from engine.runtime.storage_guard import EXIT_STORAGE_FAULT

SERVER_ONLY = "a PostgreSQL server fault; SQLite's file faults are in test_storage_faults.py"


def _running(store, pid: int) -> bool:  # noqa: ANN001
    got = rows(store, "SELECT pid, info FROM engine_status WHERE name = 'main'")
    return bool(got) and got[0][0] == pid and json.loads(got[0][1] or "{}").get("phase") == "running"


def _heartbeat_after(store, ms: int) -> bool:  # noqa: ANN001
    try:
        return (scalar(store, "SELECT heartbeat_at FROM engine_status WHERE name = 'main'") or 0) > ms
    except Exception:  # noqa: BLE001 - the test's own pooled connection was ended too: the next try reconnects
        return False


def test_sessions_ended_by_the_server_are_ridden_out_and_the_lock_is_kept(  # noqa: ANN001
        store_backend: str, state_url: str, tmp_path: Path, request) -> None:
    if store_backend != "postgresql":
        pytest.skip(SERVER_ONLY)
    server = request.getfixturevalue("postgres_server")
    cfg = write_config(tmp_path, extra="rebalance_band = 0.0\nmin_order_notional = 1.0")
    proc = start_engine(tmp_path, cfg, state_url)
    try:
        store = wait_for(lambda: store_ready(state_url), 30, "the store")
        wait_for(lambda: _running(store, proc.pid), 90, "engine running")
        wait_for(lambda: scalar(store, "SELECT COUNT(*) FROM fills"), 90, "a first fill")
        for round_ in range(3):
            ended = server.terminate(state_url)
            assert ended >= 2, f"round {round_}: only {ended} sessions ended"  # the engine's pool and its lock
            killed_at = int(time.time() * 1000)
            wait_for(lambda: _heartbeat_after(store, killed_at), 30, f"a heartbeat after round {round_}")
            assert proc.poll() is None, f"round {round_}: the engine exited ({proc.returncode})"
        fills = scalar(store, "SELECT COUNT(*) FROM fills")
        wait_for(lambda: scalar(store, "SELECT COUNT(*) FROM fills") > fills, 90, "trading to go on")
        second = start_engine(tmp_path, cfg, state_url, env={**os.environ, "QUANTDESK__RUNTIME__RUN_DIR":
                                                              str(tmp_path / "other_host")})
        try:
            assert second.wait(60) == 1, "a second engine started on the desk: the advisory lock was lost"
        finally:
            stop_engine(second)
        assert "another engine holds this store's lock" in (tmp_path / "engine.stderr").read_text()
    finally:
        assert stop_engine(proc) == 0


def test_server_stopped_under_the_engine_halts_and_exits_without_loss(store_backend: str, state_url: str,
                                                                     tmp_path: Path, request) -> None:  # noqa: ANN001
    if store_backend != "postgresql":
        pytest.skip(SERVER_ONLY)
    server = request.getfixturevalue("postgres_server")
    cfg = write_config(tmp_path, extra="rebalance_band = 0.0\nmin_order_notional = 1.0")
    proc = start_engine(tmp_path, cfg, state_url)
    try:
        store = wait_for(lambda: store_ready(state_url), 30, "the store")
        wait_for(lambda: _running(store, proc.pid), 90, "engine running")
        wait_for(lambda: scalar(store, "SELECT COUNT(*) FROM fills"), 90, "a first fill")
        before = {t: {r[0] for r in rows(store, f"SELECT id FROM {t}")} for t in ("orders", "fills", "audit_log")}
        store.dispose()
        server.pause()
        try:
            t0 = time.monotonic()
            code = proc.wait(60)
            took = time.monotonic() - t0
        finally:
            server.resume()
        err = (tmp_path / "engine.stderr").read_text()
        assert code == EXIT_STORAGE_FAULT, err[-2000:]
        assert "storage fault" in err and "database server" in err and "HALTED in memory" in err, err[-2000:]
        assert took < 30, took
        after = {t: {r[0] for r in rows(store, f"SELECT id FROM {t}")} for t in before}
        assert all(before[t] <= after[t] for t in before), "committed rows were lost"
        proc = start_engine(tmp_path, cfg, state_url)
        wait_for(lambda: _running(store, proc.pid), 90, "the restarted engine running")
    finally:
        assert stop_engine(proc) == 0
