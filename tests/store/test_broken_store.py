"""Finding 5: a corrupt, read-only or locked state.db gives one line naming the path and the cause, pointing to
`quantdesk doctor`; no traceback."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from engine.store.db import open_store
from tests.store.cli_run import quantdesk


def _store(tmp_path: Path) -> Path:
    state = tmp_path / "state.db"
    open_store(state).dispose()
    return state


def _one_line(out: subprocess.CompletedProcess, state: Path, cause: str) -> None:
    assert out.returncode != 0, out.stdout
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert str(state) in lines[0] and cause in lines[0] and "quantdesk doctor" in lines[0]


@pytest.mark.parametrize("argv", [["halt"], ["status"]])
def test_corrupt_store(tmp_path: Path, argv: list[str]) -> None:
    state = _store(tmp_path)
    with open(state, "r+b") as fh:
        fh.write(b"\x00garbage" * 16)
    before = state.read_bytes()
    _one_line(quantdesk("--state", str(state), *argv, cwd=tmp_path), state, "corrupt")
    assert state.read_bytes() == before  # looking at a damaged store never changes it


def test_corrupt_store_stops_the_engine_process_with_one_line(tmp_path: Path) -> None:
    import sys

    from tests.store.cli_run import REPO

    state = _store(tmp_path)
    with open(state, "r+b") as fh:
        fh.write(b"\x00garbage" * 16)
    out = subprocess.run([sys.executable, "-m", "engine.runtime.main", "--state", str(state)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert out.returncode == 3 and "Traceback" not in out.stderr, out.stderr
    assert str(state) in out.stderr and "quantdesk doctor" in out.stderr


def test_locked_store(tmp_path: Path) -> None:
    state = _store(tmp_path)
    cfg = tmp_path / "q.toml"
    cfg.write_text("[store]\nbusy_timeout_ms = 200\n")
    holder = sqlite3.connect(state, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        out = quantdesk("--config", str(cfg), "--state", str(state), "halt", cwd=tmp_path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    _one_line(out, state, "locked")


def test_read_only_store(tmp_path: Path) -> None:
    state = _store(tmp_path)
    made = subprocess.run(["chattr", "+i", str(state)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a file immutable here: {made.stderr!r}")
    try:
        out = quantdesk("--state", str(state), "halt", cwd=tmp_path)
    finally:
        subprocess.run(["chattr", "-i", str(state)], check=True)
    _one_line(out, state, "read-only")
