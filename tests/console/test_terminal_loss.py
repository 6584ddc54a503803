"""A console whose terminal hangs up exits (the engine is left alone), even when no SIGHUP reaches it.

The console runs on a pty with no controlling terminal (its own session), so closing the pty's master sends it no
signal, like a console started by `make run` whose tmux pane is killed: only the terminal watch can notice.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.console.deskdata import build_state
from tests.console.helpers import live_heartbeat

REPO = Path(__file__).resolve().parents[2]


def test_console_exits_when_its_terminal_hangs_up(tmp_path):
    state = tmp_path / "state.db"
    build_state(state, heartbeat_at=live_heartbeat()).dispose()  # an 'alive' engine: the console starts none
    master, slave = os.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="100", LINES="30", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", "from console.cli import main; main()", "console", "--state",
                             str(state)], stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
                            cwd=tmp_path)
    os.close(slave)
    try:
        seen = b""
        deadline = time.monotonic() + 60
        while b"Desk" not in seen and time.monotonic() < deadline:  # the console is up and drawing
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
        assert b"Desk" in seen, seen[-500:]
        assert proc.poll() is None
        os.close(master)  # the terminal goes away; no signal is sent to a process in another session
        master = -1
        t0 = time.monotonic()
        proc.wait(timeout=15)  # a console without the terminal watch reads EOF in a loop here, forever
        assert time.monotonic() - t0 < 15
    finally:
        if master >= 0:
            os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
