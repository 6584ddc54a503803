"""Issue 11: a state.db replaced under a running process must end as a storage fault, never as SIGBUS.

A connection opened on the replacement file runs WAL recovery and truncates the -shm file that the process's other
connections (still on the old file) have mmapped; their next read touches memory past the end of the file and the
kernel kills the process with SIGBUS before any guard can halt trading. The store must refuse to open a connection
on a file that is not the one it first opened. Run in a child process because the failure is a fatal signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from engine.store.health import cause_of, is_storage_fault

CHILD = textwrap.dedent("""
    import os, sys
    from sqlalchemy import text
    from engine.store.db import open_store

    db = sys.argv[1]
    store = open_store(db)
    with store.begin() as c:
        c.execute(text("CREATE TABLE IF NOT EXISTS probe (x INTEGER)"))
        c.execute(text("INSERT INTO probe VALUES (1)"))
    held = store.engine.connect()          # an open connection on the original file (its -shm is mmapped)
    held.execute(text("SELECT count(*) FROM probe")).scalar()
    copy = db + ".copy"
    with open(db, "rb") as src, open(copy, "wb") as dst:
        dst.write(src.read())
    os.replace(copy, db)                   # a restore done in the wrong order, under the running process
    try:
        with store.engine.connect() as fresh:  # the pool must open a second connection here
            fresh.execute(text("SELECT count(*) FROM probe")).scalar()
        outcome = "opened"
    except Exception as exc:
        outcome = "refused: " + str(getattr(exc, "orig", exc))
    held.execute(text("SELECT count(*) FROM probe")).scalar()  # SIGBUS here when the -shm was truncated
    print(outcome, flush=True)
""")


def test_a_replaced_database_file_is_refused_not_a_sigbus(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "state.db")], capture_output=True, text=True,
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)
    assert proc.returncode != -signal.SIGBUS, "the process died by SIGBUS after a connection opened the new file"
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("refused: state.db was replaced under the running engine"), line


def test_the_refusal_is_classified_as_a_storage_fault() -> None:
    import sqlite3

    exc = sqlite3.OperationalError("state.db was replaced under the running engine; no new connection is opened on it")
    assert is_storage_fault(exc)
    assert "replaced" in cause_of(exc)[0]
