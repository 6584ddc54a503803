"""Finding 2: the one-engine lock is bound to the store itself, not to runtime.run_dir."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from rt_helpers import start_engine, stop_engine, wait_for, write_config

from engine.config import load_settings, settings_with
from engine.runtime.lockfile import read_pid


def _env(run_dir: Path) -> dict[str, str]:
    return {**os.environ, "QUANTDESK__RUNTIME__RUN_DIR": str(run_dir)}


def test_second_engine_with_another_run_dir_is_refused_and_front_ends_find_the_first(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    state = tmp_path / "state.db"
    first = start_engine(tmp_path, cfg, state, env=_env(tmp_path / "run_a"))
    try:
        settings = settings_with(load_settings(cfg, environ={}), store={"path": str(state), "url": ""})
        wait_for(lambda: read_pid(settings) == first.pid, 60, "the first engine's lock")
        second = start_engine(tmp_path, cfg, state, env=_env(tmp_path / "run_b"))
        try:
            assert second.wait(60) == 1
        except subprocess.TimeoutExpired:
            second.kill()
            raise
        assert f"pid {first.pid}" in (tmp_path / "engine.stderr").read_text()
        assert first.poll() is None
        for run_dir in ("run_c", ""):  # a front end with any run_dir finds the live engine
            other = settings_with(settings, runtime={"run_dir": str(tmp_path / run_dir) if run_dir else ""})
            assert read_pid(other) == first.pid
    finally:
        assert stop_engine(first) == 0
    assert read_pid(settings) is None
