"""Finding 2: the one-engine lock is bound to the store itself, not to runtime.run_dir."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from rt_helpers import is_postgres, start_engine, stop_engine, wait_for, write_config

from engine.config import load_settings, settings_with
from engine.config_rules import state_target
from engine.runtime.lockfile import read_pid, server_holder


def _env(run_dir: Path) -> dict[str, str]:
    return {**os.environ, "QUANTDESK__RUNTIME__RUN_DIR": str(run_dir)}


def test_second_engine_with_another_run_dir_is_refused_and_front_ends_find_the_first(tmp_path: Path,
                                                                                      state_url: str) -> None:
    """On SQLite the lock file sits beside state.db whatever run_dir says; a server store has no file to sit beside,
    so there the database's advisory lock refuses the second engine and shows front ends the holder."""
    cfg = write_config(tmp_path)
    state = state_url
    server = is_postgres(state)
    first = start_engine(tmp_path, cfg, state, env=_env(tmp_path / "run_a"))
    try:
        settings = settings_with(load_settings(cfg, environ={}), store=state_target(state),
                                 runtime={"run_dir": str(tmp_path / "run_a")})
        wait_for(lambda: read_pid(settings) == first.pid, 60, "the first engine's lock")
        second = start_engine(tmp_path, cfg, state, env=_env(tmp_path / "run_b"))
        try:
            assert second.wait(60) == 1
        except subprocess.TimeoutExpired:
            second.kill()
            raise
        said = "another engine holds this store's lock" if server else f"pid {first.pid}"
        assert said in (tmp_path / "engine.stderr").read_text()
        assert first.poll() is None
        for run_dir in ("run_c", ""):  # a front end with any run_dir finds the live engine
            other = settings_with(settings, runtime={"run_dir": str(tmp_path / run_dir) if run_dir else ""})
            if server:
                assert read_pid(other) is None and "server backend" in (server_holder(other) or "")
            else:
                assert read_pid(other) == first.pid
    finally:
        assert stop_engine(first) == 0
    assert read_pid(settings) is None and server_holder(settings) is None
