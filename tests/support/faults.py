"""The storage-fault corpus shared by tests/runtime/test_storage_faults.py and benchmarks/bench_faults.py.

Each fault starts a real engine on a fresh state.db, waits until it runs, injects the fault and reports what the
engine did: exit code, seconds from injection to the engine's HALT line and to its exit, and whether state.db still
passes `PRAGMA integrity_check` with every row committed before the fault (orders, fills, audit) still present.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


from tests.support.waiting import wait_for


REPO = Path(__file__).resolve().parents[2]
FAST_CONFIG = """
[simulator]
speed = 60.0
[runtime]
equity_interval_s = 1.0
monitor_interval_s = 2.0
heartbeat_interval_s = 0.5
heartbeat_timeout_s = 3.0
[ml]
train_at_start = false
[execution]
paper_latency_ms = 20.0
"""


def write_config(folder: Path) -> Path:
    """A fast simulated engine's config (speed-up, short intervals) in `folder`."""
    path = folder / "quantdesk.toml"
    path.write_text(FAST_CONFIG)
    return path


@dataclass
class FaultOutcome:
    """What the engine did about one injected fault."""

    fault: str
    exit_code: int | None
    halt_s: float | None  # injection -> the engine's CRITICAL/HALT line on stderr
    exit_s: float | None  # injection -> process exit
    integrity: str
    rows_before: dict[str, int]
    rows_after: dict[str, int]
    stderr: str

    @property
    def data_lost(self) -> dict[str, int]:
        """Rows present (committed to state.db's main file) before the fault and missing after it."""
        return {t: n - self.rows_after.get(t, 0) for t, n in self.rows_before.items() if self.rows_after.get(t, 0) < n}


TABLES = ("orders", "fills", "audit_log", "trading_state", "candles")


def _counts(db: Path) -> dict[str, int]:
    """Row counts read without changing anything (immutable URI: no WAL, no -shm, no checkpoint)."""
    conn = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}
    finally:
        conn.close()


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    except sqlite3.Error as exc:
        return f"error: {exc}"
    finally:
        conn.close()


