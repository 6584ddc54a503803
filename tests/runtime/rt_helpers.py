"""Helpers for runtime tests (imported as `rt_helpers`; tests/runtime/conftest.py puts this folder on sys.path): write a fast config, start a real engine process, wait for conditions in state.db."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.support.backends import is_postgres, raw, store_ready  # noqa: F401 - part of this helper module
from tests.support.waiting import wait_for  # noqa: F401 - part of this helper module

REPO = Path(__file__).resolve().parents[2]


def write_config(folder: Path, speed: float = 60.0, extra: str = "", latency_ms: float = 20.0) -> Path:
    """A config for a fast simulated engine (speed-up, short intervals) in `folder`."""
    path = folder / "quantdesk.toml"
    path.write_text(f"""
[simulator]
speed = {speed}
[runtime]
equity_interval_s = 1.0
monitor_interval_s = 2.0
heartbeat_interval_s = 0.5
heartbeat_timeout_s = 3.0
command_poll_ms = 50
[ml]
train_at_start = false
[execution]
paper_latency_ms = {latency_ms}
{extra}
""")
    return path


def start_engine(folder: Path, config: Path, state: Path | str, env: dict[str, str] | None = None,
                 extra_args: list[str] | None = None) -> subprocess.Popen:
    """Start `python -m engine.runtime.main` as a real subprocess, logging to folder/engine.stderr."""
    err = open(folder / "engine.stderr", "ab")  # noqa: SIM115 - closed with the process
    full_env = dict(os.environ if env is None else env)
    full_env.setdefault("PYTHONPATH", str(REPO))
    return subprocess.Popen([sys.executable, "-m", "engine.runtime.main", "--state", str(state), "--config",
                             str(config), *(extra_args or [])], cwd=folder, stdout=err, stderr=err, env=full_env)


def scalar(store: Any, sql: str, *args: Any) -> Any:
    """One value from a SQL query (sqlite3-style `?` placeholders) on the store, on either backend."""
    with raw(store) as conn:
        row = conn.execute(sql, args).fetchone()
    return row[0] if row else None


def stop_engine(proc: subprocess.Popen, timeout: float = 20.0) -> int:
    """SIGTERM the engine and wait; SIGKILL if it hangs (and fail)."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("engine did not exit within the timeout after SIGTERM")
    return -1


def rows(store: Any, sql: str, *args: Any) -> list[tuple]:
    """All rows of a SQL query (sqlite3-style `?` placeholders) on the store, on either backend, as tuples."""
    with raw(store) as conn:
        return [tuple(r) for r in conn.execute(sql, args).fetchall()]
