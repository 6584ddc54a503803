"""`quantdesk backup` while the engine writes gives a consistent copy; the engine's own backup job runs; `doctor`
names the lock holder."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from tests.support.backends import sqlite_only
from tests.support.faults import running
from rt_helpers import start_engine, stop_engine, wait_for, write_config

from tests.store.cli_run import quantdesk


def test_backup_while_the_engine_runs_and_the_scheduled_job(tmp_path: Path, store_backend: str) -> None:
    sqlite_only(store_backend, "`quantdesk backup` and the scheduled backup copy a SQLite file; a PostgreSQL desk is "
                               "backed up with pg_dump (docs/deploy.md)")
    cfg = write_config(tmp_path)
    state = tmp_path / "state.db"
    env = {**os.environ, "QUANTDESK__STORE__BACKUP_INTERVAL_HOURS": "0.0005", "QUANTDESK__STORE__BACKUP_KEEP": "2"}
    (tmp_path / "logs").mkdir(mode=0o755)
    os.chmod(tmp_path / "logs", 0o755)  # a folder from before the hardening
    proc = start_engine(tmp_path, cfg, state, env=env)
    try:
        wait_for(lambda: running(state, proc.pid), 90, "engine running")
        out = quantdesk("--config", str(cfg), "--state", str(state), "backup", "--out", str(tmp_path / "b.db"),
                        cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        with sqlite3.connect(tmp_path / "b.db") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("SELECT count(*) FROM candles").fetchone()[0] > 0
            assert conn.execute("SELECT pid FROM engine_status").fetchone()[0] == proc.pid
        wait_for(lambda: len(list((tmp_path / "backups").glob("state-*.db"))) >= 2, 60, "scheduled backups")
        doc = quantdesk("--config", str(cfg), "--state", str(state), "doctor", cwd=tmp_path)
        assert f"engine pid {proc.pid}" in doc.stdout and "integrity      OK" in doc.stdout
        assert len(list((tmp_path / "backups").glob("state-*.db"))) <= 2  # retention
        for folder in ("logs", "backups"):
            assert (tmp_path / folder).stat().st_mode & 0o777 == 0o700, folder
        for path in [tmp_path / "logs" / "engine.log", tmp_path / "state.db.lock",
                     *(tmp_path / "backups").glob("state-*.db")]:
            assert path.stat().st_mode & 0o777 == 0o600, path
    finally:
        assert stop_engine(proc) == 0
