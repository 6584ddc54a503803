"""Is the engine alive? The one rule every front end and the control client use (fresh heartbeat, not stopped,
and on this host a process that still exists: a kill -9 leaves a fresh heartbeat behind for a few seconds)."""

from __future__ import annotations

import os
import socket
from dataclasses import replace

from engine.control.snapshots import StatusSnapshot


def pid_running(pid: int) -> bool:
    """True when a process with this pid exists on this host (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def engine_alive(pid: int | None, host: str | None, heartbeat_at: int | None, stopped: bool, now: int,
                 heartbeat_timeout_ms: int) -> bool:
    """The one liveness rule: a fresh heartbeat, not stopped, and (on this host) the process still exists."""
    if stopped or heartbeat_at is None or now - heartbeat_at > heartbeat_timeout_ms:
        return False
    return not (pid is not None and host == socket.gethostname() and not pid_running(pid))


def with_liveness(status: StatusSnapshot, now: int, heartbeat_timeout_ms: int) -> StatusSnapshot:
    """The same snapshot re-judged at `now` (nothing else can change while state.db is unchanged)."""
    alive = engine_alive(status.engine_pid, status.engine_host, status.heartbeat_at, status.engine_stopped, now,
                         heartbeat_timeout_ms)
    return replace(status, now=now, engine_alive=alive)
