"""`quantdesk halt` on a desk of several engines whose store the front end cannot write (locked): the HALT still
reaches every live engine, by SIGUSR1 to each engine holding its lock, and each persists the desk's HALTED once the
store is free. Before, only the configured engine (main) was signalled and the other kept trading."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rt_helpers import start_engine, stop_engine, wait_for, write_config
from tests.store.cli_run import quantdesk
from tests.support.backends import sqlite_only
from tests.support.faults import desk_halted, running

from engine.config import Settings
from engine.config_sections import StoreConfig
from engine.runtime.lockfile import live_engine_pids


def _config(folder: Path, name: str, instance: str) -> Path:
    folder.mkdir(exist_ok=True)
    cfg = write_config(folder)
    named = "" if name == "main" else f'[engine]\nname = "{name}"\n'
    cfg.write_text(cfg.read_text() + f'{named}[strategies.{instance}]\nstrategy = "quantum_momentum"\n'
                   'timeframe = "1m"\nsymbols = ["BTC/USDT"]\n[data]\nsymbols = ["BTC/USDT"]\n')
    return cfg


def _settings(state: Path) -> Settings:
    return Settings(store=StoreConfig(path=str(state)))


def _halted_in_memory(folder: Path) -> bool:
    return "HALT by signal: trading halted in memory" in (folder / "engine.stderr").read_text(errors="replace")


def test_halt_by_signal_reaches_every_engine_of_the_desk(tmp_path: Path, store_backend: str) -> None:
    sqlite_only(store_backend, "a whole-database write lock (BEGIN IMMEDIATE) exists on SQLite only; on PostgreSQL "
                               "the halt reaches every engine through the store (test_several_engines.py)")
    state = tmp_path / "state.db"
    folders = {name: tmp_path / name for name in ("main", "beta")}
    cfgs = {name: _config(folders[name], name, f"qm_{name}") for name in folders}
    procs = {}
    try:
        for name in folders:
            procs[name] = start_engine(folders[name], cfgs[name], state)
            wait_for(lambda: running(state, procs[name].pid, name), 90, f"engine {name} running")
        assert live_engine_pids(_settings(state)) == {n: p.pid for n, p in procs.items()}
        fast = tmp_path / "fast.toml"
        fast.write_text("[store]\nbusy_timeout_ms = 200\n")
        holder = sqlite3.connect(state, isolation_level=None, timeout=20)
        holder.execute("BEGIN IMMEDIATE")
        try:
            out = quantdesk("--config", str(fast), "--state", str(state), "halt", cwd=tmp_path)
            assert out.returncode == 0, out.stderr
            assert "locked" in out.stderr
            for name, proc in procs.items():
                assert f"engine pid {proc.pid} ({name})" in out.stdout, out.stdout
            for name, folder in folders.items():
                wait_for(lambda: _halted_in_memory(folder), 30, f"engine {name} halted in memory while locked")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        wait_for(lambda: desk_halted(state), 30, "the desk's HALTED persisted after the lock is gone")
        assert all(p.poll() is None for p in procs.values())  # contention, not a storage fault: both stay up
    finally:
        for proc in procs.values():
            stop_engine(proc)
