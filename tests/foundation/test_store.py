"""state.db: pragmas, file mode, versioned migrations, read-only access and the candle upsert."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from engine.store import SCHEMA_VERSION, StoreError, open_readonly, open_store
from engine.store.candles import candle_series, load_candles, upsert_candles
from engine.store.db import MIGRATIONS

REQUIRED_TABLES = {"candles", "trades", "book_snapshots", "funding_rates", "feed_values", "quarantine", "alerts",
                   "audit_log", "commands", "trading_state", "orders", "fills", "positions", "equity_snapshots",
                   "models", "backtest_runs", "trials"}


def test_new_store_has_pragmas_mode_and_version(state_path: Path) -> None:
    st = open_store(state_path)
    assert stat.S_IMODE(os.stat(state_path).st_mode) == 0o600
    with st.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        tables = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")}
    assert REQUIRED_TABLES <= tables
    assert st.schema_version() == SCHEMA_VERSION
    for companion in (Path(f"{state_path}-wal"), Path(f"{state_path}-shm")):
        if companion.exists():
            assert stat.S_IMODE(os.stat(companion).st_mode) == 0o600


def test_reopen_is_idempotent_and_forward_migration_runs(state_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(state_path).dispose()
    open_store(state_path).dispose()  # no error re-running version 1

    def add_notes(conn) -> None:  # noqa: ANN001 - a migration step receives a Connection
        conn.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")

    monkeypatch.setattr("engine.store.db.MIGRATIONS", [*MIGRATIONS, add_notes])
    monkeypatch.setattr("engine.store.db.SCHEMA_VERSION", len(MIGRATIONS) + 1)
    st = open_store(state_path)
    assert st.schema_version() == len(MIGRATIONS) + 1
    with st.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM notes").scalar() == 0


def test_store_from_the_future_is_refused(state_path: Path) -> None:
    open_store(state_path).dispose()
    raw = sqlite3.connect(state_path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    raw.close()
    with pytest.raises(StoreError, match="newer"):
        open_store(state_path)


def test_readonly_store_reads_but_cannot_write(state_path: Path) -> None:
    st = open_store(state_path)
    upsert_candles(st, "sim", "BTC/USDT", "1m", [[0, 1, 2, 0.5, 1.5, 3]])
    ro = open_readonly(state_path)
    assert len(load_candles(ro, "sim", "BTC/USDT", "1m")) == 1
    with pytest.raises(OperationalError, match="readonly"):
        with ro.begin() as conn:
            conn.exec_driver_sql("DELETE FROM candles")
    with pytest.raises(StoreError):
        open_readonly(state_path.parent / "missing.db")


def test_candle_upsert_is_idempotent_and_counts_real_changes(store) -> None:  # noqa: ANN001
    rows = [[i * 60_000, 100 + i, 101 + i, 99 + i, 100.5 + i, 10.0] for i in range(1000)]
    assert upsert_candles(store, "sim", "BTC/USDT", "1m", rows) == 1000
    assert upsert_candles(store, "sim", "BTC/USDT", "1m", rows) == 0
    rows[10] = [10 * 60_000, 110, 111, 109, 110.7, 12.0]  # a revised bar
    assert upsert_candles(store, "sim", "BTC/USDT", "1m", rows) == 1
    frame = load_candles(store, "sim", "BTC/USDT", "1m", since=5 * 60_000, until=20 * 60_000)
    assert len(frame) == 15 and frame.index.tz is not None
    assert frame.loc[frame.index[5], "close"] == pytest.approx(110.7)
    assert candle_series(store) == [("sim", "BTC/USDT", "1m", 1000, 0, 999 * 60_000)]


def test_store_url_for_sqlalchemy(tmp_path: Path) -> None:
    st = open_store(f"sqlite:///{tmp_path / 'u.db'}")
    assert st.path == tmp_path / "u.db" and st.is_sqlite


def test_processes_racing_to_create_a_fresh_store_all_succeed(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "race.db"
    code = (f"from engine.store import open_store; s = open_store({str(path)!r}); print(s.schema_version())")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parents[2]) for _ in range(6)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert all(rc == 0 for _, _, rc in results), [err for _, err, _ in results]
    assert {out.strip() for out, _, _ in results} == {str(SCHEMA_VERSION)}
