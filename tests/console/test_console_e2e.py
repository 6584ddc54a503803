"""End to end: the real `quantdesk` binary in tmux starts the engine on the simulator, shows positions, and the
emergency-stop keys (sent with `tmux send-keys`) HALT and FLATTEN the desk, with the console named in the audit log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

import pytest
from sqlalchemy import text

from engine.store import StoreError, open_readonly
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed "
                                                                                     "(.ci/run installs it)")]
QUANTDESK = Path(sys.executable).with_name("quantdesk")


class Tmux:
    """One private tmux server (its own socket name) running one pane."""

    def __init__(self, name: str) -> None:
        self.socket = name

    def run(self, *args: str) -> str:
        """Run a tmux command on this server; returns stdout."""
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True,
                              timeout=10).stdout

    def capture(self) -> str:
        """The visible pane as text."""
        return self.run("capture-pane", "-p", "-t", "qd")

    def kill(self) -> None:
        """Kill this tmux server (only ours: it has its own socket)."""
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


def _query(db: Path, sql: str):  # noqa: ANN202 - first column of the first row, or None
    try:
        store = open_readonly(db)
    except StoreError:
        return None
    try:
        with store.connect() as conn:
            return conn.execute(text(sql)).scalar()
    except Exception as exc:  # noqa: BLE001 - the engine may still be creating tables
        print("query failed:", sql, exc)
        return None
    finally:
        store.dispose()


def _header(screen: str) -> str:
    """The status header line (the second line of the console)."""
    lines = screen.splitlines()
    return lines[1] if len(lines) > 1 else ""


def _wait(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.25) -> object:
    """wait_for polling at 4 Hz by default (each poll of the screen starts a tmux process)."""
    return wait_for(predicate, timeout, what, interval)


def test_quantdesk_in_tmux_emergency_stop(tmp_path: Path, report) -> None:  # noqa: ANN001
    """quantdesk -> engine auto-start -> positions -> ctrl+x, y -> HALTED on screen and in state.db, flat, audited."""
    db = tmp_path / "state.db"
    env = {**os.environ, "QUANTDESK__SIMULATOR__SPEED": "60", "TEXTUAL_COLOR_SYSTEM": "256",
           "TERM": "xterm-256color", "QUANTDESK_CONFIG": str(tmp_path / "none.toml")}
    env.pop("QUANTDESK_CONFIG")  # no config file: the embedded defaults (simulator, paper, both strategies)
    tmux = Tmux(f"qd-e2e-{uuid.uuid4().hex[:10]}")
    engine_pid = None
    try:
        tmux.run("-f", "/dev/null", "new-session", "-d", "-s", "qd", "-x", "100", "-y", "30", "-c", str(tmp_path),
                 "-e", "QUANTDESK__SIMULATOR__SPEED=60", "-e", "TEXTUAL_COLOR_SYSTEM=256",
                 f"{QUANTDESK} --state {db}; sleep 30")
        started = time.monotonic()
        _wait(lambda: _header(tmux.capture()).startswith(" ACTIVE "), 60, "the console header")
        _wait(lambda: (_query(db, "SELECT COUNT(*) FROM positions WHERE qty != 0") or 0) > 0, 120,
              "positions from the auto-started engine")
        engine_pid = _query(db, "SELECT pid FROM engine_status WHERE id = 1")
        first_positions = time.monotonic() - started
        _wait(lambda: "Positions ──" not in tmux.capture() or "─ 0 ─" not in tmux.capture().split("Open orders")[0],
              30, "positions on screen")
        _wait(lambda: "ENGINE NOT RESPONDING" not in tmux.capture(), 20, "a live engine (no banner) on screen")

        tmux.run("send-keys", "-t", "qd", "C-x")
        _wait(lambda: "EMERGENCY STOP" in tmux.capture(), 10, "the stop confirmation", interval=0.02)
        sent, sent_ms = time.monotonic(), time.time() * 1000
        tmux.run("send-keys", "-t", "qd", "y")
        _wait(lambda: _header(tmux.capture()).startswith(" HALTED "), 15, "HALTED in the header", interval=0.01)
        latency_ms = (time.monotonic() - sent) * 1000

        assert _query(db, "SELECT state FROM trading_state WHERE scope='global'") == "HALTED"
        _wait(lambda: _query(db, "SELECT COUNT(*) FROM orders WHERE status IN ('new','open','partial')") == 0, 30,
              "zero open orders")
        _wait(lambda: _query(db, "SELECT COUNT(*) FROM positions WHERE ABS(qty) > 1e-12") == 0, 30,
              "zero open positions")
        assert _query(db, "SELECT COUNT(*) FROM audit_log WHERE source='console' AND action='command.emergency_stop'") >= 1
        assert _query(db, "SELECT COUNT(*) FROM audit_log WHERE source='console' AND action='trading_state.changed' "
                          "AND details LIKE '%HALTED%'") >= 1
        _wait(lambda: _query(db, "SELECT status FROM commands WHERE command='emergency_stop'") == "done", 30,
              "the engine to finish the stop command")

        tmux.run("send-keys", "-t", "qd", "q")
        _wait(lambda: "ACTIVE" not in tmux.capture() and "HALTED" not in tmux.capture(), 15, "the console to quit")
        time.sleep(2.0)
        hb = _query(db, "SELECT heartbeat_at FROM engine_status WHERE id = 1")
        assert hb and time.time() * 1000 - hb < 5000, "quitting the console must leave the engine running"
        halted_ms = _query(db, "SELECT MIN(ts) FROM audit_log WHERE action='trading_state.changed' "
                               "AND details LIKE '%HALTED%'")
        queued_ms = _query(db, "SELECT created_at FROM commands WHERE command='emergency_stop'")
        report("console e2e (tmux, real engine on the simulator at speed 60)",
               {"first_positions_s": round(first_positions, 1), "key_to_HALTED_ms_on_screen": round(latency_ms, 1),
                "key_to_HALTED_stored_ms": round(halted_ms - sent_ms, 1),
                "key_to_command_queued_ms": round(queued_ms - sent_ms, 1)})
    finally:
        tmux.kill()
        if engine_pid:
            subprocess.run([str(QUANTDESK), "--state", str(db), "engine", "stop", "--timeout", "20"],
                           capture_output=True, timeout=30, cwd=tmp_path)