def desk_halted(db: Path) -> bool:
    """The desk-wide trading state stored in state.db is HALTED (read without changing the store)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT state FROM trading_state WHERE scope = 'global'").fetchone()
    finally:
        conn.close()
    return bool(row) and row[0] == "HALTED"


def running(db: Path, pid: int, name: str | None = None) -> bool:
    """The engine process `pid` (the desk's main engine, or the engine called `name`) reports phase running in
    engine_status (read without changing the store)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            row = conn.execute("SELECT pid, info FROM engine_status WHERE id = 1").fetchone() if name is None else \
                conn.execute("SELECT pid, info FROM engine_status WHERE name = ?", (name,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return bool(row) and row[0] == pid and json.loads(row[1] or "{}").get("phase") == "running"


def _checkpoint(db: Path) -> None:
    """Fold the WAL into the main file (a second connection, as a backup tool would) so 'before' counts are durable."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(FULL)").fetchone()
        assert busy == 0, "checkpoint could not finish"
    finally:
        conn.close()


def delete_wal(db: Path, pid: int) -> None:
    """The -wal file removed under the running engine (an over-eager cleanup script)."""
    os.unlink(f"{db}-wal")


def disk_full(db: Path, pid: int) -> None:
    """No write may extend any file of the engine any more (RLIMIT_FSIZE = 1 byte on the running process)."""
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, 1))


def replace_db(db: Path, pid: int) -> None:
    """state.db replaced by another file under the running engine (a restore done in the wrong order)."""
    tmp = db.with_name("other.db")
    tmp.write_bytes(db.read_bytes())
    os.replace(tmp, db)


FAULTS: dict[str, Callable[[Path, int], None]] = {"wal deleted": delete_wal, "disk full (RLIMIT_FSIZE)": disk_full,
                                                  "state.db replaced": replace_db}


class _Tail:
    """Collects a child's stderr from a pipe on a thread (a pipe still works when the disk is full)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for raw in proc.stderr:  # type: ignore[union-attr]
            self.lines.append((time.monotonic(), raw.decode(errors="replace")))

    def first(self, needle: str, after: float) -> float | None:
        """Monotonic time of the first line containing `needle` at or after `after`."""
        for ts, line in list(self.lines):
            if ts >= after and needle in line:
                return ts
        return None

    def text(self, after: float = 0.0) -> str:
        """Everything read at or after `after`."""
        return "".join(line for ts, line in list(self.lines) if ts >= after)


def run_fault(folder: Path, name: str, timeout_s: float = 30.0) -> FaultOutcome:
    """Start an engine in `folder`, inject fault `name` once it runs, and wait for its reaction."""
    cfg = write_config(folder)
    db = folder / "state.db"
    proc = subprocess.Popen([sys.executable, "-m", "engine.runtime.main", "--state", str(db), "--config", str(cfg)],
                            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    tail = _Tail(proc)
    t0 = time.monotonic()
    try:
        wait_for(lambda: running(db, proc.pid) or proc.poll() is not None, 90, "engine running")
        assert proc.poll() is None, tail.text()
        _checkpoint(db)
        before = _counts(db)
        t0 = time.monotonic()
        FAULTS[name](db, proc.pid)
        exit_s = None
        while time.monotonic() - t0 < timeout_s:
            if proc.poll() is not None:
                exit_s = time.monotonic() - t0
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    time.sleep(0.1)  # let the reader thread drain the pipe
    halt_at = tail.first("storage fault", t0)
    integrity = _integrity(db)
    return FaultOutcome(name, proc.returncode if exit_s is not None else None,
                        None if halt_at is None else halt_at - t0, exit_s, integrity, before,
                        _counts(db) if integrity == "ok" else {}, tail.text(t0))


def _hash(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_start_fault(folder: Path, name: str) -> tuple[str, bool, float]:
    """An engine started on a corrupt or read-only store: (outcome, store bytes unchanged, seconds to refuse)."""
    cfg = write_config(folder)
    db = folder / "state.db"
    sqlite3.connect(db).close()
    subprocess.run([sys.executable, "-c", "from console.cli import main; main()", "--state", str(db), "init"],
                   cwd=folder, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    immutable = False
    if name == "corrupt store":
        with open(db, "r+b") as fh:
            fh.write(b"\x00garbage" * 16)
    else:  # read-only: an immutable file (root ignores the mode bits)
        immutable = subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode == 0
        if not immutable:
            return "skipped (chattr unavailable)", True, 0.0
    before = _hash(db)
    t0 = time.monotonic()
    try:
        out = subprocess.run([sys.executable, "-m", "engine.runtime.main", "--state", str(db), "--config", str(cfg)],
                             cwd=folder, capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(db)], check=True)
    took = time.monotonic() - t0
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    outcome = (f"refused to start, exit {out.returncode}, one line" if len(lines) == 1 and "Traceback" not in
               out.stderr else f"exit {out.returncode}, {len(lines)} stderr lines")
    return outcome, _hash(db) == before, took


def run_locked_halt(folder: Path) -> tuple[str, float | None, bool]:
    """`quantdesk halt` while another process holds the write lock and an engine runs: (outcome, seconds from the
    halt command to the engine's in-memory HALT, HALTED persisted after the lock is released)."""
    cfg = write_config(folder)
    fast = folder / "fast.toml"
    fast.write_text("[store]\nbusy_timeout_ms = 200\n")
    db = folder / "state.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "engine.runtime.main", "--state", str(db), "--config", str(cfg)],
                            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    tail = _Tail(proc)
    try:
        wait_for(lambda: running(db, proc.pid) or proc.poll() is not None, 90, "engine running")
        holder = sqlite3.connect(db, isolation_level=None, timeout=20)
        holder.execute("BEGIN IMMEDIATE")
        t0 = time.monotonic()
        try:
            out = subprocess.run([sys.executable, "-c", "from console.cli import main; main()", "--config", str(fast),
                                  "--state", str(db), "halt"], cwd=folder, capture_output=True, text=True, env=env)
            wait_for(lambda: tail.first("HALT by signal: trading halted", t0), 10, "in-memory HALT")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        halt_at = tail.first("HALT by signal: trading halted", t0)

        wait_for(lambda: desk_halted(db), 30, "HALTED persisted")
        outcome = f"halt exit {out.returncode}; HALT by signal, HALTED persisted after the lock"
        return outcome, None if halt_at is None else halt_at - t0, True
    finally:
        proc.terminate()
        proc.wait(30)
