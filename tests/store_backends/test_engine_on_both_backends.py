"""A desk moved from SQLite to PostgreSQL with `quantdesk store copy`, and one engine per PostgreSQL desk whatever the
host or run dir. (The engine killed with SIGKILL on each backend is tests/runtime/test_fault_kill9.py, which runs on
SQLite and PostgreSQL like the rest of tests/runtime.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.control.client import ControlClient
from engine.execution.orders import check_positions_match_fills
from engine.store import open_store
from engine.store.schema import fills, orders
from tests.runtime.rt_helpers import start_engine, stop_engine, write_config
from tests.support.waiting import wait_for



def _count(store, table, *where) -> int:  # noqa: ANN001
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar() or 0)


def _cli(folder: Path, url: str, config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from console.cli import main; main()", "--state", url, "--config",
                           str(config), *args], cwd=folder, capture_output=True, text=True, timeout=120)


def _try_open(url: str):  # noqa: ANN202
    """The store once the engine has created and migrated it (None before)."""
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return None
    try:
        from engine.store import SCHEMA_VERSION

        store = open_store(url)
        return store if store.schema_version() == SCHEMA_VERSION else None
    except Exception:  # noqa: BLE001 - not created yet
        return None


@pytest.mark.slow
def test_store_copy_moves_a_traded_desk_from_sqlite_to_postgres(postgres_server, tmp_path: Path) -> None:  # noqa: ANN001
    """A desk that traded on SQLite is copied to PostgreSQL with equal counts and hashes, and an engine continues on
    PostgreSQL from the copied state (HALTED kept, no fill or order id repeated); a second copy is refused."""
    cfg = write_config(tmp_path, speed=60.0, extra="rebalance_band = 0.0\nmin_order_notional = 1.0")
    sqlite_path = tmp_path / "state.db"
    proc = start_engine(tmp_path, cfg, sqlite_path)
    try:
        store = wait_for(lambda: _try_open(f"sqlite:///{sqlite_path}"), 60, "state.db")
        wait_for(lambda: _count(store, fills), 120, "the first fill")
        assert _cli(tmp_path, str(sqlite_path), cfg, "halt").returncode == 0
    finally:
        assert stop_engine(proc) == 0
    pg_url = postgres_server.fresh_database()
    out = _cli(tmp_path, str(sqlite_path), cfg, "store", "copy", "--from", str(sqlite_path), "--to", pg_url)
    assert out.returncode == 0 and "counts and hashes match" in out.stdout, out.stdout + out.stderr
    again = _cli(tmp_path, str(sqlite_path), cfg, "store", "copy", "--from", str(sqlite_path), "--to", pg_url)
    assert again.returncode == 2 and "already has rows" in again.stderr
    pg = open_store(pg_url)
    assert _count(pg, fills) == _count(store, fills) and _count(pg, orders) == _count(store, orders)
    proc = start_engine(tmp_path, cfg, pg_url)
    try:
        client = ControlClient(pg, source="cli", user="copy-test", heartbeat_timeout_s=3.0)
        wait_for(client.engine_alive, 60, "the engine on the copied PostgreSQL desk")
        assert client.status().trading_state == "HALTED"
        out = _cli(tmp_path, pg_url, cfg, "resume", "--confirm")
        assert out.returncode == 0, out.stdout + out.stderr
        n_before = _count(pg, fills)
        wait_for(lambda: _count(pg, fills) > n_before, 120, "a new fill on PostgreSQL")
    finally:
        assert stop_engine(proc) == 0
    with pg.connect() as conn:
        distinct = conn.execute(select(func.count(func.distinct(orders.c.client_order_id)))).scalar()
    assert distinct == _count(pg, orders)
    assert check_positions_match_fills(pg) == []


def test_one_engine_per_postgres_desk_whatever_the_host_or_run_dir(postgres_server, tmp_path: Path) -> None:  # noqa: ANN001
    """Two engines on one PostgreSQL database with different run dirs (as on two hosts, whose lock files cannot see
    each other): the second is refused naming the holder; after the first is killed with SIGKILL the server drops
    its lock and an engine starts at once."""
    url = postgres_server.fresh_database()
    first_dir, second_dir = tmp_path / "host-a", tmp_path / "host-b"
    first_dir.mkdir()
    second_dir.mkdir()
    cfg_a = write_config(first_dir)
    cfg_a.write_text(cfg_a.read_text().replace("[runtime]", f'[runtime]\nrun_dir = "{first_dir}"', 1))
    cfg_b = write_config(second_dir)
    cfg_b.write_text(cfg_b.read_text().replace("[runtime]", f'[runtime]\nrun_dir = "{second_dir}"', 1))
    proc = start_engine(first_dir, cfg_a, url)
    try:
        store = wait_for(lambda: _try_open(url), 60, "the first engine's store")
        client = ControlClient(store, source="cli", user="lock-test", heartbeat_timeout_s=3.0)
        wait_for(client.engine_alive, 60, "the first engine")
        second = start_engine(second_dir, cfg_b, url)
        assert second.wait(60) == 1
        err = (second_dir / "engine.stderr").read_text()
        assert "another engine holds this store's lock" in err and "Traceback" not in err
        proc.kill()
        proc.wait(10)
        proc = start_engine(second_dir, cfg_b, url)
        wait_for(lambda: client.engine_alive() and client.status().pid == proc.pid, 60,
                 "the second host's engine after the first was killed")
    finally:
        stop_engine(proc)
